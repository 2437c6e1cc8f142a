"""On a CUDA GPU (`pytest -m gpu`): every optimizer through CuPy against the NumPy reference.

- `fused_step` (the generated CUDA kernels, compiled with OPTFORGE_CUDA_FMAD=0 so that no
  FMA contraction changes the last bits) against `step` on NumPy arrays: float32 and
  float64 bit for bit, over several steps, for one tensor (grid-stride kernel) and for a
  list of tensors in one update (multi-tensor kernel);
- multi-precision float16 weights with float32 master copies, bit for bit;
- rules with reductions (LAMB, LANS, LARS, LBSGD, GroupAdaGrad) run their generated passes:
  compared with the CPU checks' NORM_TOLERANCE (the kernels sum in double, NumPy in float32);
- a rule without generated kernels would run its NumPy code on the CuPy arrays: compared
  with rtol 1e-5 (CuPy sums in another order than NumPy, a few float32 ulps);
- SGLD draws its noise on the device: reproducible from (seed, index, t), and of variance lr.
"""
import numpy as np
import pytest

import optforge
from optforge.runtime import registry
from optforge.runtime.backends import cupy_backend

from test_cuda_backend_cpu import device_steps
from test_cuda_cpu import NORM_TOLERANCE, STEPS, assert_same_bits, gradient, parts, settings
from optforge.runtime.backends import launch_table

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
if not cupy.cuda.is_available():
    pytest.skip("no usable CUDA GPU", allow_module_level=True)

SIZES = [(47, 22), (3, 21851), (3,)]   # packs and tails, several chunks, rows across chunks
REDUCTION_TOLERANCE = dict(rtol=1e-5, atol=1e-7)


@pytest.fixture(autouse=True)
def no_fma(monkeypatch):
    monkeypatch.setenv("OPTFORGE_CUDA_FMAD", "0")


def cases():
    return [pytest.param(flavor, name, hyper, id=f"{flavor}-{name}-" + "-".join(f"{k}={v}" for k, v in hyper.items()))
            for (flavor, name) in registry.registered() for hyper in settings(flavor, name)]


def tolerance(cls, dtype):
    """None (bit for bit) for element-wise kernels, else the tolerance of the rule's path."""
    module = cls._module
    if not cupy_backend.has_kernels(module):
        return REDUCTION_TOLERANCE
    if any(v["passes"] for v in launch_table.metadata(module).VARIANTS.values()):
        return NORM_TOLERANCE[np.dtype(dtype).name]
    return None


def compare(device, host, tol, what):
    device = cupy.asnumpy(device)
    if tol is None:
        assert_same_bits(device, host, what)
    else:
        np.testing.assert_allclose(device.astype(np.float64), host.astype(np.float64), err_msg=what, **tol)


@pytest.mark.parametrize("together", [False, True], ids=["one-at-a-time", "multi-tensor"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("flavor,name,hyper", cases())
def test_fused_step_on_cupy_matches_numpy(flavor, name, hyper, dtype, together):
    if name == "sgld":
        pytest.skip("the device draws other noise numbers: see test_device_noise_is_reproducible")
    reference = optforge.create(name, flavor=flavor, use_fused_step=False, **hyper)
    fused = optforge.create(name, flavor=flavor, use_fused_step=True, **hyper)
    tol = tolerance(type(fused), dtype)
    rng = np.random.default_rng(11)
    indices = list(range(len(SIZES)))
    host_w = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    host_s = [reference.create_state(i, w) for i, w in zip(indices, host_w)]
    dev_w = [cupy.asarray(w) for w in host_w]
    dev_s = [fused.create_state(i, w) for i, w in zip(indices, dev_w)]
    for t, _ in device_steps(rng, (1,), dtype, (reference, fused), nan=False):
        grads = [gradient(rng, n, dtype, tol is None and STEPS[t - 1][4]) for n in SIZES]
        if together:
            reference.update(indices, host_w, grads, host_s)
            fused.update(indices, dev_w, [cupy.asarray(g) for g in grads], dev_s)
        else:
            for i in indices:
                reference.update(i, host_w[i], grads[i], host_s[i])
                fused.update(i, dev_w[i], cupy.asarray(grads[i]), dev_s[i])
        for i in indices:
            compare(dev_w[i], host_w[i], tol, f"step {t}, tensor {i}: weight")
            for k, (d, h) in enumerate(zip(parts(dev_s[i]), parts(host_s[i]))):
                compare(d, h, tol, f"step {t}, tensor {i}: state part {k}")


@pytest.mark.parametrize("flavor,name,hyper", cases())
def test_multi_precision_float16_matches_numpy(flavor, name, hyper):
    if name == "sgld":
        pytest.skip("the device draws other noise numbers")
    reference = optforge.create(name, flavor=flavor, multi_precision=True, use_fused_step=False, **hyper)
    fused = optforge.create(name, flavor=flavor, multi_precision=True, use_fused_step=True, **hyper)
    tol = tolerance(type(fused), np.float32)
    rng = np.random.default_rng(12)
    host_w = rng.standard_normal((37, 111)).astype(np.float16)
    dev_w = cupy.asarray(host_w)
    host_s = reference.create_state_multi_precision(0, host_w)
    dev_s = fused.create_state_multi_precision(0, dev_w)
    for t, grad in device_steps(rng, host_w.shape, np.float16, (reference, fused), nan=False):
        reference.update_multi_precision(0, host_w, grad, host_s)
        fused.update_multi_precision(0, dev_w, cupy.asarray(grad), dev_s)
        compare(dev_w, host_w, None if tol is None else NORM_TOLERANCE["float16"], f"step {t}: weight")
        compare(dev_s[0], host_s[0], tol, f"step {t}: master copy")


def test_device_noise_is_reproducible_and_has_the_variance_of_lr():
    runs = []
    for _ in range(2):
        opt = optforge.create("sgld", seed=3, learning_rate=0.04, use_fused_step=True)
        weight = cupy.zeros(1 << 20, cupy.float32)
        opt.update(0, weight, cupy.zeros_like(weight), None)
        runs.append(cupy.asnumpy(weight))
    assert_same_bits(runs[0], runs[1], "same seed, index and t")
    assert abs(runs[0].mean()) < 5 * 0.2 / 1024
    assert abs(runs[0].std() - 0.2) < 0.002
