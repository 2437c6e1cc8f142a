"""The CUDA stage kernels of matrix rules (generated/cuda/<spec>.stages.cu).

On the CPU (every run): each `.stages.cu` file is compiled as host C++ (tests/cuda_host.py:
CUDA keywords defined away, the grid emulated one (block, thread) after another, no FMA
contraction) and `fused_step` runs the spec's stage driver with the runtime's own `stage`
(`cupy_matrix.Stages`, which builds the kernel arguments: pointers, (batch, rows, cols)
element strides, float64 scalars, kept or in-place outputs) launching those host kernels,
with NumPy doing the products, transposes and norms. Compared with `step` (the generated
NumPy kernel, itself checked against hand-written references and torch.optim in
tests/test_matrix_rules.py).

Tolerance: none, float32 and float64 alike. The kernels compute the same three-address
code in the same order as the NumPy kernel with the same correctly rounded operations,
scalars rounded once to the math type, and every library operation is the same NumPy call.

Steps: 6, begin_num_update > 0, wd > 0, rescale_grad != 1, clipping off and at 0.6 with
signed data beyond it, a changing learning rate; shapes 2-D tall, wide (Muon transposes)
and square, >2-D (Adafactor: a batch of matrices) and 1-D, so operands arrive transposed
(swapped strides), broadcast (row and column states, 0-d norms: zero strides) and batched.

On a GPU (`pytest -m gpu`): the same comparisons through CuPy (cuBLAS products, the
kernels compiled by NVRTC) against the NumPy kernel on the host.
"""
import numpy as np
import pytest

from optforge.runtime.backends import cpu, cupy_matrix
from support import signed
from test_matrix_native import CASES, STEPS, _pair, fused_against_step

import cuda_host


@pytest.fixture(scope="module")
def host(repo_root, request, tmp_path_factory):
    """The `.stages.cu` files (one per matrix rule) built for the host."""
    from optforge.runtime import catalog
    cuda_host.need(cuda_host.compiler(), "g++")
    folder = repo_root / "generated" / "cuda"
    sources = sorted(folder.rglob("*" + cupy_matrix.SOURCE_SUFFIX))
    assert len(sources) == sum(1 for cls in catalog.load().values() if cls.SPEC.get("matrix")), sources
    built = cuda_host.build_all(sources, folder, cuda_host.cache_folder(request.config, tmp_path_factory))
    return {path.resolve(): cuda_host.HostKernels(lib) for path, lib in built.items()}


@pytest.fixture
def host_stages(host, monkeypatch):
    """`fused_step` on NumPy arrays runs the driver with `cupy_matrix.Stages` launching the
    host-compiled CUDA kernels; returns the list of (stage kernel, element count) launched."""
    launched = []

    def run(module, variant, weight, grad, arrays, scalars):
        suffix = {np.dtype("float32"): "f32", np.dtype("float64"): "f64"}[weight.dtype]
        kernels = host[cupy_matrix.source_of(module).resolve()]   # (a strict editable install: links)

        def launch(name, n, args):
            launched.append((name, n))
            kernels.launch(name, args, blocks=2, threads=3)

        variant["stages"](np, cupy_matrix.Stages(np, launch, ("host", module.__name__), suffix),
                          weight, grad, *arrays, **scalars)
        return True

    monkeypatch.setattr(cpu, "run_stages", run)
    return launched


@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("flavor,name,shapes,hyper", CASES, ids=[f"{f}-{n}{h}" for f, n, _, h in CASES])
def test_cuda_stage_kernels_on_the_host_equal_the_numpy_kernel_bit_for_bit(flavor, name, shapes, hyper, dtype,
                                                                          clip, host_stages):
    fused_against_step(flavor, name, shapes, hyper, dtype, clip)
    suffix = "_f32" if dtype is np.float32 else "_f64"
    assert host_stages and all(name.endswith(suffix) for name, _ in host_stages)   # the kernels ran


def test_a_strided_weight_is_read_through_its_strides_and_written_back(host_stages):
    rng = np.random.default_rng(11)
    fused, plain = _pair("torch", "adafactor", {}, 0.6)
    weight = signed(rng, (6, 8), 1.0, np.float64)[:, ::2]        # not C-contiguous: copied back
    theirs = weight.copy()
    s1, s2 = fused.create_state(0, weight), plain.create_state(0, theirs)
    for _ in range(3):
        grad = signed(rng, weight.shape, 2.0, np.float64)
        fused.update(0, weight, grad, s1)
        plain.update(0, theirs, grad, s2)
        np.testing.assert_array_equal(weight, theirs)
    assert host_stages


def test_stage_arguments_carry_strides_of_transposed_and_broadcast_operands():
    """The arguments `Stages` builds: per operand its pointer and (batch, rows, cols) element
    strides; a transposed operand swaps them, a broadcast axis has stride 0; scalars float64
    with None passed as infinity; the stored value goes into the kept outputs."""
    calls = []
    stages = cupy_matrix.Stages(np, lambda name, n, args: calls.append((name, n, args)), ("unit", "t"), "f64")
    a = np.arange(12.0).reshape(3, 4)
    row = np.ones((3, 1))
    (out,) = stages("k", (a.T, row.T, np.asarray(2.0)), (0.5, None), (None,))
    name, n, args = calls[0]
    assert (name, n, out.shape) == ("k_f64", 12, (4, 3))
    assert [int(x) for x in args[:3]] == [1, 4, 3]
    strides = [[int(x) for x in args[k:k + 3]] for k in (4, 8, 12)]
    assert strides == [[0, 1, 4], [0, 0, 1], [0, 0, 0]]
    assert args[15] is out and [float(x) for x in args[16:]] == [0.5, np.inf]


def test_nvrtc_compiles_one_variant_of_one_math_type(repo_root):
    """The runtime's first-use compile (`cupy_matrix.one_kernel` macros): the cubin holds
    exactly the variant's entry points of that math type (the whole file is compiled by
    tests/test_cuda_compile.py)."""
    import re
    from optforge.runtime import registry
    from optforge.runtime.backends import kernel_cache
    from test_cuda_compile import nvrtc_available
    cuda_host.need(nvrtc_available(), "NVRTC (pip install nvidia-cuda-nvrtc and cupy)")
    module = registry.lookup("muon", "torch")._module
    source = cupy_matrix.source_of(module)
    everything = set(re.findall(r"void __launch_bounds__\(\d+\) (\w+)\(", source.read_text()))
    for variant in list(module.VARIANTS.values())[:2]:
        prefix = re.escape(f"{module.SPEC['key']}_{variant['name']}")
        expected = {n for n in everything if re.fullmatch(prefix + r"_stage\d+_f64", n)}
        _, data = kernel_cache.cubin(source, "90", defines=cupy_matrix.one_kernel(module, variant, "f64"))
        names = {n.decode() for n in re.findall(rb"\w+_stage\d+_f(?:32|64)", data)}
        assert expected and names == expected, variant["name"]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("flavor,name,shapes,hyper", CASES, ids=[f"{f}-{n}{h}" for f, n, _, h in CASES])
def test_cupy_stage_kernels_equal_the_numpy_kernel(flavor, name, shapes, hyper, dtype, monkeypatch):
    """CuPy arrays with fused_step: the stage kernels between cuBLAS products, against `step`
    on NumPy arrays. Tolerance: rtol 1e-5 (float32) and 1e-12 (float64) with atol 100x
    smaller: cuBLAS and CuPy's reductions add in another order than NumPy's BLAS and pairwise
    sums (a few ulps per product, carried through up to five Newton-Schulz iterations and
    six steps); the element-wise stages themselves run without FMA (OPTFORGE_CUDA_FMAD=0)."""
    cupy = pytest.importorskip("cupy")
    if not cupy.cuda.is_available():
        pytest.skip("no usable CUDA GPU")
    monkeypatch.setenv("OPTFORGE_CUDA_FMAD", "0")
    ran = []
    original = cupy_matrix.run
    monkeypatch.setattr(cupy_matrix, "run", lambda *args: ran.append(original(*args)) or ran[-1])
    tol = dict(rtol=1e-5, atol=1e-7) if dtype is np.float32 else dict(rtol=1e-12, atol=1e-14)
    fused_against_step(flavor, name, shapes, hyper, dtype, 0.6, device=cupy.asarray,
                       assert_same=lambda ours, theirs, message: np.testing.assert_allclose(
                           cupy.asnumpy(ours), theirs, err_msg=message, **tol))
    assert ran == [True] * (STEPS * len(shapes))
