"""On a CUDA GPU (`pytest -m gpu`): 8-bit and bfloat16 optimizer states on CuPy arrays run
the generated CUDA kernels of stored states (runtime/backends/cupy_quantized.py) and equal
the NumPy reference (`use_fused_step=False` on NumPy arrays: the rule's NumPy code between
`quantized.load` and `quantized.store`) bit for bit: weights, codes and absmax, over several
steps with a changing learning rate, wd > 0, rescale_grad != 1, clipping, NaN gradients and
per-parameter lr/wd multipliers, through the single- and the multi-tensor kernels, with a
tensor under min_8bit_size keeping float32 states in the same update. bfloat16 states are
their bits on CuPy, uint16 arrays (backends/quantized.py), equal to the reference's bits;
LAMB's (no kernels for stored states) run the NumPy code on the CuPy arrays between load
and store, and state dicts carry them between CuPy and NumPy arrays, and between CUDA and
CPU tensors in optforge.torch (`torch.load(weights_only=True)`).

Tolerance: none. The kernels are compiled without FMA contraction (OPTFORGE_CUDA_FMAD=0),
CUDA's float32 division and square root are correctly rounded as NumPy's are, the codes
come from the reference's own tables, and a NaN equals a NaN whatever its bits (bfloat16
states through the NumPy code: every bit, NaNs included). tests/test_quantized_cuda.py
checks the same without a GPU.
"""
import io

import numpy as np
import pytest

from optforge.runtime.backends import cupy_quantized
from optforge.runtime.backends import quantized as Q

from test_cuda_cpu import STEPS, assert_same_bits, gradient
import optforge
from test_quantized_cuda import MULTI, RULES, SINGLE, SUFFIX, _pair

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
    if str(state.dtype) == "bfloat16":      # on CuPy arrays: its bits
        return cupy.asarray(state.view(np.uint16))
    return cupy.asarray(state)


def _host_parts(state):
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _host_parts(s)]
    if isinstance(state, Q.Blockwise8bit):
        return [cupy.asnumpy(state.codes), cupy.asnumpy(state.absmax)] if not isinstance(state.codes, np.ndarray) \
            else [state.codes, state.absmax]
    array = state if isinstance(state, np.ndarray) else cupy.asnumpy(state)
    return [array.view(np.uint16) if str(array.dtype) == "bfloat16" else array]     # bfloat16: its bits


@pytest.mark.parametrize("storage", list(SUFFIX))
@pytest.mark.parametrize("flavor,name,hyper", RULES, ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{k}={v}" for k, v in x.items()) or "default")
def test_stored_states_on_cupy_arrays_equal_the_numpy_reference(monkeypatch, flavor, name, hyper, storage):
    launched = []
    original = cupy_quantized.launch

    def recorded(cupy_, kernels, meta, variant, suffix, *args):
        launched.append(suffix)
        return original(cupy_, kernels, meta, variant, suffix, *args)

    monkeypatch.setattr(cupy_quantized, "launch", recorded)
    fused, ref = _pair(flavor, name, hyper, storage)
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
    assert launched.count(SUFFIX[storage]) == 2 * len(STEPS), launched     # single and multi-tensor, every step


def _bits(state):
    return [cupy.asnumpy(p) if not isinstance(p, np.ndarray) else p.view(np.uint16)
            for p in (state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize("storage", ["bfloat16", "bfloat16_stochastic"])
@pytest.mark.parametrize("name,fused", [("lamb", True), ("adamw", False), ("adamw", True)])
def test_bfloat16_states_made_on_cupy_equal_the_numpy_reference(name, fused, storage):
    """States created on the GPU (bits), several steps of several tensors, signed values,
    wd > 0, rescale_grad != 1, a changing lr: LAMB through its NumPy code on CuPy arrays,
    AdamW through it and through its kernels; every bit equal to the reference's."""
    dev, ref = (optforge.create(name, use_fused_step=use, state_storage=storage, learning_rate=0.01)
                for use in (fused, False))
    for opt in (dev, ref):
        opt.set_lr_mult({2: 0.5})
        opt.set_wd_mult({1: 0.0, 2: 3.0})
    rng = np.random.default_rng(21)
    shapes = {0: (47, 100), 1: (7,), 2: (5, 1001)}
    ref_w = {i: np.array(rng.standard_normal(s) * 3, dtype=np.float32) for i, s in shapes.items()}
    dev_w = {i: cupy.asarray(w) for i, w in ref_w.items()}
    ref_s = {i: ref.create_state(i, w) for i, w in ref_w.items()}
    dev_s = {i: dev.create_state(i, w) for i, w in dev_w.items()}
    for step, (lr, wd, rescale) in enumerate([(0.01, 0.1, 1.0), (0.03, 0.05, 0.5), (0.002, 0.2, 4.0)], start=1):
        for opt in (dev, ref):
            opt.set_learning_rate(lr)
            opt.wd, opt.rescale_grad = wd, rescale
        grads = {i: rng.standard_normal(s).astype(np.float32) for i, s in shapes.items()}
        indices = list(shapes)
        ref.update(indices, [ref_w[i] for i in indices], [grads[i] for i in indices], [ref_s[i] for i in indices])
        dev.update(indices, [dev_w[i] for i in indices], [cupy.asarray(grads[i]) for i in indices],
                   [dev_s[i] for i in indices])
        for i in shapes:
            assert_same_bits(cupy.asnumpy(dev_w[i]), ref_w[i], f"step {step}, parameter {i}: weight")
            got, want = _bits(dev_s[i]), _bits(ref_s[i])
            assert all(a.dtype == np.uint16 for a in got)
            for k, (a, b) in enumerate(zip(got, want)):
                np.testing.assert_array_equal(a, b, f"step {step}, parameter {i}: state {k}")


@pytest.mark.parametrize("storage", ["bfloat16", "bfloat16_stochastic"])
def test_bfloat16_state_dicts_between_cupy_and_numpy(storage):
    from optforge import optim
    rng = np.random.default_rng(5)
    start = [rng.standard_normal((40, 30)).astype(np.float32), rng.standard_normal(9).astype(np.float32)]
    cpu = optim.AdamW([p.copy() for p in start], lr=1e-2, state_storage=storage)
    dev = optim.AdamW([cupy.asarray(p) for p in start], lr=1e-2, state_storage=storage)
    for _ in range(2):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in start]
        cpu.step([g.copy() for g in grads])
        dev.step([cupy.asarray(g) for g in grads])
    saved = dev.state_dict()
    for pid, entry in saved["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert type(entry[key]) is np.ndarray and str(entry[key].dtype) == "bfloat16"
    host = optim.AdamW([cupy.asnumpy(p) for p in dev.param_groups[0]["params"]], lr=1e-2, state_storage=storage)
    host.load_state_dict(saved)
    back = optim.AdamW([cupy.asarray(p) for p in cpu.param_groups[0]["params"]], lr=1e-2, state_storage=storage)
    back.load_state_dict(cpu.state_dict())
    for pid in cpu.state:
        for a, b, c, d in zip(_bits(host.state[pid]), _bits(back.state[pid]), _bits(cpu.state[pid]),
                              _bits(dev.state[pid])):
            np.testing.assert_array_equal(a, d)
            np.testing.assert_array_equal(b, c)
            np.testing.assert_array_equal(c, d)


@pytest.mark.parametrize("storage", ["bfloat16", "bfloat16_stochastic"])
def test_bfloat16_states_of_cuda_tensors_in_optforge_torch(storage):
    """optforge.torch on CUDA tensors keeps bfloat16 states as bfloat16 CUDA tensors (seen as
    their bits): the same bits as on CPU tensors, and a state dict saved from either loads
    with weights_only=True into the other."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    torch.manual_seed(0)
    start = [torch.randn(40, 30), torch.randn(9)]
    made = {}
    for device in ("cpu", "cuda"):
        params = [torch.nn.Parameter(p.clone().to(device)) for p in start]
        made[device] = (params, optforge.torch.AdamW(params, lr=1e-2, weight_decay=0.1, state_storage=storage))
    for step in range(3):
        grads = [torch.randn(p.shape) for p in start]
        for device, (params, opt) in made.items():
            for p, g in zip(params, grads):
                p.grad = g.to(device)
            opt.step()
    (cpu_params, cpu_opt), (gpu_params, gpu_opt) = made["cpu"], made["cuda"]
    for p, q in zip(cpu_params, gpu_params):
        assert torch.equal(p.detach().view(torch.int32), q.detach().cpu().view(torch.int32))
        for key in ("exp_avg", "exp_avg_sq"):
            a, b = cpu_opt.state[p][key], gpu_opt.state[q][key]
            assert a.dtype is torch.bfloat16 and b.dtype is torch.bfloat16 and b.is_cuda
            assert torch.equal(a.view(torch.int16), b.cpu().view(torch.int16))
    buffer = io.BytesIO()
    torch.save(gpu_opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True, map_location="cpu")
    other = optforge.torch.AdamW([torch.nn.Parameter(p.detach().clone()) for p in cpu_params], lr=1e-2,
                                 weight_decay=0.1, state_storage=storage)
    other.load_state_dict(loaded)
    to_gpu = optforge.torch.AdamW([torch.nn.Parameter(p.detach().clone().cuda()) for p in cpu_params], lr=1e-2,
                                  weight_decay=0.1, state_storage=storage)
    to_gpu.load_state_dict(cpu_opt.state_dict())
    for p, q, r in zip(cpu_params, other.param_groups[0]["params"], to_gpu.param_groups[0]["params"]):
        for key in ("exp_avg", "exp_avg_sq"):
            want = cpu_opt.state[p][key].view(torch.int16)
            assert torch.equal(other.state[q][key].view(torch.int16), want)
            assert to_gpu.state[r][key].is_cuda and to_gpu.state[r][key].dtype is torch.bfloat16
            assert torch.equal(to_gpu.state[r][key].cpu().view(torch.int16), want)
