"""The native CPU kernels' build cache and backend choice.

Each kernel (variant, storage dtype) of a source is built on first use into a library of
its own; the cache is keyed by source, header, flags, the kernel, compiler identity and
CPU features; an entry whose bytes do not match the hash stored beside it is rebuilt;
concurrent builds of one kernel end with one valid entry; a kernel that fails to compile
changes no array and no count; OPTFORGE_CPU_BACKEND forces a backend; without a compiler
the NumPy code runs after one warning; `import optforge` builds nothing.
"""
import ctypes
import os
import hashlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import optforge
from optforge.runtime.backends import native, native_build

SPEC = "adagrad"          # a small source: a fast compile
KERNEL = "adagrad_default_f32"


@pytest.fixture
def source(repo_root):
    try:
        native_build.compiler()
    except native_build.CompilerMissing as err:
        pytest.skip(f"no C++ compiler: {err}")
    return repo_root / "generated" / "cpu" / f"{SPEC}.cpp"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path))
    return tmp_path / "native"


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_built_library_is_reused_and_carries_its_hash(source, cache):
    before = len(native_build.compiled)
    key, path = native_build.library_path(source, KERNEL)
    assert len(native_build.compiled) == before + 1
    assert entries(cache) == [f"{key}.lock", f"{key}.sha256", f"{key}.so"]
    assert (cache / f"{key}.sha256").read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert native_build.library_path(source, KERNEL) == (key, path)
    assert len(native_build.compiled) == before + 1           # found, not compiled again
    lib = native_build.load(source, KERNEL)
    assert hasattr(lib, "adagrad_default_f32_multi") and hasattr(lib, "adagrad_default_f32")
    assert not hasattr(lib, "adagrad_default_f64")            # one kernel per library


def test_the_whole_file_is_one_library_of_every_kernel(source, cache):
    lib = native_build.load(source)
    names = native_build.kernel_names(source.read_text())
    # one variant: six storage dtypes, and float32 weights with 8-bit and with bfloat16 states
    # (rounded to nearest and stochastically)
    assert len(names) == 9 and {"adagrad_default_f32_q8", "adagrad_default_f32_qbf16",
                                "adagrad_default_f32_qbf16sr"} <= set(names)
    assert all(hasattr(lib, name) and hasattr(lib, name + "_multi") for name in names)


def test_entry_points_compile_their_kernel_on_first_use(source, cache, monkeypatch):
    monkeypatch.setattr(native_build, "_LIBRARIES", {})
    lib = native_build.kernels(source)
    before = len(native_build.compiled)
    multi = lib.adagrad_default_f32_multi
    assert len(native_build.compiled) == before + 1
    assert lib.adagrad_default_f32_multi is multi and callable(lib.adagrad_default_f32)
    assert len(native_build.compiled) == before + 1           # the same kernel: nothing more
    assert callable(lib.adagrad_default_bf16_mp_multi)
    assert len(native_build.compiled) == before + 2           # another dtype: its own library
    for wrong in ("adagrad_default_f8", "adagrad_default_f32_pass0x", "printf", "_private"):
        with pytest.raises(AttributeError):
            getattr(lib, wrong)
    with pytest.raises(ValueError, match="has no kernel 'printf'"):
        native_build.library_path(source, "printf")
    assert len(native_build.compiled) == before + 2           # nothing compiled for a wrong name
    assert len(entries(cache)) == 2 * 3


def test_a_kernel_that_fails_to_compile_changes_nothing(source, cache, monkeypatch):
    """The step's kernels are built after it is planned, before it counts for good: a
    compiler failure raises with the update counts restored and no array changed."""
    def broken(*args):
        raise RuntimeError("c++ failed to compile")
    monkeypatch.setattr(native, "_LIBRARIES", {})
    monkeypatch.setattr(native_build, "_LIBRARIES", {})
    monkeypatch.setattr(native_build, "_compile", broken)
    opt = optforge.create(SPEC, learning_rate=0.1, begin_num_update=4)
    weights = [np.full(100, 1.5, np.float32), np.full(50, -2.0, np.float32)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    with pytest.raises(RuntimeError, match="c\\+\\+ failed to compile"):
        opt.update([0, 1], weights, [np.ones(100, np.float32), np.ones(50, np.float32)], states)
    assert (weights[0] == 1.5).all() and (weights[1] == -2.0).all() and not any(s.any() for s in states)
    assert opt.num_update == 4 and opt._index_update_count == {}
    assert not cache.exists() or not list(cache.glob("*.so"))


def test_the_compiler_identity_is_kept_until_the_compiler_changes(source, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path))
    path = native_build.compiler()
    native_build.compiler_identity.cache_clear()
    first = native_build.compiler_identity(path)
    assert "Free Software Foundation" in first or "clang" in first        # what --version prints
    kept = list((tmp_path / "compilers").iterdir())
    assert len(kept) == 1 and kept[0].read_text() == first
    native_build.compiler_identity.cache_clear()
    runs = []
    monkeypatch.setattr(native_build.subprocess, "run", lambda *a, **k: runs.append(a) or pytest.fail("ran"))
    assert native_build.compiler_identity(path) == first and runs == []   # read back, not asked
    stamp = native_build._stamp
    monkeypatch.setattr(native_build, "_stamp", lambda p: stamp(p).replace(b"\0", b"\0" + b"1", 2))
    native_build.compiler_identity.cache_clear()
    with pytest.raises(pytest.fail.Exception):          # another size or modification time: asked again
        native_build.compiler_identity(path)
    monkeypatch.undo()
    native_build.compiler_identity.cache_clear()


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_corrupt_or_foreign_entry_is_rebuilt(source, cache, damage):
    key, path = native_build.library_path(source, KERNEL)
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[:len(good) // 2])
    else:   # another shared object in its place
        path.write_bytes(open(_libm(), "rb").read())
    before = len(native_build.compiled)
    assert native_build.library_path(source, KERNEL) == (key, path)
    assert len(native_build.compiled) == before + 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == (cache / f"{key}.sha256").read_text().strip()
    assert hasattr(ctypes.CDLL(str(path)), "adagrad_default_f32")


def _libm():
    for candidate in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"):
        try:
            open(candidate, "rb").close()
            return candidate
        except OSError:
            continue
    pytest.skip("no libm.so.6 to stand in for a foreign library")


def test_eight_processes_building_the_same_kernel_end_with_one_valid_entry(source, cache):
    script = ("import sys; from pathlib import Path; from optforge.runtime.backends import native_build as b; "
              "key, path = b.library_path(Path(sys.argv[1]), sys.argv[2]); b.kernels(Path(sys.argv[1]))."
              "adagrad_default_f32_multi; print(len(b.compiled), path)")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(source), KERNEL], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in processes]
    assert all(rc == 0 for _, _, rc in results), [err for _, err, rc in results if rc]
    outputs = [out.split() for out, _, _ in results]
    assert sum(int(compiled) for compiled, _ in outputs) == 1       # one compiled, seven waited and loaded it
    assert len({path for _, path in outputs}) == 1
    key = outputs[0][1].rsplit("/", 1)[1][:-3]
    assert entries(cache) == [f"{key}.lock", f"{key}.sha256", f"{key}.so"]   # no temporary files left
    library = cache / f"{key}.so"
    assert hashlib.sha256(library.read_bytes()).hexdigest() == (cache / f"{key}.sha256").read_text().strip()


def test_the_key_covers_flags_compiler_and_cpu(source, monkeypatch):
    compiler = native_build.compiler()
    text, header = source.read_text(), native_build.header_path(source).read_text()
    key = native_build.key_of(text, header, compiler, KERNEL)
    assert native_build.key_of(text, header, compiler) != key
    assert native_build.key_of(text, header, compiler, "adagrad_default_f64") != key
    assert native_build.key_of(text + " ", header, compiler, KERNEL) != key
    assert native_build.key_of(text, header + " ", compiler, KERNEL) != key
    monkeypatch.setattr(native_build, "FLAGS", native_build.FLAGS + ("-DX",))
    assert native_build.key_of(text, header, compiler, KERNEL) != key
    monkeypatch.undo()
    monkeypatch.setattr(native_build, "cpu_features", lambda: "another CPU")
    assert native_build.key_of(text, header, compiler, KERNEL) != key
    monkeypatch.undo()
    monkeypatch.setattr(native_build, "compiler_identity", lambda path: "another compiler")
    assert native_build.key_of(text, header, compiler, KERNEL) != key


def _sgld_pair():
    fused = optforge.create("sgld", seed=3, learning_rate=0.01, wd=0.01, rescale_grad=0.7)
    ref = optforge.create("sgld", seed=3, learning_rate=0.01, wd=0.01, rescale_grad=0.7, use_fused_step=False)
    return fused, ref


def _run(opt, weight, grad):
    opt.update(0, weight, grad, opt.create_state(0, weight))


@pytest.fixture
def fresh_warnings(monkeypatch):
    """No warning given and no backend chosen yet in this process."""
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setattr(native, "_BACKENDS", {})


def test_numpy_backend_runs_the_numpy_code(monkeypatch, fresh_warnings):
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "numpy")
    monkeypatch.setattr(native_build, "load", lambda *a: pytest.fail("the native kernels were loaded"))
    rng = np.random.default_rng(1)
    weight, grad = rng.standard_normal((300, 500)).astype(np.float32), rng.standard_normal((300, 500)).astype(np.float32)
    fused, ref = _sgld_pair()
    w1, w2 = weight.copy(), weight.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(fused, w1, grad)
    _run(ref, w2, grad)
    np.testing.assert_array_equal(w1, w2)      # the NumPy noise: the very same numbers


def test_an_unknown_backend_is_an_error_before_anything_changes(monkeypatch, fresh_warnings):
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "fortran")
    opt = optforge.create("adam")
    weight = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="OPTFORGE_CPU_BACKEND='fortran': expected 'native' or 'numpy'"):
        opt.update(0, weight, np.ones(8, np.float32), opt.create_state(0, weight))
    assert (weight == 1).all() and opt.num_update == 0


def test_without_a_compiler_the_numpy_code_runs_after_one_warning(monkeypatch, fresh_warnings):
    monkeypatch.delenv("OPTFORGE_CPU_BACKEND", raising=False)
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    rng = np.random.default_rng(2)
    weight = rng.standard_normal(1000).astype(np.float32)
    fused, ref = _sgld_pair()
    w1, w2 = weight.copy(), weight.copy()
    grad = rng.standard_normal(1000).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="CXX='/nonexistent/c\\+\\+'.*install a C\\+\\+ compiler") as caught:
        _run(fused, w1, grad)
        _run(fused, w1, grad)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    _run(ref, w2, grad)
    _run(ref, w2, grad)
    np.testing.assert_array_equal(w1, w2)


def test_native_backend_without_a_compiler_is_an_error_before_anything_changes(monkeypatch, fresh_warnings):
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "native")
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    opt = optforge.create("adam")
    weight = np.ones(8, np.float32)
    state = opt.create_state(0, weight)
    with pytest.raises(RuntimeError, match="OPTFORGE_CPU_BACKEND=native, but CXX='/nonexistent/c\\+\\+'"):
        opt.update(0, weight, np.ones(8, np.float32), state)
    assert (weight == 1).all() and opt.num_update == 0 and not any(s.any() for s in state)


def test_thread_count_is_validated():
    with pytest.raises(ValueError, match="positive integer"):
        native.set_num_threads(0)
    native.set_num_threads(3)
    try:
        assert native.num_threads() == 3
    finally:
        native.set_num_threads(None)


def test_import_builds_and_loads_nothing():
    script = ("import sys, numpy, optforge; opt = optforge.create('adam'); "
              "print([m for m in sys.modules if m.startswith('optforge.runtime.backends.native')])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_spec_loaded_from_anywhere_gets_native_kernels(source, cache, tmp_path, repo_root):
    spec = tmp_path / "myadagrad.toml"
    spec.write_text((repo_root / "specs" / "adagrad.toml").read_text().replace('name = "AdaGrad"', 'name = "MyAdaGrad"', 1))
    cls = optforge.load_spec(spec, register=False)
    assert native.source_of(cls._module).parent.name == "cpu"
    fused, ref = cls(learning_rate=0.05, wd=0.01, rescale_grad=0.7), cls(learning_rate=0.05, wd=0.01, rescale_grad=0.7,
                                                                        use_fused_step=False)
    rng = np.random.default_rng(4)
    weight = rng.standard_normal(5000).astype(np.float32)
    w1, w2 = weight.copy(), weight.copy()
    s1, s2 = fused.create_state(0, w1), ref.create_state(0, w2)
    before = len(native_build.compiled)
    for _ in range(3):
        grad = rng.standard_normal(5000).astype(np.float32)
        fused.update(0, w1, grad, s1)
        ref.update(0, w2, grad, s2)
    assert len(native_build.compiled) == before + 1          # its own library, built once
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(s1, s2)


def test_the_openmp_runtime_spins_briefly_before_its_threads_sleep():
    # in a process where the kernels load libgomp first (no torch), idle threads spin
    # SPIN_COUNT times: what libgomp reports it read (PASSIVE would show 0, its default
    # 300000); the variable is gone again after the load, and a user's setting is kept
    script = """
import ctypes, os, sys
import numpy as np, optforge
opt = optforge.create("sgd", learning_rate=0.1, momentum=0.9, aggregate_num=2)
ws = [np.ones(100, np.float32), np.ones(50, np.float32)]
ss = [opt.create_state(i, w) for i, w in enumerate(ws)]
opt.update([0, 1], ws, [np.ones_like(w) for w in ws], ss)
print(os.environ.get("GOMP_SPINCOUNT"), "torch" in sys.modules, flush=True)
ctypes.CDLL("libgomp.so.1").omp_display_env(1)
"""
    for given, expected in ((None, native_build.SPIN_COUNT), ("250", "250")):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env["OPTFORGE_CPU_BACKEND"] = "native"
        if given is not None:
            env["GOMP_SPINCOUNT"] = given
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        assert result.stdout.split()[:2] == [str(given), "False"]
        assert f"GOMP_SPINCOUNT = '{expected}'" in result.stderr


def test_a_cache_root_that_is_a_file_is_a_clear_error_and_changes_nothing(source, tmp_path, monkeypatch):
    blocking = tmp_path / "a-file"
    blocking.write_text("not a folder")
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(blocking))
    monkeypatch.setenv(native.BACKEND_ENV, "native")
    monkeypatch.setattr(native_build, "_LIBRARIES", {})       # nothing loaded yet: the step must build
    monkeypatch.setattr(native, "_LIBRARIES", {})
    opt = optforge.create(SPEC, learning_rate=0.1)
    weight = np.ones(100, np.float32)
    state = opt.create_state(0, weight)
    with pytest.raises(NotADirectoryError, match=rf"\(from \$OPTFORGE_CACHE_DIR\) cannot hold .*: {blocking} is not a folder"):
        opt.update(0, weight, np.ones(100, np.float32), state)
    assert (weight == 1).all() and (state == 0).all() and opt._index_update_count == {}
    with pytest.raises(NotADirectoryError, match="Set OPTFORGE_CACHE_DIR to a folder"):
        native_build.library_path(source, KERNEL)


def test_sources_of_one_rule_name_build_together(tmp_path):
    """A batch build (the verifier's) of two flavors of one rule: their kernels share symbol
    names (adam_default_math, ...), so they must not meet in one compiler run, and each
    kernel is then found in its own library."""
    from optforge.runtime import registry
    sources = [native.source_of(registry.lookup("adam", flavor)._module) for flavor in ("mxnet2", "mxnet1")]
    assert sources[0].name == sources[1].name
    native_build.load_together([(sources[0], "adam_default_f32"), (sources[1], "adam_default_f32")], tmp_path)
    libraries = [native_build.load(source, "adam_default_f32") for source in sources]
    assert libraries[0] is not libraries[1]
    assert all(hasattr(lib, "adam_default_f32") for lib in libraries)
