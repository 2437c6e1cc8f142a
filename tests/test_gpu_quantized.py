"""On a CUDA GPU (`pytest -m gpu`): 8-bit optimizer states on CuPy arrays run the generated
CUDA kernels of stored states (runtime/backends/cupy_quantized.py) and equal the NumPy
reference (`use_fused_step=False` on NumPy arrays: the rule's NumPy code between
`quantized.load` and `quantized.store`) bit for bit: weights, codes and absmax, over several
steps with a changing learning rate, wd > 0, rescale_grad != 1, clipping, NaN gradients and
per-parameter lr/wd multipliers, through the single- and the multi-tensor kernels, with a
tensor under min_8bit_size keeping float32 states in the same update.

Tolerance: none. The kernels are compiled without FMA contraction (OPTFORGE_CUDA_FMAD=0),
CUDA's float32 division and square root are correctly rounded as NumPy's are, the codes
come from the reference's own tables, and a NaN equals a NaN whatever its bits. bfloat16
states cannot be held by CuPy (no bfloat16 dtype: an optimizer refuses to create them on
CuPy arrays); their kernels are checked by tests/test_quantized_cuda.py on the host.
"""
import numpy as np
import pytest

from optforge.runtime.backends import cupy_quantized
from optforge.runtime.backends import quantized as Q

from test_cuda_cpu import STEPS, assert_same_bits, gradient
from test_quantized_cuda import MULTI, RULES, SINGLE, _pair

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
if not cupy.cuda.is_available():
    pytest.skip("no usable CUDA GPU", allow_module_level=True)


@pytest.fixture(autouse=True)
def no_fma(monkeypatch):
    monkeypatch.setenv("OPTFORGE_CUDA_FMAD", "0")


def _to_device(state):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(_to_device(s) for s in state)
    if isinstance(state, Q.Blockwise8bit):
        return Q.Blockwise8bit(cupy.asarray(state.codes), cupy.asarray(state.absmax), state.signed)
    return cupy.asarray(state)


def _host_parts(state):
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _host_parts(s)]
    if isinstance(state, Q.Blockwise8bit):
        return [cupy.asnumpy(state.codes), cupy.asnumpy(state.absmax)] if not isinstance(state.codes, np.ndarray) \
            else [state.codes, state.absmax]
    return [state if isinstance(state, np.ndarray) else cupy.asnumpy(state)]


@pytest.mark.parametrize("flavor,name,hyper", RULES, ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{k}={v}" for k, v in x.items()) or "default")
def test_8bit_states_on_cupy_arrays_equal_the_numpy_reference(monkeypatch, flavor, name, hyper):
    launched = []
    original = cupy_quantized.launch

    def recorded(cupy_, kernels, meta, variant, suffix, *args):
        launched.append(suffix)
        return original(cupy_, kernels, meta, variant, suffix, *args)

    monkeypatch.setattr(cupy_quantized, "launch", recorded)
    fused, ref = _pair(flavor, name, hyper, "8bit")
    rng = np.random.default_rng(17)
    shapes = {**SINGLE, **MULTI}
    ref_w = {i: rng.standard_normal(s).astype(np.float32) for i, s in shapes.items()}
    ref_s = {i: ref.create_state(i, w) for i, w in ref_w.items()}
    dev_w = {i: cupy.asarray(w) for i, w in ref_w.items()}
    dev_s = {i: _to_device(s) for i, s in ref_s.items()}
    for step, (lr, wd, rescale, clip, nan) in enumerate(STEPS, start=1):
        for opt in (fused, ref):
            opt.set_learning_rate(lr)
            opt.wd, opt.rescale_grad, opt.clip_gradient = wd + 0.01, rescale, clip
        for group in (list(SINGLE), list(MULTI)):
            grads = [gradient(rng, shapes[i], np.float32, nan) for i in group]
            with np.errstate(all="ignore"):
                ref.update(group, [ref_w[i] for i in group], grads, [ref_s[i] for i in group])
                fused.update(group, [dev_w[i] for i in group], [cupy.asarray(g) for g in grads],
                             [dev_s[i] for i in group])
        cupy.cuda.Device().synchronize()
        for i in shapes:
            assert_same_bits(cupy.asnumpy(dev_w[i]), ref_w[i], f"step {step}, parameter {i}: weight")
            got, want = _host_parts(dev_s[i]), _host_parts(ref_s[i])
            assert len(got) == len(want) and got
            for k, (a, b) in enumerate(zip(got, want)):
                assert_same_bits(a, b, f"step {step}, parameter {i}: state part {k}")
    assert launched.count("f32_q8") == 2 * len(STEPS), launched     # single and multi-tensor, every step
