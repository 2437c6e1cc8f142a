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

bfloat16 states on CuPy arrays are their bits, uint16 arrays (CuPy has no bfloat16,
runtime/backends/quantized.py): the device side holds the reference's states as such, and
their bits must equal the reference's bfloat16 bits.

The NumPy code on CuPy arrays (a rule without kernels for its stored states, LAMB, or
`use_fused_step=False`: the generated code between `quantized.load` and `quantized.store`,
the bits rounded by integer arithmetic, `quantized.bfloat16_bits`) runs on another
stand-in, `HostCupy`: host arrays that the runtime takes for CuPy arrays and whose array
module is NumPy under the name "cupy" (`numpy_as_cupy`), so every CuPy-side branch of the
runtime (creating, checking, loading, storing, saving and converting states) runs on them.
Its bits must equal the NumPy reference's (ml_dtypes' rounding; stochastic rounding with
the same bits): no tolerance, a NaN's bits included.
"""
import sys
import types

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
    if str(state.dtype) == "bfloat16":      # on CuPy arrays: its bits
        return host_device.DeviceArray(state.view(np.uint16).copy())
    return host_device.DeviceArray(state.copy())


def _parts(state):
    """A state's arrays on the host: an 8-bit state's codes and absmax, any other itself."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _parts(s)]
    if isinstance(state, Q.Blockwise8bit):
        return [host_device.on_host(state.codes), host_device.on_host(state.absmax)]
    array = np.asarray(host_device.on_host(state))
    return [array.view(np.uint16) if str(array.dtype) == "bfloat16" else array]    # bfloat16: its bits


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


# -- bfloat16 states on CuPy arrays through the NumPy code -------------------------------------

class HostCupy(np.ndarray):
    """A host array that the runtime takes for a cupy.ndarray on `host_device.Device`."""

    __module__ = "cupy._core.core"
    __cuda_array_interface__ = {}
    device = host_device.Device()

    def get(self):
        return np.array(self)


def _as_cupy(value):
    return value.view(HostCupy) if type(value) is np.ndarray else value


class _NumpyAsCupy(types.ModuleType):
    """NumPy under the name "cupy": what it makes from host arrays is a HostCupy."""

    def __getattr__(self, name):
        value = getattr(np, name)
        if callable(value) and not isinstance(value, (type, np.ufunc)):
            def call(*args, **kwargs):
                return _as_cupy(value(*args, **kwargs))
            return call
        return value

    def asnumpy(self, array):
        return np.array(array)


@pytest.fixture
def numpy_as_cupy(monkeypatch):
    """Within: HostCupy arrays belong to the "cupy" module `_NumpyAsCupy` (every runtime
    module's `array_module`, and `array_views.family`); generated CUDA kernels are never
    launched on them (the rules and paths used here run the NumPy code)."""
    from optforge.runtime import array_views
    from optforge.runtime import backends
    fake = _NumpyAsCupy("cupy")
    original = backends.array_module

    def array_module(x):
        return fake if isinstance(x, HostCupy) else original(x)

    for name, module in list(sys.modules.items()):
        if name.startswith("optforge") and getattr(module, "array_module", None) is original:
            monkeypatch.setattr(module, "array_module", array_module)
    family = array_views.family
    monkeypatch.setattr(array_views, "family", lambda x: "cupy" if isinstance(x, HostCupy) else family(x))
    return fake


BF16 = ["bfloat16", "bfloat16_stochastic"]
SHAPES = {0: (47, 100), 1: (7,), 2: (5, 1001), 3: ()}


def _bits(state):
    """A state's stored parts as host uint16 bits (bfloat16 states) or arrays."""
    return [np.array(p).view(np.uint16) if str(np.asarray(p).dtype) == "bfloat16" else np.array(p)
            for p in (state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize("storage", BF16)
@pytest.mark.parametrize("name,fused", [("lamb", True), ("adamw", False)])
def test_bfloat16_states_on_cupy_through_the_numpy_code_equal_the_reference(numpy_as_cupy, name, fused, storage):
    """LAMB (no kernels for its stored states: the NumPy code between load and store) and
    AdamW without fused steps: states created on the device as bits, several steps of
    several tensors (signed values, a 0-d one), wd > 0, rescale_grad != 1, lr changing,
    per-parameter multipliers: every state bit and weight bit equal to the reference's."""
    dev, ref = (optforge.create(name, use_fused_step=use, state_storage=storage, learning_rate=0.01)
                for use in (fused, False))
    for opt in (dev, ref):
        opt.set_lr_mult({2: 0.5})
        opt.set_wd_mult({1: 0.0, 2: 3.0})
    rng = np.random.default_rng(21)
    ref_w = {i: np.array(rng.standard_normal(s) * 3, dtype=np.float32) for i, s in SHAPES.items()}
    dev_w = {i: w.copy().view(HostCupy) for i, w in ref_w.items()}
    ref_s = {i: ref.create_state(i, w) for i, w in ref_w.items()}
    dev_s = {i: dev.create_state(i, w) for i, w in dev_w.items()}
    for i in SHAPES:
        parts = dev_s[i] if isinstance(dev_s[i], tuple) else (dev_s[i],)
        assert all(type(p) is HostCupy and p.dtype == np.uint16 for p in parts), (i, [p.dtype for p in parts])
        assert all(Q.is_bfloat16(p) and Q.is_stored(dev_w[i], p) for p in parts)
        for a, b in zip(_bits(dev_s[i]), _bits(ref_s[i])):
            np.testing.assert_array_equal(a, b)
    for step, (lr, wd, rescale) in enumerate([(0.01, 0.1, 1.0), (0.03, 0.05, 0.5), (0.002, 0.2, 4.0),
                                              (0.02, 0.0, 1.0)], start=1):
        for opt in (dev, ref):
            opt.set_learning_rate(lr)
            opt.wd, opt.rescale_grad = wd, rescale
        grads = {i: np.array(rng.standard_normal(s), dtype=np.float32) for i, s in SHAPES.items()}
        if step == 3:
            grads[1][2] = np.nan    # a NaN state: the quiet NaN of its sign on both sides
        indices = list(SHAPES)
        with np.errstate(all="ignore"):
            ref.update(indices, [ref_w[i] for i in indices], [grads[i] for i in indices],
                       [ref_s[i] for i in indices])
            dev.update(indices, [dev_w[i] for i in indices], [grads[i].copy().view(HostCupy) for i in indices],
                       [dev_s[i] for i in indices])
        for i in SHAPES:
            np.testing.assert_array_equal(np.asarray(dev_w[i]).view(np.uint32), ref_w[i].view(np.uint32),
                                          f"step {step}, parameter {i}: weight")
            for k, (a, b) in enumerate(zip(_bits(dev_s[i]), _bits(ref_s[i]))):
                np.testing.assert_array_equal(a, b, f"step {step}, parameter {i}: state {k}")
    assert any(np.isnan(Q.load_bfloat16(p)).any() for p in (dev_s[1] if isinstance(dev_s[1], tuple)
                                                             else (dev_s[1],)))


def test_bfloat16_rounding_of_the_cupy_path_is_the_references_over_many_floats():
    """`quantized.bfloat16_bits` (the CuPy path's integer rounding) against the NumPy
    reference (`store_bfloat16`: ml_dtypes' conversion, and its stochastic rounding) over
    random float32 bit patterns and the edges: ties, the largest finite values, infinities,
    NaNs with payloads, subnormals, zeros."""
    rng = np.random.default_rng(3)
    edges = [0, 0x80000000, 1, 0x8000, 0x8001, 0x18000, 0x17FFF, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF,
             0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7F800001, 0x7FC00000, 0xFFC12345, 0xFFFFFFFF, 0x3F808000,
             0x3F818000, 0x007FFFFF]
    words = np.concatenate([rng.integers(0, 2 ** 32, 300_000, dtype=np.uint64).astype(np.uint32),
                            np.array(edges, dtype=np.uint32)])
    values = words.view(np.float32)
    for key in (None, 0x0123456789ABCDEF, 7):
        want = np.empty(values.shape, dtype=Q.bfloat16())
        with np.errstate(invalid="ignore"):
            Q.store_bfloat16(want, values, key)
        np.testing.assert_array_equal(Q.bfloat16_bits(values, key), want.view(np.uint16), f"key {key}")
    bits = want.view(np.uint16)
    np.testing.assert_array_equal(Q.load_bfloat16(bits.view(HostCupy)).view(np.uint32),
                                  want.astype(np.float32).view(np.uint32))


def _params_step(opt, params, rng, wrap=lambda a: a):
    opt.step([wrap(rng.standard_normal(p.shape).astype(np.float32)) for p in params])


@pytest.mark.parametrize("storage", BF16)
def test_bfloat16_state_dicts_convert_between_cupy_and_numpy(numpy_as_cupy, storage):
    """The params style: a CuPy optimizer's state dict holds each bfloat16 state as a bfloat16
    NumPy array (the NumPy optimizer's form), which a NumPy optimizer loads as it is, and a
    NumPy optimizer's state dict loads onto CuPy as the same bits; both then step on equally.
    An optimizer with float32 states loads them exactly (bfloat16 to float32), and the
    MXNet style's get_states / set_states carry them across too."""
    from optforge import optim
    rng = np.random.default_rng(5)
    start = [rng.standard_normal((40, 30)).astype(np.float32), rng.standard_normal(9).astype(np.float32)]
    cpu = optim.LAMB([p.copy() for p in start], lr=1e-2, weight_decay=0.1, state_storage=storage)
    dev = optim.LAMB([p.copy().view(HostCupy) for p in start], lr=1e-2, weight_decay=0.1, state_storage=storage)
    for _ in range(2):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in start]
        cpu.step([g.copy() for g in grads])
        dev.step([g.copy().view(HostCupy) for g in grads])
    saved = dev.state_dict()
    for pid, entry in saved["state"].items():
        for k, key in enumerate(("mean", "var")):
            assert type(entry[key]) is np.ndarray and str(entry[key].dtype) == "bfloat16", (pid, key)
            np.testing.assert_array_equal(entry[key].view(np.uint16), np.asarray(dev.state[pid][k]))
    # CuPy -> NumPy
    other = optim.LAMB([p.copy() for p in cpu.param_groups[0]["params"]], lr=1e-2, weight_decay=0.1,
                       state_storage=storage)
    other.load_state_dict(saved)
    for pid in cpu.state:
        for a, b in zip(_bits(other.state[pid]), _bits(cpu.state[pid])):
            np.testing.assert_array_equal(a, b)
    # NumPy -> CuPy
    back = optim.LAMB([np.array(p).view(HostCupy) for p in dev.param_groups[0]["params"]], lr=1e-2,
                      weight_decay=0.1, state_storage=storage)
    back.load_state_dict(cpu.state_dict())
    for pid in cpu.state:
        parts = back.state[pid]
        assert all(type(p) is HostCupy and p.dtype == np.uint16 for p in parts)
        for a, b in zip(_bits(parts), _bits(cpu.state[pid])):
            np.testing.assert_array_equal(a, b)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in start]
    for opt in (cpu, other):
        opt.step([g.copy() for g in grads])
    back.step([g.copy().view(HostCupy) for g in grads])
    for pid in cpu.state:
        for a, b, c in zip(_bits(back.state[pid]), _bits(other.state[pid]), _bits(cpu.state[pid])):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, c)
    # onto float32 states (CuPy), exactly
    plain = optim.LAMB([np.array(p).view(HostCupy) for p in dev.param_groups[0]["params"]], lr=1e-2,
                       weight_decay=0.1)
    plain.load_state_dict(dev.state_dict())
    for pid in dev.state:
        for a, b in zip(plain.state[pid], dev.state[pid]):
            assert type(a) is HostCupy and a.dtype == np.float32
            np.testing.assert_array_equal(np.asarray(a), Q.load_bfloat16(np.asarray(b)))
    # the MXNet style's files: CuPy -> NumPy -> CuPy
    ups = [optforge.get_updater(optforge.create("lamb", state_storage=storage)) for _ in range(3)]
    w = rng.standard_normal(300).astype(np.float32)
    ups[0](0, rng.standard_normal(300).astype(np.float32).view(HostCupy), w.copy().view(HostCupy))
    state = ups[0].states[0]
    assert all(type(p) is HostCupy and p.dtype == np.uint16 for p in state)
    ups[1].set_states(ups[0].get_states())
    host = ups[1]._synced(0, ups[1].states[0], w)
    assert all(str(p.dtype) == "bfloat16" and type(p) is np.ndarray for p in host)
    ups[2].set_states(ups[1].get_states())
    device = ups[2]._synced(0, ups[2].states[0], w.view(HostCupy))
    for a, b, c in zip(_bits(device), _bits(host), _bits(state)):
        assert type(device[0]) is HostCupy
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_a_bfloat16_state_in_the_wrong_form_on_cupy_is_refused_and_nothing_changes(numpy_as_cupy):
    opt = optforge.create("lamb", state_storage="bfloat16")
    w = np.ones((4, 6), np.float32).view(HostCupy)
    g = np.full((4, 6), 0.5, np.float32).view(HostCupy)
    good = opt.create_state(0, w)
    bad = [
        ((np.zeros((4, 6), np.float32).view(HostCupy), good[1]),
         r"state 'mean' of parameter 0 is a float32 array, but this optimizer stores it as bfloat16"),
        ((np.zeros((4, 6), Q.bfloat16()), good[1]), r"state 'mean' of parameter 0: bfloat16 state is a numpy array"),
        ((good[0], good[1][:3]), r"state 'var' of parameter 0: bfloat16 state has shape \(3, 6\)"),
        ((good[0], good[1].astype(np.int16)), r"state 'var' of parameter 0 is a int16 array"),
    ]
    before = [np.array(w)] + [np.array(p) for p in good]
    for state, message in bad:
        with pytest.raises((ValueError, TypeError), match=message):
            opt.update([0], [w], [g], [state])
        for a, b in zip([w, *good], before):
            np.testing.assert_array_equal(np.asarray(a), b)
    assert opt._index_update_count == {}
    opt.update([0], [w], [g], [good])
    assert not np.array_equal(np.asarray(w), before[0])


@pytest.mark.parametrize("storage", BF16)
def test_bfloat16_states_of_float32_master_copies_on_cupy(numpy_as_cupy, storage):
    """multi_precision on float16 CuPy weights: the master copy's states are stored as bits,
    step as the reference's, and a file of them loads back onto CuPy (Updater) as those bits."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal(300).astype(np.float16)
    ref, dev = (optforge.create("adam", multi_precision=True, state_storage=storage, use_fused_step=False)
                for _ in range(2))
    ref_w, dev_w = w.copy(), w.copy().view(HostCupy)
    ref_s, dev_s = ref.create_state_multi_precision(0, ref_w), dev.create_state_multi_precision(0, dev_w)
    assert all(type(p) is HostCupy and p.dtype == np.uint16 for p in dev_s[1])
    for _ in range(3):
        g = rng.standard_normal(300).astype(np.float16)
        ref.update_multi_precision([0], [ref_w], [g], [ref_s])
        dev.update_multi_precision([0], [dev_w], [g.copy().view(HostCupy)], [dev_s])
    np.testing.assert_array_equal(np.asarray(dev_w).view(np.uint16), ref_w.view(np.uint16))
    for a, b in zip(_bits(dev_s[1]), _bits(ref_s[1])):
        np.testing.assert_array_equal(a, b)
    saving = optforge.get_updater(dev)
    saving.states[0], saving.states_synced[0] = dev_s, True
    loading = optforge.get_updater(optforge.create("adam", multi_precision=True, state_storage=storage))
    loading.set_states(saving.get_states())
    loaded = loading._synced(0, loading.states[0], dev_w)
    assert all(type(p) is HostCupy and p.dtype == np.uint16 for p in loaded[1])
    for a, b in zip(_bits(loaded[1]), _bits(dev_s[1])):
        np.testing.assert_array_equal(a, b)
