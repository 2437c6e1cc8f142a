"""The load_spec disk cache trusts an entry only as far as it proves itself.

Each entry is confined to its folder (no absolute, `..` or symlinked paths, no files it
does not list), its files match the digest recorded for its key, and anything else is
removed with a warning and generated again; a crashed generation's stale staging
folder is cleaned. The tampered entries below would run a payload if imported: the
sentinel file proves they never are.
"""
import json
import os
import shutil
import time

import pytest

import optforge
from optforge.runtime import spec_loading

SPEC = '''name = "CacheProbe"
summary = "SGD, for the cache tests."
update = """
weight = weight - lr * (grad * rescale_grad + wd * weight)
"""
'''


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(spec_loading, "_LOADED", {})
    spec = tmp_path / "probe.toml"
    spec.write_text(SPEC, encoding="utf-8")
    sentinel = tmp_path / "ran"
    payload = f"import pathlib\npathlib.Path({str(sentinel)!r}).touch()\nSPEC = None\n"
    return spec, sentinel, payload


def _load(spec):
    spec_loading._LOADED.clear()     # as a new process would: only the disk cache is left
    return optforge.load_spec(spec, register=False)


def _entry(spec):
    return spec_loading.cache_root() / "specs" / spec_loading.cache_key(spec)


def _check_rebuilt(spec, sentinel):
    with pytest.warns(RuntimeWarning, match="cache entry .* generating it again"):
        cls = _load(spec)
    assert cls.__name__ == "CacheProbe" and not sentinel.exists()
    meta = json.loads((_entry(spec) / "meta.json").read_text())
    assert meta["numpy"] == "numpy/probe.py"
    # the rebuilt entry is sound: the next load takes it without a warning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _load(spec).__name__ == "CacheProbe"


def test_a_sound_entry_is_reused(cache):
    spec, sentinel, _ = cache
    _load(spec)
    meta = json.loads((_entry(spec) / "meta.json").read_text())
    assert meta["key"] == spec_loading.cache_key(spec) and len(meta["digest"]) == 64
    module_file = _entry(spec) / "numpy" / "probe.py"
    before = module_file.stat().st_mtime_ns
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(spec)
    assert module_file.stat().st_mtime_ns == before    # not generated again


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated", "not-a-dict", "no-digest"])
def test_a_damaged_meta_is_rebuilt(cache, damage):
    spec, sentinel, _ = cache
    _load(spec)
    meta_file = _entry(spec) / "meta.json"
    text = meta_file.read_text()
    meta_file.write_text({"empty": "", "garbage": "\x00\xff{{", "truncated": text[: len(text) // 2],
                          "not-a-dict": "[1, 2]",
                          "no-digest": json.dumps({k: v for k, v in json.loads(text).items() if k != "digest"})
                          }[damage])
    _check_rebuilt(spec, sentinel)


@pytest.mark.parametrize("where", ["absolute", "parent", "symlink-file", "symlink-folder"])
def test_module_paths_leaving_the_entry_are_refused(cache, tmp_path, where):
    spec, sentinel, payload = cache
    _load(spec)
    entry = _entry(spec)
    evil = tmp_path / "evil.py"
    evil.write_text(payload)
    meta_file = entry / "meta.json"
    meta = json.loads(meta_file.read_text())
    if where == "absolute":
        meta["numpy"] = str(evil)
        meta["files"].append(str(evil))
    elif where == "parent":
        shutil.copy(evil, entry.parent / "evil.py")
        meta["numpy"] = "../evil.py"
        meta["files"].append("../evil.py")
    elif where == "symlink-file":
        (entry / "numpy" / "probe.py").unlink()
        os.symlink(evil, entry / "numpy" / "probe.py")
    else:
        elsewhere = tmp_path / "elsewhere"
        (elsewhere / "numpy").mkdir(parents=True)
        shutil.copy(evil, elsewhere / "numpy" / "probe.py")
        shutil.rmtree(entry / "numpy")
        os.symlink(elsewhere / "numpy", entry / "numpy")
    # the digest recomputed as an attacker could: confinement does not rest on it
    files = {}
    for relative in meta["files"]:
        path = evil if relative in (str(evil), "../evil.py") else entry / relative
        files[relative] = path.read_bytes()
    meta["digest"] = spec_loading._digest(meta["key"], files)
    meta_file.write_text(json.dumps(meta))
    _check_rebuilt(spec, sentinel)
    assert evil.exists()     # what the entry pointed to is not touched


@pytest.mark.parametrize("change", ["payload", "truncated", "empty", "extra-file"])
def test_files_that_do_not_match_the_digest_are_rebuilt(cache, change):
    spec, sentinel, payload = cache
    _load(spec)
    module_file = _entry(spec) / "numpy" / "probe.py"
    text = module_file.read_text()
    if change == "payload":
        module_file.write_text(payload + text)
    elif change == "truncated":
        module_file.write_text(text[: len(text) // 3])
    elif change == "empty":
        module_file.write_text("")
    else:   # a metadata module the CUDA backend would import next to the NumPy one
        (_entry(spec) / "cuda").mkdir(exist_ok=True)
        (_entry(spec) / "cuda" / "probe.py").write_text(payload)
    _check_rebuilt(spec, sentinel)


def test_an_entry_copied_from_another_spec_is_rebuilt(cache, tmp_path):
    spec, sentinel, _ = cache
    other = tmp_path / "other"
    other.mkdir()
    (other / "probe.toml").write_text(SPEC.replace("CacheProbe", "Intruder"))
    _load(other / "probe.toml")
    entry = _entry(spec)
    shutil.copytree(_entry(other / "probe.toml"), entry)   # same file name, another optimizer
    _check_rebuilt(spec, sentinel)


def test_stale_temporaries_are_cleaned(cache):
    spec, _, _ = cache
    parent = spec_loading.cache_root() / "specs"
    stale, fresh = parent / ".tmp-crashed", parent / ".tmp-writing"
    for folder in (stale, fresh):
        (folder / "numpy").mkdir(parents=True)
        (folder / "numpy" / "x.py").write_text("x = 1\n")
    hours_ago = time.time() - 2 * spec_loading.STALE_TEMPORARY_S
    os.utime(stale, (hours_ago, hours_ago))
    _load(spec)
    assert not stale.exists()
    assert fresh.exists()    # may belong to a generation running now
    assert not [p for p in parent.glob(".tmp-*") if p != fresh]


@pytest.mark.parametrize("variable, root", [("OPTFORGE_CACHE_DIR", "{file}"), ("OPTFORGE_CACHE_DIR", "{file}/below"),
                                            ("XDG_CACHE_HOME", "{file}")])
def test_a_cache_root_that_is_a_file_is_a_clear_error(cache, tmp_path, monkeypatch, variable, root):
    """mkdir's bare NotADirectoryError named neither optforge's cache nor the variable."""
    spec, _, _ = cache
    blocking = tmp_path / "a-file"
    blocking.write_text("not a folder")
    monkeypatch.delenv("OPTFORGE_CACHE_DIR")
    monkeypatch.setenv(variable, root.format(file=blocking))
    with pytest.raises(NotADirectoryError) as info:
        _load(spec)
    message = str(info.value)
    assert f"${variable}" in message and f"{blocking} is not a folder" in message
    assert "Set OPTFORGE_CACHE_DIR to a folder" in message
    assert blocking.read_text() == "not a folder"
