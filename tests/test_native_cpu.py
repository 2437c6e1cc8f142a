"""The native CPU kernels behind `fused_step` on NumPy arrays, against the NumPy code (`step`).

Every optimizer with kernels, every setting that reaches one of its variants (the settings
and helpers of tests/test_cuda_cpu.py, which checks the CUDA source the same way), driven
through the runtime over several steps: learning rate changed between steps, wd > 0,
rescale_grad != 1, clip_gradient None / 0.6 / 0 (values beyond the bound), NaN and inf
in the gradients, begin_num_update > 0, per-parameter lr/wd multipliers.

- float32 and float64: bit for bit equal to `step` (no FMA contraction on either side,
  the same operations in the same order), through the single-tensor entry point (one
  parameter per update) and the multi-tensor one (three parameters spanning several
  65536-element chunks, a tail and a tiny tensor);
- rules with norms or row means: within test_cuda_cpu's NORM_TOLERANCE (the kernels sum
  squares in double per chunk, NumPy in the array's precision, pairwise: last bits differ);
- float16/bfloat16 weights: the kernels compute in float32 and round on store: bit for bit
  equal to `step` run in float32 on the same values, rounded after each step (rules with
  norms: within NORM_TOLERANCE); rules that read 16-bit moments back in a later pass
  (LAMB-like) instead: at least as accurate as `step` run in float16, against float64;
- float32 master copies (update_multi_precision): master and states bit for bit equal to
  `step` on the master with the gradient cast to float32, the weight the rounded master;
- SGLD: `step` is given the Philox numbers of the CUDA header (compiled for the host by
  tests/cuda_host.py), and the native kernels match it bit for bit: CPU and GPU draw the
  same noise for the same seed;
- one multi-tensor call equals one call per tensor, and 1 thread equals 2 or 3 threads,
  bitwise, in every storage dtype, with large tensors first and tiny last chunks too;
- the multi-tensor entry points share chunks out across threads by element count: each
  thread a contiguous run of chunks, none holding more than its share plus one chunk.
"""

import ctypes
from pathlib import Path

import numpy as np
import pytest

import optforge
from optforge.runtime.engine import plans as engine_plans
from optforge.runtime.backends import launch_table, native, native_build
from optforge.runtime.engine import kept as kept_launch

import cuda_host
from test_cuda_cpu import (BF16, NO_WEIGHT_DECAY, NORM_TOLERANCE, SHAPE, SMALL_SHAPE, STEPS, DeviceNoise, Case,
                           assert_same_bits, cases, gradient, parts, reads_back_weight_dtype_states)

BEGIN = 3
MULTI_SHAPES = [(3, 21847), (7,), (5, 26215)]   # CHUNK + 5, 7 and 2 * CHUNK + 3 elements


@pytest.fixture(scope="session", autouse=True)
def native_kernels():
    """A compiler: each kernel a test runs is built on first use, then found in the cache."""
    try:
        native_build.compiler()
    except native_build.CompilerMissing as err:
        pytest.skip(f"no C++ compiler: {err}")


@pytest.fixture(scope="session")
def probe(repo_root, tmp_path_factory):
    """The CUDA header's Philox normals, compiled for the host."""
    cuda_host.need(cuda_host.compiler(), "g++")
    folder = repo_root / "generated" / "cuda"
    lib = cuda_host.build(cuda_host.PROBE, folder, tmp_path_factory.mktemp("probe"))
    return cuda_host.HostKernels(lib)


@pytest.fixture
def device_noise(monkeypatch, probe):
    """`step` draws the numbers the kernels draw (the native kernels ignore `rng`)."""
    monkeypatch.setattr(engine_plans, "Noise", lambda seed, index, t: DeviceNoise(probe, seed, index, t))


@pytest.fixture(autouse=True)
def native_calls(monkeypatch):
    """The entry points the native backend called in a test ({name: calls}): a test that
    compares fused_step with step must see the kernels run, not the NumPy fallback."""
    calls = {}
    original = native.execute

    def counted(optimizer, indices, weights, grads, plans, addresses, masters=None):
        # (the partials stage of a rule with group reductions is a launch of its own rule, the
        # module _group_<spec>: the counts here are the update's)
        if not optimizer.module.__name__.rpartition(".")[2].startswith("_group_"):
            kind = "master" if masters is not None else "multi" if len(weights) > 1 else "single"
            calls[kind] = calls.get(kind, 0) + 1
        return original(optimizer, indices, weights, grads, plans, addresses, masters)

    monkeypatch.setattr(native, "execute", counted)
    run = kept_launch.KeptLaunch.run

    def counted_kept(launch):
        """A kept launch (the same arrays as an earlier update) calls the same entry points."""
        kind = "multi" if len(launch.weights) > 1 else "single"
        calls[kind] = calls.get(kind, 0) + 1
        run(launch)

    monkeypatch.setattr(kept_launch.KeptLaunch, "run", counted_kept)
    return calls


def pair(flavor, name, hyper, multi_precision=False):
    """The same optimizer twice: fused_step (native kernels) and step (NumPy code)."""
    made = []
    for fused in (True, False):
        opt = optforge.create(name, flavor=flavor, use_fused_step=fused, multi_precision=multi_precision and fused,
                              **dict({"begin_num_update": BEGIN}, **hyper))
        opt.set_lr_mult({2: 0.5, 3: 2.0})
        opt.set_wd_mult({1: 0.0, 3: 3.0})
        made.append(opt)
    return made


def set_step(opts, lr, wd, rescale, clip):
    for opt in opts:
        opt.set_learning_rate(lr)
        opt.wd = NO_WEIGHT_DECAY.get(type(opt).__name__.lower(), wd)
        opt.rescale_grad, opt.clip_gradient = rescale, clip


def has_reductions(opt):
    """Passes with sums, or group reductions (their partials are sums in another order)."""
    return any(v["passes"] for v in launch_table.metadata(opt._module).VARIANTS.values()) \
        or hasattr(opt._module, "GROUP")


def same(actual, expected, what, reductions):
    """Bit for bit, or for rules with reductions within NORM_TOLERANCE."""
    if not reductions:
        assert_same_bits(actual, expected, what)
        return
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), err_msg=what,
                               **NORM_TOLERANCE[np.dtype(np.asarray(expected).dtype).name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("flavor,name,hyper", cases())
def test_fused_step_matches_step(device_noise, native_calls, flavor, name, hyper, dtype):
    fused, ref = pair(flavor, name, hyper)
    rng = np.random.default_rng(3)
    groups = [[0], [1, 2, 3]]                       # one single-tensor update, one multi-tensor update
    shapes = {0: SHAPE, 1: MULTI_SHAPES[0], 2: MULTI_SHAPES[1], 3: MULTI_SHAPES[2]}
    weights = {i: rng.standard_normal(s).astype(dtype) for i, s in shapes.items()}
    weights[0].reshape(-1)[:2] = [0.0, -0.0]
    ref_w = {i: w.copy() for i, w in weights.items()}
    states = {i: fused.create_state(i, w) for i, w in weights.items()}
    ref_states = {i: ref.create_state(i, w) for i, w in ref_w.items()}
    reductions = has_reductions(fused)
    for step, (lr, wd, rescale, clip, nan) in enumerate(STEPS, start=1):
        set_step((fused, ref), lr, wd, rescale, clip)
        for group in groups:
            grads = [gradient(rng, shapes[i], dtype, nan) for i in group]
            with np.errstate(all="ignore"):     # NaN and inf gradients are on purpose
                fused.update(group, [weights[i] for i in group], grads, [states[i] for i in group])
                ref.update(group, [ref_w[i] for i in group], grads, [ref_states[i] for i in group])
        for i in shapes:
            what = f"step {step}, parameter {i}"
            same(weights[i], ref_w[i], what + ": weight", reductions)
            for k, (a, b) in enumerate(zip(parts(states[i]), parts(ref_states[i]))):
                same(a, b, f"{what}: state part {k}", reductions)
    assert fused._index_update_count == ref._index_update_count
    assert native_calls == {"single": len(STEPS), "multi": len(STEPS)}


def _reads_back_16_bit_states(param):
    """Whether a case's rule stores weight-dtype moments in one pass and reads them in a later
    one (LAMB-like rules): a float32 reference cannot follow their 16-bit rounding."""
    root = Path(__file__).resolve().parent.parent
    case = Case(*param.values)
    return any(reads_back_weight_dtype_states(root, case, key) for key in case.module.VARIANTS)


READS_BACK = [c for c in cases() if _reads_back_16_bit_states(c)]
ROUNDS_ON_STORE = [c for c in cases() if not _reads_back_16_bit_states(c)]


@pytest.mark.parametrize("dtype", [np.float16, BF16], ids=["f16", "bf16"])
@pytest.mark.parametrize("flavor,name,hyper", ROUNDS_ON_STORE)
def test_16_bit_weights_compute_in_float32_and_round_on_store(device_noise, native_calls, flavor, name, hyper, dtype):
    fused, ref = pair(flavor, name, hyper)
    rng = np.random.default_rng(4)
    weight = rng.standard_normal(SMALL_SHAPE).astype(dtype)
    state = fused.create_state(0, weight)
    reductions = has_reductions(fused)
    for step, (lr, wd, rescale, clip, nan) in enumerate(STEPS, start=1):
        set_step((fused, ref), lr, wd, rescale, clip)
        grad = gradient(rng, SMALL_SHAPE, dtype, nan)
        # the reference starts from the very values the kernels start from, in float32
        ref_w = weight.astype(np.float32)
        ref_state = tuple(p.astype(np.float32) if p.ndim else p.copy() for p in parts(state))
        ref_state = None if not ref_state else ref_state[0] if len(ref_state) == 1 else ref_state
        with np.errstate(all="ignore"):
            fused.update(0, weight, grad, state)
            ref.update(0, ref_w, grad.astype(np.float32), ref_state)
        same(weight, ref_w.astype(dtype), f"step {step}: weight", reductions)
        for k, (a, b) in enumerate(zip(parts(state), parts(ref_state))):
            same(a, b.astype(a.dtype), f"step {step}: state part {k}", reductions)
    assert native_calls == {"single": len(STEPS)}


@pytest.mark.parametrize("flavor,name,hyper", READS_BACK)
def test_16_bit_kernels_reading_back_16_bit_states_are_at_least_as_accurate_as_numpy_in_float16(
        device_noise, native_calls, flavor, name, hyper):
    """fused_step on float16 weights (float32 math, rounded on store) against step (the NumPy
    code run natively in float16), both measured against the same update run in float64
    from the same float16 start: after the steps the kernels' largest error is at most
    NumPy's plus one float16 ulp of the largest value (test_cuda_cpu's criterion)."""
    fused, ref = pair(flavor, name, hyper)
    exact = optforge.create(name, flavor=flavor, use_fused_step=False, **dict({"begin_num_update": BEGIN}, **hyper))
    rng = np.random.default_rng(5)
    start = rng.standard_normal(SMALL_SHAPE).astype(np.float16)
    runs = [(fused, start.copy()), (ref, start.copy()), (exact, start.astype(np.float64))]
    runs = [(opt, w, opt.create_state(0, w)) for opt, w in runs]
    for lr, wd, rescale, clip, _ in STEPS:
        set_step([opt for opt, _, _ in runs], lr, wd, rescale, clip)
        grad = gradient(rng, SMALL_SHAPE, np.float16, False)
        for opt, w, state in runs:
            with np.errstate(all="ignore"):
                opt.update(0, w, grad.astype(w.dtype), state)
    (_, dev_w, dev_s), (_, ref_w, ref_s), (_, exact_w, exact_s) = runs
    pairs = [("weight", dev_w, ref_w, exact_w)] + [
        (f"state part {k}", a, b, c) for k, (a, b, c) in enumerate(zip(parts(dev_s), parts(ref_s), parts(exact_s)))]
    for what, dev, numpy_result, truth in pairs:
        ulp = float(np.spacing(np.float16(min(np.abs(truth).max(), 65504))))
        kernel_error = np.abs(dev.astype(np.float64) - truth).max()
        numpy_error = np.abs(numpy_result.astype(np.float64) - truth).max()
        assert kernel_error <= numpy_error + ulp, f"{what}: kernels {kernel_error}, NumPy in float16 {numpy_error}"
    assert native_calls == {"single": len(STEPS)}


@pytest.mark.parametrize("dtype", [np.float16, BF16], ids=["f16_mp", "bf16_mp"])
@pytest.mark.parametrize("flavor,name,hyper", cases())
def test_master_copy_kernels_match_step_on_the_master(device_noise, native_calls, flavor, name, hyper, dtype):
    fused, ref = pair(flavor, name, hyper, multi_precision=True)
    rng = np.random.default_rng(6)
    shapes = [SMALL_SHAPE, (7,)]
    masters = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    weights = [m.astype(dtype) for m in masters]
    states = [fused.create_state_multi_precision(i, w) for i, w in enumerate(weights)]
    ref_w = [w.astype(np.float32) for w in weights]      # the master starts from the weight
    ref_states = [ref.create_state(i, w) for i, w in enumerate(ref_w)]
    reductions = has_reductions(fused)
    for step, (lr, wd, rescale, clip, nan) in enumerate(STEPS, start=1):
        set_step((fused, ref), lr, wd, rescale, clip)
        grads = [gradient(rng, s, dtype, nan) for s in shapes]
        with np.errstate(all="ignore"):
            fused.update_multi_precision([0, 1], weights, grads, states)
            ref.update([0, 1], ref_w, [g.astype(np.float32) for g in grads], ref_states)
        for i in range(len(shapes)):
            master, inner = states[i]
            same(master, ref_w[i], f"step {step}, parameter {i}: master", reductions)
            same(weights[i], ref_w[i].astype(dtype), f"step {step}, parameter {i}: weight", reductions)
            for k, (a, b) in enumerate(zip(parts(inner), parts(ref_states[i]))):
                same(a, b, f"step {step}, parameter {i}: state part {k}", reductions)
    assert native_calls == {"master": len(STEPS)}


# Multi-tensor layouts: tensors large enough to split across threads in mixed order, and an
# MLP's (784-256-128-10) with the large tensors first and small last chunks, where an equal
# count of chunks per thread would give one thread nearly every element.
LAYOUTS = {"mixed": [(300, 700), (7,), (5, 26215), (64, 3, 3, 3)],
           "big-first": [(256, 784), (256,), (128, 256), (128,), (10, 128), (10,)]}
# (threads, one multi-tensor call): the first run, one single-tensor call per tensor on one
# thread, is the reference the others must equal bit for bit
THREAD_RUNS = ((1, False), (1, True), (2, True), (3, True), (2, False))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, BF16], ids=["f32", "f64", "f16", "bf16"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,hyper", [("adam", {}), ("lamb", {}), ("groupadagrad", {"wd": 0.0}),
                                        ("novograd", {}), ("sgld", {"seed": 5}), ("rmsprop", {"centered": True}),
                                        ("sgd", {"momentum": 0.9})])
def test_one_multi_tensor_call_equals_one_call_per_tensor_on_any_thread_count(native_calls, name, hyper, layout,
                                                                              dtype):
    """Element-wise math and per-chunk sums: however the chunks are shared out across
    threads, the result is the same, bit for bit."""
    shapes = LAYOUTS[layout]
    rng = np.random.default_rng(8)
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    results = []
    for threads, together in THREAD_RUNS:
        native.set_num_threads(threads)
        try:
            opt = optforge.create(name, begin_num_update=BEGIN, rescale_grad=0.7, **hyper)
            opt.set_wd_mult({1: 0.0, 2: 3.0})
            weights = [w.copy() for w in start]
            states = [opt.create_state(i, w) for i, w in enumerate(weights)]
            for step, g in enumerate(grads):
                opt.set_learning_rate(0.01 * (step + 1))
                if together:
                    opt.update(list(range(len(shapes))), weights, g, states)
                else:
                    for i in range(len(shapes)):
                        opt.update(i, weights[i], g[i], states[i])
        finally:
            native.set_num_threads(None)
        results.append((weights, states))
    runs_together = sum(together for _, together in THREAD_RUNS)
    assert native_calls == {"multi": 3 * runs_together, "single": 3 * len(shapes) * (len(THREAD_RUNS) - runs_together)}
    (w0, s0), *others = results
    for w, s in others:
        for i in range(len(shapes)):
            assert_same_bits(w[i], w0[i], f"{name} weight {i}")
            for a, b in zip(parts(s[i]), parts(s0[i])):
                assert_same_bits(a, b, f"{name} state of {i}")


def test_non_contiguous_arrays_run_the_numpy_code_and_give_its_answer(native_calls):
    rng = np.random.default_rng(9)
    base = rng.standard_normal((40, 60)).astype(np.float32)
    fused, ref = pair("mxnet2", "adam", {})
    weight, ref_w = base.copy()[:, ::2], base.copy()[:, ::2]        # strided views
    assert not weight.flags.c_contiguous
    state, ref_state = fused.create_state(0, weight), ref.create_state(0, ref_w)
    for _ in range(3):
        grad = rng.standard_normal(weight.shape).astype(np.float32)
        fused.update(0, weight, grad, state)
        ref.update(0, ref_w, grad, ref_state)
    assert_same_bits(weight, ref_w, "weight")
    assert native_calls == {}


def test_row_sparse_gradients_run_the_numpy_code(native_calls):
    rng = np.random.default_rng(10)
    fused, ref = pair("mxnet2", "adam", {})
    fused.lazy_update = ref.lazy_update = True
    weight = rng.standard_normal((6, 5)).astype(np.float32)
    ref_w = weight.copy()
    state, ref_state = fused.create_state(0, weight), ref.create_state(0, ref_w)
    grad = optforge.RowSparse(indices=[1, 4], values=rng.standard_normal((2, 5)).astype(np.float32), shape=(6, 5))
    fused.update(0, weight, grad, state)
    ref.update(0, ref_w, grad, ref_state)
    assert_same_bits(weight, ref_w, "weight")
    assert_same_bits(weight[[0, 2, 3, 5]], ref_w[[0, 2, 3, 5]], "untouched rows")
    assert native_calls == {}


CONVERSIONS = r"""
#include "optforge_cpu.h"
// The support header's 16-bit conversions in loops as the kernels run them (vectorised).
typedef long long index_t;
extern "C" void half_to_float(const om::half* h, float* f, index_t n) {
    for (index_t i = 0; i < n; ++i) f[i] = om::to_math(h[i]);
}
extern "C" void float_to_half(const float* f, om::half* h, index_t n) {
    for (index_t i = 0; i < n; ++i) om::put(h, i, f[i]);
}
extern "C" void bfloat16_to_float(const om::bfloat16* h, float* f, index_t n) {
    for (index_t i = 0; i < n; ++i) f[i] = om::to_math(h[i]);
}
extern "C" void float_to_bfloat16(const float* f, om::bfloat16* h, index_t n) {
    for (index_t i = 0; i < n; ++i) om::put(h, i, f[i]);
}
"""


def test_16_bit_conversions_round_as_numpy_and_ml_dtypes(tmp_path):
    """The header's branch-free 16-bit loads and stores, built with the kernels' flags (the
    loops vectorise), against NumPy's float16 and ml_dtypes' bfloat16 casts (IEEE, round to
    nearest even): every half and bfloat16 loaded, and floats of every sign and exponent
    with the low bits at each rounding boundary (below, at and above the halfway point,
    with an even and an odd kept bit) plus random ones, stored. NaN stays NaN (payloads
    are not compared)."""
    source = tmp_path / "conversions.cpp"
    source.write_text(CONVERSIONS)
    lib = native_build.load(source)
    every16 = np.arange(1 << 16, dtype=np.uint16)
    high = np.arange(1 << 16, dtype=np.uint32) << 16
    low = np.array([0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000 + 0x1000, 0x7fff, 0x8000, 0x8001, 0xffff], np.uint32)
    floats = np.concatenate([(high[:, None] | low[None, :]).ravel(),
                             np.random.default_rng(7).integers(0, 1 << 32, 1 << 22, dtype=np.uint32)]).view(np.float32)
    for name, dtype in [("half", np.dtype(np.float16)), ("bfloat16", BF16)]:
        loaded = np.empty(every16.size, np.float32)
        getattr(lib, f"{name}_to_float")(_pointer(every16), _pointer(loaded), ctypes.c_longlong(every16.size))
        assert_same_bits(loaded, every16.view(dtype).astype(np.float32), f"{name} -> float32")
        stored = np.empty(floats.size, dtype)
        getattr(lib, f"float_to_{name}")(_pointer(floats), _pointer(stored), ctypes.c_longlong(floats.size))
        with np.errstate(over="ignore", invalid="ignore"):
            assert_same_bits(stored, floats.astype(dtype), f"float32 -> {name}")


SHARE_CHUNKS = r"""
#include "optforge_cpu.h"
// om::share_chunks over a table of rows {numel, first chunk}: which thread ran each chunk,
// how often, and the element range it was given.
extern "C" void share(const om::u64* table, int tensors, long long chunks, int threads,
                      int* owner, int* visits, long long* start, long long* span, long long* tensor) {
    om::share_chunks<2>(table, tensors, chunks, 0, 1, threads,
                        [&](const om::u64* row, om::index_t c, om::index_t first, om::index_t n) {
        owner[c] = omp_get_thread_num();
#pragma omp atomic
        visits[c] += 1;
        start[c] = first;
        span[c] = n;
        tensor[c] = (row - table) / 2;
    });
}
"""


@pytest.mark.parametrize("sizes", [[200704, 256, 32768, 128, 1280, 10],       # an MLP's tensors, large first
                                   [10, 1280, 128, 32768, 256, 200704],       # the same, large last
                                   [65536 * 5 + 1, 3, 65536, 1, 2, 70000],
                                   [4096] * 1000,
                                   [7] * 50 + [65536 * 40] + [9] * 50],
                         ids=["mlp", "mlp-reversed", "odd", "1000x4096", "small-large-small"])
def test_multi_tensor_chunks_are_shared_out_by_element_count(tmp_path, sizes):
    """The multi-tensor entry points' work sharing: every chunk of every tensor runs once,
    with its tensor's 65536-element range; each thread takes a contiguous run of chunks
    in thread order; and no thread holds more than its share of the elements plus one
    chunk (an equal count of chunks per thread gives thread 0 of the MLP 200 960 of its
    235 146 elements on 2 threads). One thread, or one chunk, runs on the calling thread."""
    source = tmp_path / "share.cpp"
    source.write_text(SHARE_CHUNKS)
    lib = native_build.load(source)
    CHUNK = 65536
    counts = [-(-n // CHUNK) for n in sizes]
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    table = np.array([[n, f] for n, f in zip(sizes, firsts)], dtype=np.uint64)
    chunks = sum(counts)
    # each chunk's tensor and element range, from the sizes alone
    expected_tensor = np.repeat(np.arange(len(sizes)), counts)
    expected_start = np.concatenate([np.arange(c) * CHUNK for c in counts])
    expected_span = np.minimum(CHUNK, np.array(sizes)[expected_tensor] - expected_start)
    total = sum(sizes)
    for threads in (1, 2, 3, 8):
        owner, visits = np.full(chunks, -1, np.int32), np.zeros(chunks, np.int32)
        start, span, tensor = (np.full(chunks, -1, np.int64) for _ in range(3))
        lib.share(_pointer(table), ctypes.c_int(len(sizes)), ctypes.c_longlong(chunks), ctypes.c_int(threads),
                  _pointer(owner), _pointer(visits), _pointer(start), _pointer(span), _pointer(tensor))
        assert np.all(visits == 1), f"{threads} threads: chunks not run exactly once"
        np.testing.assert_array_equal(tensor, expected_tensor)
        np.testing.assert_array_equal(start, expected_start)
        np.testing.assert_array_equal(span, expected_span)
        assert np.all(np.diff(owner) >= 0), f"{threads} threads: runs not contiguous in thread order"
        used = min(threads, chunks)
        assert owner.max() < used
        per_thread = np.bincount(owner, weights=expected_span, minlength=used)
        assert per_thread.sum() == total
        assert per_thread.max() <= total / used + CHUNK, f"{threads} threads: {per_thread} of {total}"
    single = np.array([[12345, 0]], dtype=np.uint64)     # one chunk: the calling thread
    owner, visits = np.full(1, -1, np.int32), np.zeros(1, np.int32)
    start, span, tensor = (np.full(1, -1, np.int64) for _ in range(3))
    lib.share(_pointer(single), ctypes.c_int(1), ctypes.c_longlong(1), ctypes.c_int(4),
              _pointer(owner), _pointer(visits), _pointer(start), _pointer(span), _pointer(tensor))
    assert (owner[0], visits[0], start[0], span[0]) == (0, 1, 0, 12345)


def _pointer(array):
    return ctypes.c_void_p(array.ctypes.data)


def novograd_on_odd_steps(repo_root, folder):
    """NovoGrad whose weight changes on odd steps only: on even steps the variant's passes
    write the states and only read the weight (its pointer is const in that variant)."""
    text = (repo_root / "specs" / "novograd.toml").read_text().replace('name = "NovoGrad"', 'name = "NovoOdd"')
    text = text.replace("weight = weight - lr * mean", "if t % 2 != 0:\n    weight = weight - lr * mean")
    path = folder / "novoodd.toml"
    path.write_text(text)
    return path


def test_a_variant_that_only_reads_the_weight_in_its_passes_compiles_and_runs(native_calls, repo_root, tmp_path,
                                                                            monkeypatch):
    # the pass functions took the weight as `W*` whatever the pass wrote: a call with the
    # variant's `const W*` did not compile
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(native.BACKEND_ENV, "native")
    cls = optforge.load_spec(novograd_on_odd_steps(repo_root, tmp_path), register=False)
    fused, ref = (cls(learning_rate=0.1, wd=0.01, use_fused_step=f) for f in (True, False))
    rng = np.random.default_rng(12)
    weight = rng.standard_normal(5000).astype(np.float32)
    w1, w2 = weight.copy(), weight.copy()
    s1, s2 = fused.create_state(0, w1), ref.create_state(0, w2)
    for t in range(1, 5):
        grad = rng.standard_normal(5000).astype(np.float32)
        before = w1.copy()
        fused.update(0, w1, grad, s1)
        ref.update(0, w2, grad, s2)
        assert (w1 != before).any() == (t % 2 != 0)
        same(w1, w2, f"step {t}: weight", True)
        for a, b in zip(parts(s1), parts(s2)):
            same(a, b, f"step {t}: state", True)
    assert native_calls == {"single": 4}


def _layouts(values):
    """The same values as C-order, Fortran-order, reversed-stride, strided and unaligned arrays."""
    fortran = np.asfortranarray(values)
    reversed_ = values[::-1, ::-1].copy()[::-1, ::-1]
    wide = np.zeros((values.shape[0], 2 * values.shape[1]), values.dtype)
    wide[:, ::2] = values
    unaligned = np.zeros(values.nbytes + 1, np.uint8)[1:].view(values.dtype).reshape(values.shape)
    unaligned[...] = values
    return {"C": values.copy(), "F": fortran, "reversed": reversed_, "strided": wide[:, ::2], "unaligned": unaligned}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=["f32", "f64", "f16"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused_step", "step"])
def test_noise_follows_the_logical_index_whatever_the_layout(native_calls, dtype, fused):
    """fused_step drew the native kernels' noise for C-contiguous arrays and the NumPy code's
    for any other layout: the same seed and values gave another step. Arrays the kernels
    refuse by layout now run them on C-contiguous copies (step: the NumPy code, by logical index)."""
    rng = np.random.default_rng(11)
    values = rng.standard_normal((300, 257)).astype(dtype)
    grads = rng.standard_normal((2, 300, 257)).astype(dtype)
    results = {}
    for name, weight in _layouts(values).items():
        opt = optforge.create("sgld", learning_rate=0.1, seed=7, wd=0.01, use_fused_step=fused)
        for k, grad in enumerate(grads):
            opt.update(0, weight, _layouts(grad)[name], None)
        results[name] = weight.astype(dtype)
    for name, weight in results.items():
        assert_same_bits(weight, results["C"], f"{name} weight")
    assert native_calls == ({"single": 2 * len(results)} if fused else {})


ALIASED = [("torch", "asgd", {}), ("mxnet2", "sgd", {"momentum": 0.9}), ("mxnet2", "lamb", {}),
           ("mxnet2", "sgld", {"seed": 2}), ("mxnet2", "rmsprop", {"centered": True}), ("mxnet2", "novograd", {})]


@pytest.mark.parametrize("call", ["update", "fused_step", "step"])
@pytest.mark.parametrize("flavor,name,hyper", ALIASED, ids=[f"{f}-{n}" for f, n, _ in ALIASED])
def test_a_gradient_sharing_memory_with_the_weight_or_a_state_is_read_as_a_copy(native_calls, flavor, name, hyper,
                                                                                call):
    """A step computes from the values its arrays hold when it is called: the kernels write
    the weight and states while still reading the gradient (torch's ASGD gave another
    weight for `update(0, w, w, state)`, SGD with momentum for a gradient that is its
    momentum), so such a gradient is copied first. The native kernels then apply too."""
    rng = np.random.default_rng(14)
    base = (rng.standard_normal((300, 257)) * 0.5).astype(np.float32)
    stateful = bool(parts(optforge.create(name, flavor=flavor, **hyper).create_state(0, base)))
    targets = ("weight", "state") if stateful else ("weight",)
    for target in targets:
        results = []
        for aliased in (True, False):
            opt = optforge.create(name, flavor=flavor, learning_rate=0.01, wd=0.01, **hyper)
            weight = base.copy()
            state = opt.create_state(0, weight)
            arrays = [p for p in parts(state) if p.shape == weight.shape]
            if target == "state":
                arrays[0][...] = np.abs(base) * 0.25      # a value every rule takes as a gradient
            for _ in range(2):
                grad = weight if target == "weight" else arrays[0]
                if call == "update":
                    opt.update(0, weight, grad if aliased else grad.copy(), state)
                else:
                    getattr(opt, call)([0], [weight], [grad if aliased else grad.copy()], [state])
            results.append((weight, [p.copy() for p in parts(state)]))
        (w1, s1), (w2, s2) = results
        assert_same_bits(w1, w2, f"{target}: weight")
        for a, b in zip(s1, s2):
            assert_same_bits(a, b, f"{target}: state")
    runs = len(targets) * 2 * 2 if call != "step" else 0      # targets x (aliased, copy) x 2 steps
    assert sum(native_calls.values()) == runs
