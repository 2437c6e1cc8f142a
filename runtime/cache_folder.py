"""optforge's cache folder: generated code of `load_spec`, native libraries, CUDA binaries.

Every part of the runtime that keeps files (spec_loading, backends/native_build.py,
backends/kernel_cache.py) asks here, so one variable moves all of them.
"""
import os
from pathlib import Path


def cache_root():
    """$OPTFORGE_CACHE_DIR, else $XDG_CACHE_HOME/optforge, else ~/.cache/optforge."""
    if os.environ.get("OPTFORGE_CACHE_DIR"):
        return Path(os.environ["OPTFORGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optforge"


def make_cache_folder(folder):
    """Create a folder under the cache root (and the folders above it). A file in the way
    (the cache root set to a file, say) is a NotADirectoryError that names the file, the
    cache root and the variable it came from, instead of the bare error of mkdir."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        root = cache_root()
        if os.environ.get("OPTFORGE_CACHE_DIR"):
            source = "$OPTFORGE_CACHE_DIR"
        elif os.environ.get("XDG_CACHE_HOME"):
            source = "$XDG_CACHE_HOME/optforge"
        else:
            source = "~/.cache/optforge, as neither OPTFORGE_CACHE_DIR nor XDG_CACHE_HOME is set"
        raise NotADirectoryError(f"optforge's cache folder {root} (from {source}) cannot hold {folder}: "
                                 f"{blocking} is not a folder. Set OPTFORGE_CACHE_DIR to a folder "
                                 "(it is created if missing)") from None
