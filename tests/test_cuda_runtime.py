"""The CuPy backend's parts that run without a GPU: the kernel cache (NVRTC compiles
without a device), the clear errors when no GPU is usable or when one update mixes NumPy
and CuPy arrays, and that `import optforge` loads no CuPy."""
import os
import subprocess
import sys

import numpy as np
import pytest

import optforge
from optforge.runtime.backends import kernel_cache

import cuda_host
from test_cuda_backend_cpu import FakeCupyArray
from test_cuda_compile import ROOT, nvrtc_available

SOURCE = ROOT / "generated" / "cuda" / "sgd.cu"

COMPILE_IN_A_NEW_PROCESS = """
import sys
from optforge.runtime.backends import kernel_cache
key, data = kernel_cache.cubin(sys.argv[1], "80")
print(key, len(data), len(kernel_cache.compiled))
"""


def test_a_second_process_loads_the_cubin_from_disk_instead_of_compiling(tmp_path, monkeypatch):
    cuda_host.need(nvrtc_available(), "NVRTC")
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path))
    env = dict(os.environ, OPTFORGE_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", COMPILE_IN_A_NEW_PROCESS, str(SOURCE)], env=env,
                           capture_output=True, text=True, check=True).stdout.split() for _ in range(2)]
    (first_key, first_size, first_compiled), (second_key, second_size, second_compiled) = runs
    assert first_compiled == "1" and second_compiled == "0"
    assert first_key == second_key and first_size == second_size
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [f"{first_key}.cubin"]


def test_the_key_covers_source_options_and_arch(tmp_path, monkeypatch):
    cuda_host.need(nvrtc_available(), "NVRTC")
    source = tmp_path / "k.cu"
    source.write_text((ROOT / "generated" / "cuda" / "test.cu").read_text())
    (tmp_path / "optforge.cuh").write_text((ROOT / "generated" / "cuda" / "optforge.cuh").read_text())
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    keys = {kernel_cache.cubin(source, "80")[0], kernel_cache.cubin(source, "90")[0],
            kernel_cache.cubin(source, "90", fmad=False)[0]}
    source.write_text(source.read_text() + "\n// changed\n")
    keys.add(kernel_cache.cubin(source, "90")[0])
    assert len(keys) == 4
    assert kernel_cache.cubin(source, "90")[0] in keys   # same inputs, same key (from memory)


def test_a_cache_root_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    blocking = tmp_path / "a-file"
    blocking.write_text("not a folder")
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(blocking))
    monkeypatch.setattr(kernel_cache, "compile_cubin", lambda *args: b"\x7fELF a cubin")   # no NVRTC needed
    monkeypatch.setattr(kernel_cache, "nvrtc_version", lambda: "12.0")
    with pytest.raises(NotADirectoryError, match=rf"\(from \$OPTFORGE_CACHE_DIR\) cannot hold .*: {blocking} is not a folder"):
        kernel_cache.cubin(SOURCE, "90")


def test_mixing_numpy_and_cupy_weights_in_one_update_is_a_clear_error_and_changes_nothing():
    pytest.importorskip("cupy")
    opt = optforge.create("sgd", momentum=0.9, use_fused_step=True)
    host = np.ones(5, np.float32)
    device = FakeCupyArray(np.ones(5, np.float32))
    states = [opt.create_state(0, host), FakeCupyArray(np.zeros(5, np.float32))]
    with pytest.raises(TypeError, match="mixes numpy and cupy"):
        opt.update([0, 1], [host, device], [np.ones(5, np.float32), FakeCupyArray(np.ones(5, np.float32))], states)
    assert (host == 1).all() and (states[0] == 0).all()
    assert opt._index_update_count == {}


def test_cupy_arrays_without_a_usable_gpu_give_a_clear_error_before_anything_changes():
    cupy = pytest.importorskip("cupy")
    if cupy.cuda.is_available():
        pytest.skip("a GPU is available: the GPU tests cover this path")
    opt = optforge.create("adam", use_fused_step=True)
    weight = FakeCupyArray(np.ones(5, np.float32))
    state = (FakeCupyArray(np.zeros(5, np.float32)), FakeCupyArray(np.zeros(5, np.float32)))
    with pytest.raises(RuntimeError, match="no usable CUDA GPU"):
        opt.update([0], [weight], [FakeCupyArray(np.ones(5, np.float32))], [state])
    assert opt._index_update_count == {}


def test_import_optforge_loads_no_cupy_sympy_or_jinja2():
    code = "import sys, optforge; optforge.create('adam'); print(sorted(m for m in ('cupy', 'sympy', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
