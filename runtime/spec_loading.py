"""Specs loaded at run time from any path: `optforge.load_spec("myopt.toml")`.

The spec's code is generated on first use by every per-spec emitter the generator
knows (`codegen.generate.SPEC_EMITTERS`: NumPy now, other targets as they are
added) and cached twice: in memory for this process and on disk, keyed by a hash of
the spec's text (and of the specs it extends), the optforge version and the
generator's own sources, so a cached module is never stale. A disk hit needs no
sympy: the cached module is imported directly. The class is registered like the
built-in ones (`optforge.create(name)`, `optforge.optim.create(name, params)`).
"""
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_LOADED = {}   # cache key -> class


def cache_root():
    """$OPTFORGE_CACHE_DIR, else $XDG_CACHE_HOME/optforge, else ~/.cache/optforge."""
    if os.environ.get("OPTFORGE_CACHE_DIR"):
        return Path(os.environ["OPTFORGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optforge"


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


def load_spec(path, register=True):
    """Generate (or reuse the cached) code of the spec at `path` and return its optimizer
    class, registered under its lower-case name and flavor. A malformed spec raises
    SpecError (every mistake, with file:line:col)."""
    path = Path(path)
    key = cache_key(path)
    if key in _LOADED:
        return _LOADED[key]
    folder = cache_root() / "specs" / key
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        _generate(path, folder)
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    module = _import(folder / meta["numpy"], f"optforge.generated.user.{meta['stem']}_{key[:12]}")
    from .spec_optimizer import optimizer_class
    cls = optimizer_class(module)
    if register:
        from .registry import register as register_class
        register_class(cls)
    _LOADED[key] = cls
    return cls


def _generate(path, folder):
    """Run every per-spec emitter into a fresh folder, then move it into place whole."""
    from ..codegen.analysis import analyse
    from ..codegen.generate import render_spec
    from ..codegen.loader import load_rule
    rule = load_rule(path)
    stem = path.stem
    files = render_spec(rule, analyse(rule), path.name, stem)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        for relative, text in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        meta = {"stem": stem, "spec": str(path), "files": sorted(files), "numpy": f"numpy/{stem}.py"}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
        try:
            staging.rename(folder)
        except OSError:     # another process cached the same key first: theirs is identical
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
