"""The generated code of specs loaded at run time from any path (`optforge.load_spec`).

The spec's code is generated on first use by every per-spec emitter the generator
knows (`codegen.render.SPEC_EMITTERS`: NumPy, CUDA, native CPU) and cached twice: in memory for this process and on disk, keyed by a hash of
the spec's text (and of the specs it extends), the optforge version and the
generator's own sources, so a cached module is never stale. A disk hit needs no
sympy: the cached module is imported directly. The class built from it and its
registration are `catalog.load_spec`'s.
"""
import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .cache_folder import cache_root, make_cache_folder  # noqa: F401  (spec_loading.cache_root)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_LOADED = {}   # cache key -> generated module


def _spec_chain(path):
    """[(path, text)] of a spec and the specs it extends (read as data, never run)."""
    from ..codegen.spec_file import read_with_bases
    merged = read_with_bases(path)
    return [(Path(f.path), f.text) for f in merged.files]


def _generator_fingerprint():
    digest = hashlib.sha256()
    for path in sorted((PACKAGE_ROOT / "codegen").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".j2", ".css"):
            digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_key(path):
    from .. import __version__
    digest = hashlib.sha256(f"optforge {__version__}\0{_generator_fingerprint()}\0".encode())
    for spec_path, text in _spec_chain(path):
        digest.update(spec_path.name.encode() + b"\0" + text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def load_module(path):
    """The generated NumPy module of the spec at `path`, generated (or found in the cache)
    and imported; the same module for the same spec text within a process. A malformed spec
    raises SpecError (every mistake, with file:line:col)."""
    path = Path(path)
    key = cache_key(path)
    if key not in _LOADED:
        _LOADED[key] = _load(path, key)
    return _LOADED[key]


def _load(path, key):
    folder = cache_root() / "specs" / key
    meta = _valid_entry(folder, key)
    if meta is None:
        _generate(path, folder, key)
        meta = _valid_entry(folder, key)
        if meta is None:
            raise RuntimeError(f"optforge: the cache entry {folder} was changed while it was written")
    return _import(folder / meta["numpy"], f"optforge.generated.user.{meta['stem']}_{key[:12]}")


# -- the disk cache: what an entry may hold ----------------------------------------------
#
# An entry is the folder specs/<key>/ with meta.json and the generated files it lists. It
# is trusted only as far as it proves itself: meta.json names this key, every listed file
# is a plain file inside the folder (no absolute path, no '..', no symlink), the module
# imported is the entry's own numpy/<stem>.py, and the sha256 of every file matches the
# digest recorded for this key. Anything else (truncated, empty, garbage, copied from
# another entry, edited) is removed with a warning and generated again.

def _digest(key, files):
    digest = hashlib.sha256(f"optforge cache entry {key}\0".encode())
    for relative in sorted(files):
        digest.update(relative.encode() + b"\0" + files[relative] + b"\0")
    return digest.hexdigest()


def _entry_problem(folder, key):
    """None for a sound entry, else what is wrong with it (and the meta it read)."""
    if folder.is_symlink() or not folder.is_dir():
        return ("not a folder" if folder.exists() or folder.is_symlink() else "missing"), None
    meta_file = folder / "meta.json"
    if meta_file.is_symlink() or not meta_file.is_file():
        return "without meta.json", None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return "unreadable (meta.json is not JSON)", None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return "not for this spec (meta.json names another key)", None
    stem, files = meta.get("stem"), meta.get("files")
    if not isinstance(stem, str) or not stem.isidentifier() or not isinstance(files, list) \
            or meta.get("numpy") != f"numpy/{stem}.py" or meta["numpy"] not in files:
        return "malformed (meta.json)", None
    contents = {}
    for relative in files:
        parts = Path(relative).parts if isinstance(relative, str) else ()
        if not parts or Path(relative).is_absolute() or any(p in ("..", ".", "") for p in parts):
            return f"malformed (path {relative!r} leaves the entry)", None
        file = folder
        for part in parts:   # no symlink anywhere below the entry's folder
            file = file / part
            if file.is_symlink():
                return f"malformed ({relative} goes through a symbolic link)", None
        if not file.is_file():
            return f"incomplete ({relative} is missing)", None
        contents[relative] = file.read_bytes()
    present = {f.relative_to(folder).as_posix() for f in folder.rglob("*")
               if not f.is_dir() and "__pycache__" not in f.relative_to(folder).parts}
    if present - set(files) - {"meta.json"}:
        return f"malformed (files it does not list: {', '.join(sorted(present - set(files)))})", None
    if meta.get("digest") != _digest(key, contents):
        return "damaged (its files do not match their digest)", None
    return None, meta


def _valid_entry(folder, key):
    problem, meta = _entry_problem(folder, key)
    if problem is None:
        return meta
    if problem != "missing":
        warnings.warn(f"optforge: cache entry {folder} is {problem}; generating it again", RuntimeWarning,
                      stacklevel=4)    # load_spec's caller
        _remove(folder)
    return None


def _remove(folder):
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder, ignore_errors=True)


STALE_TEMPORARY_S = 3600   # a staging folder this old belongs to a generation that crashed


def _clean_temporaries(parent):
    now = time.time()
    for staging in parent.glob(".tmp-*"):
        try:
            if now - staging.lstat().st_mtime > STALE_TEMPORARY_S:
                _remove(staging)
        except OSError:   # removed meanwhile by another process
            pass


def _generate(path, folder, key):
    """Run every per-spec emitter into a fresh folder, then move it into place whole."""
    from ..codegen.render import render_file
    _, files = render_file(path)
    stem = path.stem
    make_cache_folder(folder.parent)
    _clean_temporaries(folder.parent)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        for relative, text in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        encoded = {relative: text.encode("utf-8") for relative, text in files.items()}
        meta = {"key": key, "stem": stem, "spec": str(path), "files": sorted(files),
                "numpy": f"numpy/{stem}.py", "digest": _digest(key, encoded)}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
        try:
            staging.rename(folder)
        except OSError:     # another process cached the same key first: theirs is checked on load
            pass
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _import(file, name):
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
