"""Every generated `.cu` file compiles with NVRTC (the runtime's own compile path,
`kernel_cache.compile_cubin`) to cubin for sm_90; nvcc compiles to cubin for sm_80, when it
is on the PATH, one file of each kind the emitters write (element-wise with quantized
states, passes, rows, noise, group partials, matrix stages with and without noise): every
template's code meets both compilers, and nvcc over every file took 2.7 of CI's 20 minutes.
A missing compiler skips, or fails under OPTFORGE_REQUIRE_CUDA_COMPILERS=1 (set by .ci/run)."""
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from optforge.runtime.backends import kernel_cache

import cuda_host

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "generated" / "cuda").rglob("*.cu"))
NVCC_SOURCES = [ROOT / "generated" / "cuda" / name for name in (
    "adam.cu", "lamb.cu", "groupadagrad.cu", "sgld.cu", "_group_prodigy.cu", "adafactor.stages.cu", "kron.stages.cu")]
ARCHS = ("90",)


def nvrtc_available():
    try:
        kernel_cache.nvrtc_version()
    except Exception:   # no CuPy, or CuPy without a loadable libnvrtc
        return None
    return "nvrtc"


def _nvrtc(source, arch):
    header = (ROOT / "generated" / "cuda" / "optforge.cuh").read_text()
    try:
        data = kernel_cache.compile_cubin(source.read_text(), header, kernel_cache.options(arch), source.name)
    except RuntimeError as err:
        return str(err)
    return None if data[:4] == b"\x7fELF" else f"{source.name}: NVRTC output is not a cubin"


def _nvcc(source):
    result = subprocess.run([shutil.which("nvcc"), "-std=c++17", "-arch=sm_80", "-cubin",
                             f"-I{ROOT / 'generated' / 'cuda'}", "-o", "/dev/null", str(source)],
                            capture_output=True, text=True)
    return None if result.returncode == 0 else result.stderr


@pytest.fixture(scope="module")
def nvrtc_results():
    cuda_host.need(nvrtc_available(), "NVRTC (pip install nvidia-cuda-nvrtc and cupy)")
    jobs = [(s, a) for s in SOURCES for a in ARCHS]
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(jobs, pool.map(lambda job: _nvrtc(*job), jobs)))


@pytest.fixture(scope="module")
def nvcc_results():
    cuda_host.need(shutil.which("nvcc"), "nvcc")
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(NVCC_SOURCES, pool.map(_nvcc, NVCC_SOURCES)))


def test_every_spec_but_the_matrix_rules_has_a_cu_file():
    """Matrix rules (Muon, Adafactor) have no element-wise kernels and launch metadata
    (codegen/targets.py) but their stage kernels, `<spec>.stages.cu` (compiled by the
    tests below like every .cu file); every other spec has its .cu file."""
    import importlib
    from optforge.generated import cuda, numpy
    matrix = {stem for stem in numpy.MODULES
              if importlib.import_module(f"optforge.generated.numpy.{stem}").SPEC.get("matrix")}
    assert matrix >= {"torch.muon", "torch.adafactor", "adafactor"}
    assert set(cuda.MODULES) == set(numpy.MODULES) - matrix
    for stem in cuda.MODULES:
        assert (ROOT / "generated" / "cuda" / (stem.replace(".", "/") + ".cu")).exists(), stem
    for stem in matrix:
        base = ROOT / "generated" / "cuda" / stem.replace(".", "/")
        assert base.with_name(base.name + ".stages.cu").exists() and not base.with_suffix(".py").exists(), stem


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.relative_to(ROOT / "generated" / "cuda").as_posix())
def test_nvrtc_compiles(nvrtc_results, source, arch):
    error = nvrtc_results[(source, arch)]
    assert error is None, error


@pytest.mark.parametrize("source", NVCC_SOURCES, ids=lambda p: p.relative_to(ROOT / "generated" / "cuda").as_posix())
def test_nvcc_compiles(nvcc_results, source):
    error = nvcc_results[source]
    assert error is None, error


def test_nvrtc_reports_a_broken_source_with_the_compiler_log(nvrtc_results):
    header = (ROOT / "generated" / "cuda" / "optforge.cuh").read_text()
    with pytest.raises(RuntimeError, match="(?s)NVRTC failed to compile broken.cu.*undefined"):
        kernel_cache.compile_cubin('#include "optforge.cuh"\nextern "C" __global__ void k() { undefined(); }',
                                   header, kernel_cache.options("90"), "broken.cu")


def test_spec_names_the_cuda_code_uses_itself_are_renamed(tmp_path):
    from optforge.codegen.analysis import analyse
    from optforge.codegen.emitters import cuda_module
    from optforge.codegen.loader import load_rule
    cuda_host.need(cuda_host.compiler(), "g++")
    spec = tmp_path / "clash.toml"
    spec.write_text('name = "Clash"\nupdate = """\nacc = acc + grad**2\nweight = weight - count * grad / norm(acc)\n"""\n\n'
                    '[hyperparameters]\ncount = 0.5\n\n[states]\nacc = "zeros"\n')
    rule = load_rule(spec)
    cu, meta = cuda_module.render(rule, analyse(rule), "clash.toml", "clash")
    assert "u_acc" in cu and "s.u_count" in cu
    assert "'count'" in meta and "'acc'" in meta          # the runtime keeps the spec's names
    (tmp_path / "clash.cu").write_text(cu)
    (tmp_path / "optforge.cuh").write_text((ROOT / "generated" / "cuda" / "optforge.cuh").read_text())
    cuda_host.build(tmp_path / "clash.cu", tmp_path, tmp_path)     # raises with g++'s errors on a clash


def test_a_variant_whose_passes_only_read_the_weight_compiles(tmp_path):
    """NovoGrad stepping the weight on odd steps only: the even variant's pointer to the weight
    is const, and every pass function must take it so (each compiler below refused the call)."""
    from optforge.codegen.analysis import analyse
    from optforge.codegen.emitters import cuda_module
    from optforge.codegen.loader import load_rule
    cuda_host.need(cuda_host.compiler(), "g++")
    text = (ROOT / "specs" / "novograd.toml").read_text().replace('name = "NovoGrad"', 'name = "NovoOdd"')
    spec = tmp_path / "novoodd.toml"
    spec.write_text(text.replace("weight = weight - lr * mean", "if t % 2 != 0:\n    weight = weight - lr * mean"))
    rule = load_rule(spec)
    cu, _ = cuda_module.render(rule, analyse(rule), "novoodd.toml", "novoodd")
    assert "const W* __restrict__ p_weight" in cu
    source = tmp_path / "novoodd.cu"
    source.write_text(cu)
    (tmp_path / "optforge.cuh").write_text((ROOT / "generated" / "cuda" / "optforge.cuh").read_text())
    cuda_host.build(source, tmp_path, tmp_path)     # g++ with the host shim: raises with its errors
    if shutil.which("nvcc"):
        result = subprocess.run([shutil.which("nvcc"), "-std=c++17", "-arch=sm_80", "-cubin", f"-I{tmp_path}",
                                 "-o", "/dev/null", str(source)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    if nvrtc_available():
        header = (tmp_path / "optforge.cuh").read_text()
        kernel_cache.compile_cubin(cu, header, kernel_cache.options("90"), source.name)
