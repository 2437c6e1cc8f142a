"""Row-sparse gradients: lazy updates touch only the listed rows; standard updates equal the
dense update with zero gradient in the other rows. Both are checked against the hand-written
dense references (restricted to the rows for lazy updates) over several steps."""
import numpy as np
import pytest

import optforge
from optforge import RowSparse
from reference import mxnet1, mxnet2
from support import assert_close, assert_states_close, copy_state, signed

SHAPE = (6, 3)
ROW_SETS = [[4, 1, 1], [0, 5], [2], [5, 3, 0]]    # unsorted and repeated rows on purpose

CASES = [   # (flavor, name, hyperparameters, reference, wd)
    ("mxnet2", "sgd", {}, mxnet2.sgd, 0.02),
    ("mxnet2", "sgd", {"momentum": 0.9}, mxnet2.sgd, 0.02),
    ("mxnet2", "adam", {}, mxnet2.adam, 0.02),
    ("mxnet2", "ftrl", {}, mxnet2.ftrl, 0.02),
    ("mxnet2", "adagrad", {}, mxnet2.adagrad, 0.0),
    ("mxnet2", "groupadagrad", {}, mxnet2.groupadagrad, 0.0),
    ("mxnet2", "lars", {"momentum": 0.9}, mxnet2.lars, 0.02),
    ("mxnet1", "sgd", {"momentum": 0.9}, mxnet1.sgd, 0.02),
    ("mxnet1", "adam", {}, mxnet1.adam, 0.02),
]


LAZY_OPTION = ("sgd", "adam", "lars", "ftrl")   # the rest are lazy by rule (sparse_update = "lazy")


def _dense(rows, values):
    dense = np.zeros(SHAPE, values.dtype)
    np.add.at(dense, rows, values)
    return dense


def _rows_of(state, rows):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s[rows] if s.ndim else s for s in state)
    return state[rows]


def _put_rows(state, rows, new):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_put_rows(s, rows, n) for s, n in zip(state, new))
    out = state.copy()
    out[rows] = new
    return out


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "standard"])
@pytest.mark.parametrize("flavor,name,hp,rule,wd", CASES, ids=[f"{c[0]}-{c[1]}{c[2]}" for c in CASES])
def test_row_sparse_updates(flavor, name, hp, rule, wd, lazy):
    dtype = np.float64
    rng = np.random.default_rng(7)
    opt = optforge.create(name, flavor=flavor, learning_rate=0.05, wd=wd, rescale_grad=0.7,
                          clip_gradient=0.6, lazy_update=lazy, **hp) if name in LAZY_OPTION \
        else optforge.create(name, flavor=flavor, learning_rate=0.05, wd=wd, rescale_grad=0.7,
                             clip_gradient=0.6, **hp)
    assert opt.lazy_update is (lazy if name in LAZY_OPTION else True)
    weight = signed(rng, SHAPE, 1.5, dtype)
    state = opt.create_state(0, weight)
    expected_w, expected_s = weight.copy(), copy_state(state)
    for step, rows in enumerate(ROW_SETS, start=1):
        values = signed(rng, (len(rows), SHAPE[1]), 2.0, dtype)
        grad = RowSparse(np.array(rows), values, SHAPE)
        dense = _dense(rows, values)
        kw = dict(lr=0.05, wd=wd, t=step, rescale_grad=0.7, clip_gradient=0.6, **hp)
        if opt.lazy_update and name == "lars":       # norms over the whole tensors, rows kept
            new_w, new_s = rule(expected_w, dense, expected_s, **kw)
            touched = sorted(set(rows))
            expected_w = _put_rows(expected_w, touched, new_w[touched])
            expected_s = _put_rows(expected_s, touched, _rows_of(new_s, touched))
        elif opt.lazy_update:
            touched = sorted(set(rows))
            new_w, new_s = rule(expected_w[touched], dense[touched], _rows_of(expected_s, touched), **kw)
            expected_w = _put_rows(expected_w, touched, new_w)
            expected_s = _put_rows(expected_s, touched, new_s)
        else:
            expected_w, expected_s = rule(expected_w, dense, expected_s, **kw)
        before = weight.copy()
        opt.update(0, weight, grad, state)
        assert_close(weight, expected_w, dtype, f"{name} weight after step {step}")
        assert_states_close(state, expected_s, dtype, f"{name} state after step {step}")
        untouched = [r for r in range(SHAPE[0]) if r not in rows]
        if opt.lazy_update:
            np.testing.assert_array_equal(weight[untouched], before[untouched])


@pytest.mark.parametrize("flavor", ["mxnet2", "mxnet1"])
def test_ftrl_row_sparse_default_is_mxnets_dense_weight_update(flavor):
    """MXNet runs FTRL's row-sparse kernel only for row-sparse weights and states; a dense weight
    gets the dense update, so rows without a gradient are recomputed from z and n (on the
    first step, z = 0 sets them to 0). lazy_update=True keeps them."""
    weight = np.linspace(-1, 1, 18).reshape(SHAPE)
    grad = RowSparse(np.array([1, 4]), np.full((2, 3), 0.5), SHAPE)
    dense = optforge.create("ftrl", flavor=flavor, learning_rate=0.1)
    assert dense.lazy_update is False
    w, state = weight.copy(), dense.create_state(0, weight)
    dense.update(0, w, grad, state)
    expected_w, expected_s = mxnet2.ftrl(weight, grad.todense(), (np.zeros(SHAPE), np.zeros(SHAPE)),
                                         lr=0.1, wd=0.0, t=1, rescale_grad=1.0, clip_gradient=None)
    assert_close(w, expected_w, np.float64, "dense FTRL weight")
    assert_states_close(state, expected_s, np.float64, "dense FTRL state")
    np.testing.assert_array_equal(w[[0, 2, 3, 5]], 0.0)       # recomputed from z = 0, n = 0
    lazy = optforge.create("ftrl", flavor=flavor, learning_rate=0.1, lazy_update=True)
    w = weight.copy()
    lazy.update(0, w, grad, lazy.create_state(0, w))
    np.testing.assert_array_equal(w[[0, 2, 3, 5]], weight[[0, 2, 3, 5]])
    assert_close(w[[1, 4]], expected_w[[1, 4]], np.float64, "lazy FTRL rows")


def test_canonical_form_sorts_and_sums_rows():
    g = RowSparse([3, 1, 3], np.array([[1.0], [2.0], [4.0]]), (5, 1))
    np.testing.assert_array_equal(g.indices, [1, 3])
    np.testing.assert_array_equal(g.values, [[2.0], [5.0]])
    np.testing.assert_array_equal(g.todense().ravel(), [0, 2, 0, 5, 0])


@pytest.mark.parametrize("indices,values,message", [
    ([0, 6], np.ones((2, 3)), "row index 6 is out of range for 6 rows"),
    ([-1], np.ones((1, 3)), "row index -1 is out of range"),
    ([0.5], np.ones((1, 3)), "indices must be integers"),
    ([[0, 1]], np.ones((2, 3)), "indices must be 1-D"),
    ([0, 1], np.ones((2, 4)), r"values have shape \(2, 4\), expected \(2, 3\)"),
])
def test_invalid_row_sparse(indices, values, message):
    with pytest.raises(ValueError, match=message):
        RowSparse(np.array(indices), values, SHAPE)


def test_mismatched_sparse_gradient_changes_nothing():
    opt = optforge.create("adam", lazy_update=True)
    weight = np.ones(SHAPE)
    state = opt.create_state(0, weight)
    with pytest.raises(ValueError, match="gradient of parameter 0 has shape"):
        opt.update(0, weight, RowSparse([0], np.ones((1, 2)), (6, 2)), state)
    with pytest.raises(ValueError, match="gradient of parameter 0 has dtype float32"):
        opt.update(0, weight, RowSparse([0], np.ones((1, 3), np.float32), SHAPE), state)
    np.testing.assert_array_equal(weight, 1)
    assert opt._index_update_count == {}


def test_multi_precision_with_row_sparse_gradient():
    opt = optforge.create("sgd", learning_rate=0.5, momentum=0.9, multi_precision=True, lazy_update=True)
    weight = np.ones(SHAPE, np.float16)
    state = opt.create_state_multi_precision(0, weight)
    opt.update_multi_precision(0, weight, RowSparse([2], np.ones((1, 3), np.float16), SHAPE), state)
    assert weight.dtype == np.float16
    np.testing.assert_array_equal(weight[2], 0.5)
    np.testing.assert_array_equal(np.delete(weight, 2, axis=0), 1)
    np.testing.assert_array_equal(state[0][2], 0.5)
