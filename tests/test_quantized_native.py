"""The native CPU kernels of quantized states (f32_q8, f32_qbf16, f32_qbf16sr) against the
NumPy reference.

The reference is the rule's generated NumPy code between `quantized.load` and
`quantized.store` (runtime/backends/quantized.py, itself checked against bitsandbytes'
quantizer code for code in tests/test_quantized_states.py); `use_fused_step=False` runs it.
The kernels dequantize, run the same per-element math in float32 and requantize in one
pass. Tolerance: none. Both sides do the same float32 operations in the same order (no
FMA contraction), and stochastic rounding draws the same bits (a function of the state's
key and the element's index in its tensor, whichever thread or chunk stores it), so
weights, codes, absmax and bfloat16 bits must be equal, over several
steps with a changing learning rate, wd > 0, rescale_grad != 1, clip_gradient, NaN in a
gradient, begin_num_update > 0 and per-parameter lr/wd multipliers, through the single-
and the multi-tensor entry points, on any thread count.
"""
import numpy as np
import pytest

import optforge
from optforge.runtime.backends import launch_table, native, native_build
from optforge.runtime.backends import quantized as Q

from test_cuda_cpu import STEPS, gradient

BEGIN = 3
MIN_SIZE = 1000     # min_8bit_size: the 7-element tensor keeps float32 states in the same update
# one single-tensor update (a short last block), one multi-tensor update: a tensor over two
# chunks (CHUNK + 5), a tiny one with float32 states, one with a short last block
SINGLE = {0: (47, 100)}
MULTI = {1: (3, 21847), 2: (7,), 3: (5, 1001)}
# rules of every shape of state: one to three states, signed and unsigned maps, a state
# only some variants have (AMSGrad's maximum), flavors' own conventions
RULES = [
    ("torch", "adam", {"amsgrad": False}), ("torch", "adam", {"amsgrad": True}),
    ("torch", "adamw", {}), ("mxnet2", "adam", {}), ("mxnet2", "lion", {}),
    ("torch", "sgd", {"momentum": 0.9, "nesterov": True}), ("torch", "rmsprop", {"centered": True, "momentum": 0.9}),
    ("torch", "adagrad", {}), ("torch", "adadelta", {}), ("mxnet2", "ademamix", {}), ("mxnet2", "adan", {}),
]


@pytest.fixture(scope="module", autouse=True)
def compiler():
    try:
        native_build.compiler()
    except native_build.CompilerMissing as err:
        pytest.skip(f"no C++ compiler: {err}")


@pytest.fixture
def kernels_run(monkeypatch):
    """The kernel suffixes the native backend launched: a comparison must see the kernels
    of stored states run, not the NumPy code."""
    seen = []
    original = launch_table.kernel_name

    def recorded(variant, suffix):
        seen.append(suffix)
        return original(variant, suffix)

    monkeypatch.setattr(launch_table, "kernel_name", recorded)
    monkeypatch.setenv(native.BACKEND_ENV, "native")
    return seen


SUFFIX = {"8bit": "f32_q8", "bfloat16": "f32_qbf16", "bfloat16_stochastic": "f32_qbf16sr"}
STORAGES = list(SUFFIX)


def _pair(flavor, name, hyper, storage):
    made = []
    for fused in (True, False):
        opt = optforge.create(name, flavor=flavor, use_fused_step=fused, begin_num_update=BEGIN,
                              state_storage=storage, min_8bit_size=MIN_SIZE, **hyper)
        opt.set_lr_mult({2: 0.5, 3: 2.0})
        opt.set_wd_mult({1: 0.0, 3: 3.0})
        made.append(opt)
    return made


def _parts(state):
    """A state's arrays as bits (NaN equals NaN): an 8-bit state's codes and absmax, any other its bytes."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _parts(s)]
    if isinstance(state, Q.Blockwise8bit):
        return [state.codes, state.absmax.view(np.uint32)]
    return [state.reshape(-1).view(np.uint8)]     # float32 and bfloat16 states, scalar states: their bytes


def _equal(fused, ref, weights, ref_w, states, ref_states, what):
    for i in weights:
        np.testing.assert_array_equal(weights[i].view(np.uint32), ref_w[i].view(np.uint32),
                                      err_msg=f"{what}, parameter {i}: weight")
        a, b = _parts(states[i]), _parts(ref_states[i])
        assert len(a) == len(b) and a
        for k, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_array_equal(x, y, err_msg=f"{what}, parameter {i}: state part {k}")


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("flavor,name,hyper", RULES, ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{k}={v}" for k, v in x.items()) or "default")
def test_kernels_equal_the_numpy_reference_code_for_code(kernels_run, flavor, name, hyper, storage):
    fused, ref = _pair(flavor, name, hyper, storage)
    rng = np.random.default_rng(11)
    shapes = {**SINGLE, **MULTI}
    weights = {i: rng.standard_normal(s).astype(np.float32) for i, s in shapes.items()}
    ref_w = {i: w.copy() for i, w in weights.items()}
    states = {i: fused.create_state(i, w) for i, w in weights.items()}
    ref_states = {i: ref.create_state(i, w) for i, w in ref_w.items()}
    assert isinstance(states[0], Q.Blockwise8bit) or isinstance(states[0], (tuple, list)) or storage != "8bit"
    for step, (lr, wd, rescale, clip, nan) in enumerate(STEPS, start=1):
        for opt in (fused, ref):
            opt.set_learning_rate(lr)
            opt.wd, opt.rescale_grad, opt.clip_gradient = wd + 0.01, rescale, clip
        for group in (list(SINGLE), list(MULTI)):
            grads = [gradient(rng, shapes[i], np.float32, nan) for i in group]
            with np.errstate(all="ignore"):     # NaN and inf gradients are on purpose
                fused.update(group, [weights[i] for i in group], grads, [states[i] for i in group])
                ref.update(group, [ref_w[i] for i in group], grads, [ref_states[i] for i in group])
        _equal(fused, ref, weights, ref_w, states, ref_states, f"step {step}")
    assert kernels_run.count(SUFFIX[storage]) >= 2 * len(STEPS), kernels_run
    assert fused._index_update_count == ref._index_update_count


@pytest.mark.parametrize("storage", STORAGES)
def test_threads_share_a_tensor_on_block_boundaries(kernels_run, storage):
    """A single tensor split across threads (ranges of whole 256-element blocks for 8-bit
    states: a block's absmax has one writer; stochastic rounding: each range draws the bits
    of its elements' indices in the tensor) and a multi-tensor table: 1, 2 and 3 threads
    give the reference's bits."""
    n = 3 * 65536 + 300
    rng = np.random.default_rng(5)
    start = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    results = []
    for threads, fused in ((None, False), (1, True), (2, True), (3, True)):
        native.set_num_threads(threads)
        try:
            opt = optforge.create("adamw", learning_rate=0.01, wd=0.1, use_fused_step=fused, state_storage=storage)
            w, w2 = start.copy(), start[::-1].copy()
            state, state2 = opt.create_state(0, w), opt.create_state(1, w2)
            for g in grads:
                opt.update([0], [w], [g], [state])                      # single tensor
                opt.update([0, 1], [w, w2], [g, g[::-1].copy()], [state, state2])   # multi-tensor
            results.append([w.view(np.uint32), w2.view(np.uint32)] + _parts(state) + _parts(state2))
        finally:
            native.set_num_threads(None)
    for k, got in enumerate(results[1:], start=1):
        for x, y in zip(got, results[0]):
            np.testing.assert_array_equal(x, y, err_msg=f"threads={k}")
    # (each update names its kernel when it builds it and when it launches it)
    assert kernels_run.count(SUFFIX[storage]) == 2 * 3 * 2 * 3


@pytest.mark.parametrize("name,storage", [("lamb", "8bit"), ("lamb", "bfloat16_stochastic")])
def test_the_native_backend_refuses_stored_states_without_kernels_before_any_change(monkeypatch, name, storage):
    """OPTFORGE_CPU_BACKEND=native demands kernels: a rule with reductions (LAMB), which runs
    its NumPy code between load and store, raises instead."""
    monkeypatch.setenv(native.BACKEND_ENV, "native")
    opt = optforge.create(name, state_storage=storage)
    w = np.ones(5000, np.float32)
    state = opt.create_state(0, w)
    before = [p.copy() for p in _parts(state)]
    with pytest.raises(RuntimeError, match="OPTFORGE_CPU_BACKEND=native, but"):
        opt.update([0], [w], [np.ones_like(w)], [state])
    assert np.all(w == 1) and opt._index_update_count == {}
    for x, y in zip(_parts(state), before):
        np.testing.assert_array_equal(x, y)
    monkeypatch.delenv(native.BACKEND_ENV)
    opt.update([0], [w], [np.ones_like(w)], [state])     # unset: the NumPy code runs
    assert not np.all(w == 1)


CODES = r"""
#include "optforge_cpu.h"
// The header's code search, as the 8-bit kernels call it per block (the AVX-512 search for
// 32 indices at a time where the compiler targets it, the table for the rest).
extern "C" void codes_of(const int* index, long long n, const unsigned char* lut, const om::u16* search,
                         unsigned char* codes) {
    for (long long b = 0; b < n; b += om::QBLOCK) {
        const long long m = n - b < om::QBLOCK ? n - b : om::QBLOCK;
        om::codes_of(index + b, m, lut, search, 0xff, codes + b);
    }
}
"""


def test_the_code_search_is_the_lookup_table_at_every_grid_index(tmp_path):
    """Every one of the 65536 grid indices, in order and shuffled, with a short last block:
    the kernels' code search (quantized.search_table, built with the kernels' flags) gives
    the reference's lookup table code for code, for both maps."""
    import ctypes
    source = tmp_path / "codes.cpp"
    source.write_text(CODES)
    lib = native_build.load(source)
    every = np.arange(Q.LUT_SIZE, dtype=np.int32)
    for index in (every, np.random.default_rng(0).permutation(every)[:-13]):
        for signed in (True, False):
            codes = np.empty(index.size, np.uint8)
            pointer = lambda a: ctypes.c_void_p(a.ctypes.data)      # noqa: E731
            lib.codes_of(pointer(index), ctypes.c_longlong(index.size), pointer(Q.lookup_table(signed)),
                         pointer(Q.search_table(signed)), pointer(codes))
            np.testing.assert_array_equal(codes, Q.lookup_table(signed)[index])


ROUNDING = r"""
#include "optforge_cpu.h"
// The header's stochastic rounding, as the f32_qbf16sr kernels call it per element.
extern "C" void round_stochastic(const float* x, long long n, unsigned long long key, om::u16* out) {
    for (long long i = 0; i < n; ++i) out[i] = om::stochastic_bfloat16(x[i], key, om::u64(i)).bits;
}
extern "C" void draws(unsigned long long key, unsigned long long first, long long n, unsigned int* out) {
    for (long long i = 0; i < n; ++i) out[i] = om::stochastic_bits(key, first + om::u64(i));
}
"""


def test_stochastic_rounding_is_the_reference_at_every_kind_of_float(tmp_path):
    """The kernels' stochastic rounding (om::stochastic_bfloat16, built with the kernels'
    flags) against quantized.store_bfloat16 with the same key, bit for bit: random bit
    patterns (every sign, exponent and mantissa: zeros, subnormals, NaN with any payload,
    infinities) and the edges (the largest finite values, which may round to infinity, and
    values one below a bfloat16), under keys with both words set; and its random bits at
    element indices past 2^32, where the index's high word enters the hash."""
    import ctypes
    import ml_dtypes
    source = tmp_path / "rounding.cpp"
    source.write_text(ROUNDING)
    lib = native_build.load(source)
    pointer = lambda a: ctypes.c_void_p(a.ctypes.data)      # noqa: E731
    rng = np.random.default_rng(8)
    bits = rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint64).astype(np.uint32)
    edges = [0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
             0xFFFFFFFF, 0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x3F80FFFF, 0xBF80FFFF]
    bits[:len(edges)] = edges
    x = bits.view(np.float32)
    for key in (0, 12345, 0xDEADBEEFCAFEF00D, (1 << 64) - 1):
        expected = np.empty(x.shape, ml_dtypes.bfloat16)
        with np.errstate(invalid="ignore"):
            Q.store_bfloat16(expected, x, key=key)
        got = np.empty(x.shape, np.uint16)
        lib.round_stochastic(pointer(x), ctypes.c_longlong(x.size), ctypes.c_ulonglong(key), pointer(got))
        np.testing.assert_array_equal(got, expected.view(np.uint16), err_msg=f"key {key:#x}")
        # the edges did what they are there for: the largest finite values rounded to infinity
        # (any random bits but 0 carry them over; key 0 draws 0 at index 0, fmix32(0) being 0),
        # a NaN with a payload became the quiet NaN of its sign
        assert key == 0 or list(got[:2]) == [0x7F80, 0xFF80]
        assert got[5] == got[6] == 0x7FC0 and got[7] == 0xFFC0
        for first in (0, (1 << 32) - 7, 3 << 40):
            draws = np.empty(4096, np.uint32)
            lib.draws(ctypes.c_ulonglong(key), ctypes.c_ulonglong(first), ctypes.c_longlong(draws.size), pointer(draws))
            np.testing.assert_array_equal(draws, Q.stochastic_bits(key, draws.size, first), err_msg=f"key {key:#x}")
