"""The reductions sum, dot, max, min, row_sum, row_max, row_min, col_sum, col_max, col_min.

- the parser: positioned SpecErrors for a reduction of a scalar, of another reduction's
  result, of a value that simplifies to a scalar, of a bool, for wrong arities, and
  suggestions for names of other libraries;
- `step` (the generated NumPy code) against references written here in float64 NumPy:
  every reduction's value (kept in a state) and the weight, over several steps of signed
  data, shapes 0-d to 3-D, float32 and float64, element-wise rules and matrix rules in
  both views; NaN propagates, a zero maximum is +0;
- `fused_step` on the native CPU kernels against `step`: maxima and minima bit for bit,
  sums within the rounding of a double sum taken in another order; the same bits with
  1 and 2 threads, one update per tensor or one for all, across several chunks;
- the differential verifier (`optforge check --verify`): every target agrees with `step`
  on a small spec of each reduction;
- which targets get kernels, the FSDP2 shard rule, and the formula docs.
"""
import math

import numpy as np
import pytest

import optforge
from optforge.codegen.errors import SpecError
from optforge.runtime.backends import native, native_build

import cuda_host
from support import html5_error

STEPS = 4
SHAPES = [(), (7,), (5, 6), (3, 4, 5)]
ROW_SHAPES = [(7,), (5, 6), (3, 4, 5)]       # row states need an axis
MATRIX_SHAPES = [(7,), (5, 6), (2, 4, 5)]
DTYPES = ("float32", "float64")

WHOLE = '''name = "WholeReductions"
update = """
s = sum(grad)
d = dot(grad, weight)
hi = max(grad)
lo = min(grad)
weight = weight - lr * (grad + 0.01 * s + 0.01 * d + 0.1 * hi + 0.1 * lo)
vs = s
vd = d
vx = hi
vn = lo
"""
[hyperparameters]
learning_rate = 0.1
[states]
vs = { init = 0.0 }
vd = { init = 0.0 }
vx = { init = 0.0 }
vn = { init = 0.0 }
'''

ROWS = '''name = "RowReductions"
update = """
rs = row_sum(grad)
rx = row_max(grad)
rn = row_min(grad)
weight = weight - lr * (grad + 0.01 * rs + 0.1 * rx + 0.1 * rn)
vs = rs
vx = rx
vn = rn
"""
[hyperparameters]
learning_rate = 0.1
[states]
vs = { init = "zeros", shape = "rows" }
vx = { init = "zeros", shape = "rows" }
vn = { init = "zeros", shape = "rows" }
'''

MATRIX = '''name = "MatrixReductions"
matrix = "VIEW"
update = """
cs = col_sum(grad)
cx = col_max(grad)
cn = col_min(grad)
rs = row_sum(grad)
rx = row_max(grad)
rn = row_min(grad)
weight = weight - lr * (grad + 0.01 * cs + 0.1 * cx + 0.1 * cn + 0.01 * rs + 0.1 * rx + 0.1 * rn + 0.001 * sum(grad) + 0.1 * max(grad) + 0.1 * min(grad) + 0.001 * dot(grad, weight))
vcs = cs
vcx = cx
vcn = cn
vrs = rs
vrx = rx
vrn = rn
"""
[hyperparameters]
learning_rate = 0.1
[states]
vcs = { init = "zeros", shape = "cols" }
vcx = { init = "zeros", shape = "cols" }
vcn = { init = "zeros", shape = "cols" }
vrs = { init = "zeros", shape = "rows" }
vrx = { init = "zeros", shape = "rows" }
vrn = { init = "zeros", shape = "rows" }
'''


def load(tmp_path, text, name, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return optforge.load_spec(path, register=False), path


def signed(rng, shape, dtype):
    """Signed data of both magnitudes, exact zeros among it (maxima and minima tie)."""
    x = rng.standard_normal(shape) * 2.0
    if x.size > 3:
        x.flat[::5] = 0.0
    return np.asarray(x, dtype=dtype)


def run(cls, shapes, dtype, fused, seed=0, steps=STEPS, **kwargs):
    """(weights before each step, gradients, weights after each step, states after each
    step) of `steps` MXNet-style updates, one parameter per shape."""
    rng = np.random.default_rng(seed)
    opt = cls(use_fused_step=fused, **kwargs)
    weights = [signed(rng, s, dtype) for s in shapes]
    states = [opt.create_state(k, w) for k, w in enumerate(weights)]
    history = []
    for _ in range(steps):
        grads = [signed(rng, s, dtype) for s in shapes]
        before = [w.copy() for w in weights]
        for k, (w, g, st) in enumerate(zip(weights, grads, states)):
            opt.update(k, w, g, st)
        history.append((before, grads, [w.copy() for w in weights],
                        [tuple(np.array(x, copy=True) for x in (st or ())) for st in states]))
    return history


# Tolerances of `step` against the float64 references. A sum of n terms taken in another
# order differs by at most n * eps * sum|terms| (eps: 2^-53 in float64); float32 results
# are also rounded once to float32 (2^-24 of the sum) and dot's products are rounded to
# float32 before they are added (2^-24 of each term). Maxima and minima are elements: exact.
def sum_tolerance(terms, dtype):
    scale = float(np.sum(np.abs(terms)))
    if np.dtype(dtype) == np.float32:
        return 2.0 ** -22 * scale
    return max(terms.size, 1) * 2.0 ** -52 * scale


def weight_tolerance(before, step, dtype):
    """The new weight is computed element-wise in the weight's dtype from rounded
    reductions: a few ulps of the largest magnitude involved (8 ulps: a handful of roundings)."""
    scale = max(float(np.max(np.abs(before), initial=0)), float(np.max(np.abs(step), initial=0)), 1.0)
    return 8 * float(np.finfo(dtype).eps) * scale


# -- the parser -------------------------------------------------------------------------------
BAD = [
    ("n = sum(lr)", 3, 5, "sum() reduces a tensor; its argument does not depend on one"),
    ("n = max(grad, weight)", 3, 5, "max() takes 1 argument, got 2; max(x) is the largest element of a tensor; "
                                    "the element-wise maximum of two values is maximum(a, b)"),
    ("n = min(grad, 0)", 3, 5, "the element-wise minimum of two values is minimum(a, b)"),
    ("n = dot(grad)", 3, 5, "dot() takes 2 arguments, got 1; dot(a, b) is the sum of every element of a * b"),
    ("n = sum(grad, weight)", 3, 5, "sum() takes 1 argument, got 2"),
    ("n = sum(grad > 0)", 3, 9, "a comparison is a bool: it cannot be used as an argument of sum()"),
    ("n = max(norm(grad))", 3, 5, "max() reduces a tensor; its argument is one value per tensor"),
    ("n = sum(grad - grad)", 3, 5, "sum() reduces a tensor; its argument does not depend on one "
                                   "(it simplifies to 0)"),
    ("n = norm(grad - grad)", 3, 5, "norm() reduces a tensor; its argument does not depend on one"),
    ("n = dot(grad, 1 / grad)", 3, 5, "the product of its arguments simplifies to 1, which does not depend on one"),
    ("n = dot(lr, 2)", 3, 5, "dot() reduces a tensor; neither argument depends on one"),
    ("n = row_max(row_sum(grad))", 3, 5, "row_max() reduces each row; its argument already has one value per row"),
    ("n = row_min(lr + 1)", 3, 5, "row_min() reduces a tensor; its argument does not depend on one"),
    ("n = col_sum(grad - grad)", 3, 13, "col_sum() takes a matrix; its argument simplifies to 0"),
    ("n = col_max(lr)", 3, 13, "col_max() takes a matrix; its argument does not depend on a tensor"),
    ("n = summ(grad)", 3, 5, "unknown function 'summ'; did you mean 'sum'?"),
    ("n = row_maxx(grad)", 3, 5, "unknown function 'row_maxx'; did you mean 'row_max'?"),
    ("n = mean(grad)", 3, 5, "unknown function 'mean'; a whole-tensor mean is sum(x) / numel"),
    ("n = amax(grad)", 3, 5, "unknown function 'amax'; did you mean 'max'?"),
    ("n = vdot(grad, weight)", 3, 5, "unknown function 'vdot'; did you mean 'dot'?"),
]


@pytest.mark.parametrize("line,row,col,message", BAD, ids=[b[0] for b in BAD])
def test_a_misused_reduction_is_a_positioned_spec_error(tmp_path, monkeypatch, line, row, col, message):
    text = f'name = "Bad"\nupdate = """\n{line}\nweight = weight - lr * grad * n\n"""\n'
    with pytest.raises(SpecError) as err:
        load(tmp_path, text, "bad", monkeypatch)
    assert message in str(err.value)
    assert (err.value.line, err.value.col) == (row, col), str(err.value)


def test_dot_of_arrays_that_do_not_broadcast_is_a_positioned_error(tmp_path, monkeypatch):
    text = ('name = "Bad"\nmatrix = "first_rest"\nupdate = """\na = matmul(grad, transpose(grad))\n'
            'n = dot(a, grad)\nweight = weight - lr * grad * n\n"""\n')
    with pytest.raises(SpecError, match=r"dot: shapes \(rows, rows\) and \(rows, cols\) do not broadcast") as err:
        load(tmp_path, text, "bad", monkeypatch)
    assert (err.value.line, err.value.col) == (5, 5)


def test_a_mode_cannot_reduce(tmp_path, monkeypatch):
    text = ('name = "Bad"\nupdate = """\nweight = weight - lr * grad\nx = weight\n"""\n[states]\nx = "weight"\n'
            '[modes]\ntrain = "weight = x - max(x)"\neval = "weight = x"\n')
    with pytest.raises(SpecError, match="mode 'train' must be element-wise"):
        load(tmp_path, text, "bad", monkeypatch)


def test_a_per_matrix_row_maximum_into_a_scalar_state_under_last_two_is_refused(tmp_path, monkeypatch):
    text = ('name = "Bad"\nmatrix = "last_two"\nupdate = """\nv = col_max(row_sum(grad))\n'
            'weight = weight - lr * v * grad\n"""\n[states]\nv = { init = 0.0 }\n')
    with pytest.raises(SpecError, match="one value per matrix of the batch") as err:
        load(tmp_path, text, "bad", monkeypatch)
    assert (err.value.line, err.value.col) == (4, 1)


# -- step against float64 references ------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_whole_tensor_reductions_in_step_match_a_float64_reference(tmp_path, monkeypatch, dtype):
    cls, _ = load(tmp_path, WHOLE, "whole", monkeypatch)
    for before, grads, after, states in run(cls, SHAPES, dtype, fused=False):
        for w0, g, w1, (vs, vd, vx, vn) in zip(before, grads, after, states):
            g64, w64 = g.astype(np.float64), w0.astype(np.float64)
            s, d = math.fsum(g64.ravel()), math.fsum((g64 * w64).ravel())   # exactly rounded sums
            hi, lo = g64.max(), g64.min()
            assert abs(float(vs) - s) <= sum_tolerance(g64, dtype)
            assert abs(float(vd) - d) <= sum_tolerance(g64 * w64, dtype)
            assert float(vx) == hi and float(vn) == lo           # elements: exact
            expected = w64 - 0.1 * (g64 + 0.01 * s + 0.01 * d + 0.1 * hi + 0.1 * lo)
            np.testing.assert_allclose(w1, expected, rtol=0, atol=weight_tolerance(w0, expected, dtype))
            assert vs.dtype == vx.dtype == np.dtype(dtype)       # kept in the weight's precision


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_reductions_in_step_match_a_float64_reference(tmp_path, monkeypatch, dtype):
    cls, _ = load(tmp_path, ROWS, "rows", monkeypatch)
    for before, grads, after, states in run(cls, ROW_SHAPES, dtype, fused=False):
        for w0, g, w1, (vs, vx, vn) in zip(before, grads, after, states):
            g64, w64 = g.astype(np.float64), w0.astype(np.float64)
            rows = g64.reshape(g64.shape[0], -1)                 # every axis but the first
            keep = (g64.shape[0],) + (1,) * (g64.ndim - 1)
            s = np.array([math.fsum(r) for r in rows]).reshape(keep)
            hi, lo = rows.max(axis=1).reshape(keep), rows.min(axis=1).reshape(keep)
            assert vs.shape == vx.shape == vn.shape == keep
            for k in range(rows.shape[0]):
                assert abs(float(vs.flat[k]) - s.flat[k]) <= sum_tolerance(rows[k], dtype)
            np.testing.assert_array_equal(vx, hi)
            np.testing.assert_array_equal(vn, lo)
            expected = w64 - 0.1 * (g64 + 0.01 * s + 0.1 * hi + 0.1 * lo)
            np.testing.assert_allclose(w1, expected, rtol=0, atol=weight_tolerance(w0, expected, dtype))


def test_row_reductions_of_a_scalar_weight_reduce_no_axis(tmp_path, monkeypatch):
    """A 0-d weight has one row of one element: each row reduction is the element itself."""
    text = ('name = "ScalarRows"\nupdate = """\nweight = weight - lr * (row_sum(grad) + row_max(grad) '
            '+ row_min(grad) + sum(grad) + max(grad) + min(grad) + dot(grad, grad))\n"""\n'
            '[hyperparameters]\nlearning_rate = 0.1\n')
    cls, _ = load(tmp_path, text, "scalarrows", monkeypatch)
    for before, grads, after, _ in run(cls, [()], "float64", fused=False):
        g, w = float(grads[0]), float(before[0])
        assert float(after[0]) == pytest.approx(w - 0.1 * (6 * g + g * g), rel=1e-15, abs=1e-15)


def _view(x, view):
    """(batch, rows, cols) of an array seen as the spec's matrix view."""
    if x.ndim == 1:
        return x.reshape(1, x.shape[0], 1)
    if view == "first_rest":
        return x.reshape(1, x.shape[0], -1)
    return x.reshape(-1, x.shape[-2], x.shape[-1])


@pytest.mark.parametrize("view", ["first_rest", "last_two"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_row_and_column_reductions_of_matrix_rules_match_a_float64_reference(tmp_path, monkeypatch, view, dtype):
    cls, _ = load(tmp_path, MATRIX.replace("VIEW", view), f"matrix_{view}", monkeypatch)
    for before, grads, after, states in run(cls, MATRIX_SHAPES, dtype, fused=False):
        for w0, g, w1, (vcs, vcx, vcn, vrs, vrx, vrn) in zip(before, grads, after, states):
            g3, w3 = _view(g.astype(np.float64), view), _view(w0.astype(np.float64), view)
            cs, rs = g3.sum(axis=1, keepdims=True), g3.sum(axis=2, keepdims=True)
            cx, cn = g3.max(axis=1, keepdims=True), g3.min(axis=1, keepdims=True)
            rx, rn = g3.max(axis=2, keepdims=True), g3.min(axis=2, keepdims=True)
            for state, value, terms in ((vcs, cs, g3.shape[1]), (vrs, rs, g3.shape[2])):
                # sums of `terms` elements: float32 results rounded once, float64 within n eps
                eps = 2.0 ** -22 if dtype == "float32" else terms * 2.0 ** -52
                scale = np.abs(g3).sum(axis=1 if state is vcs else 2, keepdims=True)
                assert np.all(np.abs(state.reshape(value.shape) - value) <= eps * scale)
            for state, value in ((vcx, cx), (vcn, cn), (vrx, rx), (vrn, rn)):
                np.testing.assert_array_equal(state.reshape(value.shape), value)
            total, product = math.fsum(g3.ravel()), math.fsum((g3 * w3).ravel())
            expected = w3 - 0.1 * (g3 + 0.01 * cs + 0.1 * cx + 0.1 * cn + 0.01 * rs + 0.1 * rx + 0.1 * rn
                                   + 0.001 * total + 0.1 * g3.max() + 0.1 * g3.min() + 0.001 * product)
            np.testing.assert_allclose(_view(w1, view), expected, rtol=0,
                                       atol=weight_tolerance(w0, expected, dtype))


def test_nan_propagates_through_every_reduction_and_a_zero_extremum_is_positive(tmp_path, monkeypatch):
    cls, _ = load(tmp_path, WHOLE, "whole", monkeypatch)
    for fused in (False, True):
        opt = cls(use_fused_step=fused)
        w = np.ones(6, np.float32)
        state = opt.create_state(0, w)
        opt.update(0, w, np.array([1, -2, np.nan, 3, 0, -1], np.float32), state)
        assert all(np.isnan(v) for v in state), (fused, state)   # numpy.max's rule: NaN wins
        w = np.zeros(6, np.float32)
        state = opt.create_state(0, w)
        opt.update(0, w, np.full(6, -0.0, np.float32), state)
        vs, vd, vx, vn = state
        # max and min of -0.0 only: +0 on every target (numpy leaves the zero's sign unspecified)
        assert vx == 0 and vn == 0 and not np.signbit(vx) and not np.signbit(vn), fused


def test_an_empty_tensor_reduces_to_the_identity_in_step(tmp_path, monkeypatch):
    """numpy.max of an empty array raises; the generated code gives max -inf and min +inf
    (where the kernels' reductions start), sums 0."""
    cls, _ = load(tmp_path, WHOLE, "whole", monkeypatch)
    opt = cls(use_fused_step=False)
    w = np.zeros((0, 3))
    state = opt.create_state(0, w)
    opt.update(0, w, np.zeros((0, 3)), state)
    assert [float(v) for v in state] == [0.0, 0.0, -math.inf, math.inf]


# -- fused_step (native CPU kernels) against step --------------------------------------------------
@pytest.fixture
def native_backend(monkeypatch, tmp_path):
    try:
        native_build.compiler()
    except native_build.CompilerMissing as err:
        pytest.skip(f"no C++ compiler: {err}")
    monkeypatch.setenv(native.BACKEND_ENV, "native")     # a rule without kernels raises instead
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    execute = native.execute

    def counted(*args, **kwargs):     # the proof that the kernels ran
        calls.append(args[1])
        return execute(*args, **kwargs)
    monkeypatch.setattr(native, "execute", counted)
    yield calls
    native.set_num_threads(None)


@pytest.mark.parametrize("text,name,shapes", [(WHOLE, "whole", SHAPES), (ROWS, "rows", ROW_SHAPES)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_step_matches_step(tmp_path, native_backend, text, name, shapes, dtype):
    cls, _ = load(tmp_path, text, name)
    shapes = shapes + [(3, 30000)]       # 90000 elements: two 65536-element chunks
    reference = run(cls, shapes, dtype, fused=False)
    assert not native_backend
    fused = run(cls, shapes, dtype, fused=True)
    assert len(native_backend) == STEPS * len(shapes)
    for (_, _, w_ref, s_ref), (before, grads, w_fused, s_fused) in zip(reference, fused):
        for a, b, sa, sb, w0, g in zip(w_ref, w_fused, s_ref, s_fused, before, grads):
            # the sums differ (both in double, in another order) within their rounding, then
            # the same element-wise arithmetic: over 4 steps within 16 ulps of the largest magnitude
            np.testing.assert_allclose(b, a, rtol=0, atol=16 * np.finfo(dtype).eps * max(1.0, np.abs(a).max()))
            *sums, hi, lo = sa
            *fused_sums, fused_hi, fused_lo = sb
            np.testing.assert_array_equal(fused_hi, hi)       # maxima and minima: the same elements
            np.testing.assert_array_equal(fused_lo, lo)
            g64, w64 = g.astype(np.float64), w0.astype(np.float64)
            if name == "whole":     # each sum within its rounding of the exactly rounded one
                for x, terms in zip(fused_sums, (g64, g64 * w64)):
                    assert abs(float(x) - math.fsum(terms.ravel())) <= sum_tolerance(terms, dtype)
            else:
                rows = g64.reshape(g64.shape[0], -1)
                for k, r in enumerate(rows):
                    assert abs(float(fused_sums[0].flat[k]) - math.fsum(r)) <= sum_tolerance(r, dtype)


@pytest.mark.parametrize("text,name", [(WHOLE, "whole"), (ROWS, "rows")])
def test_fused_results_do_not_depend_on_threads_or_on_grouping(tmp_path, native_backend, text, name):
    cls, _ = load(tmp_path, text, name)
    shapes = [(3, 30000), (7,), (5, 26215), (4, 5)]      # across chunks, tails and a tiny tensor
    results = []
    for threads in (1, 2):
        native.set_num_threads(threads)
        results.append(run(cls, shapes, "float32", fused=True, seed=5))
    rng = np.random.default_rng(5)                       # the same data, one update for all tensors
    opt = cls(use_fused_step=True)
    weights = [signed(rng, s, "float32") for s in shapes]
    states = [opt.create_state(k, w) for k, w in enumerate(weights)]
    for _ in range(STEPS):
        grads = [signed(rng, s, "float32") for s in shapes]
        opt.update(list(range(len(shapes))), weights, grads, states)
    assert len(native_backend) == 2 * STEPS * len(shapes) + STEPS
    for a, b in zip(results[0][-1][2], results[1][-1][2]):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(results[0][-1][2], weights):
        assert a.tobytes() == b.tobytes()


# -- the differential verifier -----------------------------------------------------------------------
EXTREMA = '''name = "Extrema"
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
v = 0.5 * v + 0.5 * max(abs(grad))
weight = weight - lr * (grad / (1 + v) + 0.01 * min(weight))
"""
[hyperparameters]
learning_rate = 0.1
[states]
v = { init = 0.0 }
'''

ROW_EXTREMA = '''name = "RowExtrema"
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
r = 0.5 * r + 0.5 * row_max(abs(grad))
weight = weight - lr * (grad / (1 + r) + 0.01 * row_min(grad))
"""
[hyperparameters]
learning_rate = 0.1
[states]
r = { init = "zeros", shape = "rows" }
'''

SUMS = '''name = "Sums"
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
s = sum(grad)
d = dot(grad, weight)
v = 0.9 * v + 0.1 * s / (1 + abs(s))
weight = weight - lr * (grad / (1 + abs(d)) + 0.1 * v)
"""
[hyperparameters]
learning_rate = 0.1
[states]
v = { init = 0.0 }
'''

ROW_SUMS = '''name = "RowSums"
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
r = 0.5 * r + 0.5 * row_sum(grad * grad) / cols
weight = weight - lr * (grad / (sqrt(r) + 1) + 0.01 * row_max(grad) - 0.01 * row_min(grad))
"""
[hyperparameters]
learning_rate = 0.1
[states]
r = { init = "zeros", shape = "rows" }
'''

COLUMNS = '''name = "Columns"
matrix = "last_two"
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
c = 0.5 * c + 0.5 * col_sum(grad * grad) / rows
big = col_max(abs(grad)) > 1
weight = where(big, weight - lr * grad / (sqrt(c) + 1), weight - lr * col_min(grad) * 0.1) - lr * 0.001 * dot(grad, grad)
"""
[hyperparameters]
learning_rate = 0.1
[states]
c = { init = "zeros", shape = "cols" }
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    cuda_host.need(cuda_host.compiler(), "g++")
    return tmp_path_factory.mktemp("verify")


@pytest.mark.parametrize("text,name,exact", [(EXTREMA, "extrema", True), (ROW_EXTREMA, "rowextrema", True),
                                             (SUMS, "sums", False), (ROW_SUMS, "rowsums", False),
                                             (COLUMNS, "columns", True)])
def test_every_target_agrees_with_step(tmp_path, folder, monkeypatch, text, name, exact):
    from optforge.verify import resolve, verify
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    cls, label, covered = resolve(path)
    assert covered.gap is None and covered.exact == exact, covered.describe()
    report = verify(cls, label, covered, folder, large=not exact)
    lines = "\n".join(report.lines())
    assert not report.failed, lines
    statuses = {o.target: o.status for o in report.outcomes}
    assert set(statuses.values()) <= {"reference", "bit-identical", "within tolerance"}, lines
    # maxima and minima, and matrix rules (the same library calls): bit for bit everywhere
    assert ("bit-identical" in statuses.values()) == exact, lines
    assert len(statuses) >= 4, lines     # step, native (one update per parameter, one for all), CUDA, torch


# -- targets, shards, docs --------------------------------------------------------------------------------
def test_coverage_names_sums_as_inexact_and_refuses_a_whole_and_a_row_reduction_in_one_pass(tmp_path):
    from optforge.verify import coverage_of
    path = tmp_path / "sums.toml"
    path.write_text(SUMS)
    assert "sums (norm, sum, dot, row_mean, row_sum) are added in double" in coverage_of(path)[1].inexact
    path.write_text(EXTREMA)
    assert coverage_of(path)[1].exact
    path.write_text('name = "Mixed"\nupdate = """\nn = sum(grad)\nr = row_max(grad)\n'
                    'weight = weight - lr * grad * n * r\n"""\n')
    gap = coverage_of(path)[1].gap
    assert gap.reason == "a whole-tensor reduction and a row reduction finished in the same pass over memory"
    assert (gap.line, gap.col) == (4, 1)


def test_fsdp2_shards_all_reduce_sums_but_gather_for_maxima(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from optforge.torch import shards
    cls, _ = load(tmp_path, SUMS, "sums", monkeypatch)
    assert shards.reduces_norms(cls._module)     # numpy.sum over the whole shard: all-reduced
    cls, _ = load(tmp_path, EXTREMA, "extrema")
    assert not shards.reduces_norms(cls._module)


def test_the_docs_print_reductions_as_mathematics(tmp_path, monkeypatch):
    from optforge.cli import render_docs
    text = ('name = "DocReductions"\nmatrix = "first_rest"\nupdate = """\nweight = weight - lr * (sum(grad) * grad '
            '+ dot(grad, weight) + max(abs(grad)) + min(grad) + row_sum(grad) + row_max(grad) + row_min(grad) '
            '+ col_sum(grad) + col_max(grad) + col_min(grad))\n"""\n')
    _, path = load(tmp_path, text, "docreductions", monkeypatch)
    page = render_docs(path)
    markdown = (page.parent.parent / "docreductions.md").read_text()
    for latex in ("\\left(\\sum_{k} {g}_{k}\\right)", "\\left\\langle g, w \\right\\rangle",
                  "\\max_{k} {\\left|g\\right|}_{k}", "\\min_{k} {g}_{k}", "\\sum_{j} {g}_{ij}",
                  "\\max_{j} {g}_{ij}", "\\min_{j} {g}_{ij}", "\\sum_{i} {g}_{ij}", "\\max_{i} {g}_{ij}",
                  "\\min_{i} {g}_{ij}"):
        assert latex in markdown, latex
    html = page.read_text()
    assert html5_error(html) is None
    assert '<munder><mo largeop="true">∑</mo><mi>k</mi></munder>' in html
    assert '<mo stretchy="true">⟨</mo>' in html
