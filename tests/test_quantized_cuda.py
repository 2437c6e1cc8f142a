"""The CUDA kernels of quantized states (f32_q8, f32_qbf16, f32_qbf16sr) against the NumPy
reference, without a GPU.

`optimizer.update` on stand-ins for CuPy arrays (optforge.verify.host_device) goes through
the real CuPy backend (runtime/backends/cupy_quantized.py: grouping by suffix, tables,
maps, rounding keys, grids); only the kernels come from the generated `.cu` files compiled
for the host, blocks run one at a time with 4 threads each on OS threads (the 8-bit kernels
reduce each block's absmax in shared memory with __syncthreads). The reference is the
rule's generated NumPy code between `quantized.load` and `quantized.store` on NumPy arrays
(`use_fused_step=False`).

Tolerance: none. Both sides do the same float32 operations in the same order (the host
build has no FMA contraction), look codes up in the same tables, and stochastic rounding
draws the same bits (a function of the state's key and the element's index in its tensor),
so weights, codes, absmax and bfloat16 bits must be equal (a NaN equals a NaN).

bfloat16 states are wrapped as device arrays here although CuPy has no bfloat16 (a CuPy
optimizer refuses to create them): the kernels and their launch are checked all the same.
"""
import numpy as np
import pytest

import optforge
from optforge.runtime.backends import cupy_quantized
from optforge.runtime.backends import quantized as Q
from optforge.verify import host_device

import cuda_host
from test_cuda_cpu import STEPS, assert_same_bits, gradient

pytest.importorskip("cupy")     # array_module recognises CuPy arrays through the cupy package

BEGIN = 3
MIN_SIZE = 1000     # the 7-element tensor keeps float32 states in the same update
SINGLE = {0: (47, 100)}                                  # a short last block of 256
MULTI = {1: (3, 21847), 2: (7,), 3: (5, 1001)}           # over two chunks; float32 states; short block
RULES = [
    ("mxnet2", "adam", {}), ("torch", "adam", {"amsgrad": True}), ("torch", "adamw", {}),
    ("mxnet2", "lion", {}), ("torch", "sgd", {"momentum": 0.9, "nesterov": True}),
    ("torch", "rmsprop", {"centered": True, "momentum": 0.9}), ("torch", "adagrad", {}),
]
SUFFIX = {"8bit": "f32_q8", "bfloat16": "f32_qbf16", "bfloat16_stochastic": "f32_qbf16sr"}


@pytest.fixture
def libraries(request, tmp_path_factory, monkeypatch):
    """The CuPy backend launching the host builds of the `.cu` files it needs; a single
    tensor's 8-bit kernel gets 6 thread blocks (2 SMs of 3), fewer than its blocks of 256,
    so that each thread block steps over several."""
    cuda_host.need(cuda_host.compiler(), "g++")
    monkeypatch.setattr(cupy_quantized, "BLOCKS_PER_SM", 3)
    folder = cuda_host.cache_folder(request.config, tmp_path_factory)
    libraries = host_device.HostLibraries(folder)
    with host_device.host_cuda_backend(libraries):
        yield libraries


def _device(state):
    """A host state as the CuPy backend holds it: each array a DeviceArray, an 8-bit state's
    codes and absmax each."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(_device(s) for s in state)
    if isinstance(state, Q.Blockwise8bit):
        return Q.Blockwise8bit(host_device.DeviceArray(state.codes.copy()),
                               host_device.DeviceArray(state.absmax.copy()), state.signed)
    return host_device.DeviceArray(state.copy())


def _parts(state):
    """A state's arrays on the host: an 8-bit state's codes and absmax, any other itself."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _parts(s)]
    if isinstance(state, Q.Blockwise8bit):
        return [host_device.on_host(state.codes), host_device.on_host(state.absmax)]
    return [host_device.on_host(state)]


def _pair(flavor, name, hyper, storage):
    made = []
    for fused in (True, False):
        opt = optforge.create(name, flavor=flavor, use_fused_step=fused, begin_num_update=BEGIN,
                              state_storage=storage, min_8bit_size=MIN_SIZE, **hyper)
        opt.set_lr_mult({2: 0.5, 3: 2.0})
        opt.set_wd_mult({1: 0.0, 3: 3.0})
        made.append(opt)
    return made


@pytest.mark.parametrize("storage", list(SUFFIX))
@pytest.mark.parametrize("flavor,name,hyper", RULES, ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{k}={v}" for k, v in x.items()) or "default")
def test_cuda_kernels_equal_the_numpy_reference_bit_for_bit(libraries, flavor, name, hyper, storage):
    fused, ref = _pair(flavor, name, hyper, storage)
    rng = np.random.default_rng(13)
    shapes = {**SINGLE, **MULTI}
    ref_w = {i: rng.standard_normal(s).astype(np.float32) for i, s in shapes.items()}
    ref_s = {i: ref.create_state(i, w) for i, w in ref_w.items()}
    dev_w = {i: host_device.DeviceArray(w.copy()) for i, w in ref_w.items()}
    dev_s = {i: _device(s) for i, s in ref_s.items()}
    assert any(isinstance(p, Q.Blockwise8bit) for p in (ref_s[0] if isinstance(ref_s[0], tuple) else [ref_s[0]])) \
        or storage != "8bit"
    for step, (lr, wd, rescale, clip, nan) in enumerate(STEPS, start=1):
        for opt in (fused, ref):
            opt.set_learning_rate(lr)
            opt.wd, opt.rescale_grad, opt.clip_gradient = wd + 0.01, rescale, clip
        for group in (list(SINGLE), list(MULTI)):
            grads = [gradient(rng, shapes[i], np.float32, nan) for i in group]
            with np.errstate(all="ignore"):     # NaN and inf gradients are on purpose
                ref.update(group, [ref_w[i] for i in group], grads, [ref_s[i] for i in group])
                fused.update(group, [dev_w[i] for i in group], [host_device.DeviceArray(g) for g in grads],
                             [dev_s[i] for i in group])
        for i in shapes:
            assert_same_bits(host_device.on_host(dev_w[i]), ref_w[i], f"step {step}, parameter {i}: weight")
            got, want = _parts(dev_s[i]), _parts(ref_s[i])
            assert len(got) == len(want) and got
            for k, (a, b) in enumerate(zip(got, want)):
                assert_same_bits(a, b, f"step {step}, parameter {i}: state part {k}")
    grids = [grid for n, grid in libraries.launched if n.endswith("_f32_q8")]
    assert all(grid == (6,) for grid in grids), grids
    launched = [n for n, _ in libraries.launched]
    suffix = SUFFIX[storage]
    assert sum(n.endswith("_" + suffix) for n in launched) == len(STEPS), launched          # single tensor
    assert sum(n.endswith(f"_{suffix}_multi") for n in launched) == len(STEPS), launched    # multi-tensor
    assert any(n.endswith("_f32_multi") or n.endswith("_f32") for n in launched) == (storage == "8bit")


def test_the_cuda_kernels_of_stored_states_are_those_of_the_native_target():
    """The same variants have them as on the CPU (no passes, row or device values, noise):
    Adam's, not LAMB's (reductions), whose stored states run the NumPy code between load and
    store on CuPy arrays as on NumPy arrays."""
    from optforge.runtime.backends import cupy_backend, launch_table, native
    for name, expected in (("adam", True), ("adamw", True), ("lion", True), ("lamb", False), ("lars", False)):
        module = type(optforge.create(name))._module
        assert cupy_backend.quantized_kernels(module) is expected, name
        assert launch_table.quantized_kernels(launch_table.metadata(module)) is expected, name
        for variant in launch_table.metadata(module).VARIANTS.values():
            if "quantized" in variant:
                assert (variant["quantized"] is None) == (variant["quantized_cuda"] is None)
                if variant["quantized"] is not None:
                    assert variant["quantized_cuda"]["kernels"] == variant["quantized"]["kernels"]
