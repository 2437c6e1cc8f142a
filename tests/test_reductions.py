"""Rules with reductions (norm, row_mean): edge cases of LAMB, LANS, LARS, GroupAdaGrad, and
aggregation on and off."""
import numpy as np
import pytest

import optforge
from reference import mxnet2


def test_lamb_trust_ratio_is_one_for_a_zero_weight():
    opt = optforge.create("lamb", learning_rate=0.1)
    w = np.zeros(4)
    g = np.array([1.0, -2.0, 3.0, 0.5])
    expected, _ = mxnet2.lamb(w.copy(), g, (np.zeros(4), np.zeros(4)), lr=0.1, wd=0.0, t=1,
                              rescale_grad=1.0, clip_gradient=None)
    opt.update(0, w, g, opt.create_state(0, w))
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert np.all(np.isfinite(w)) and np.any(w != 0)


def test_lans_zero_gradient_keeps_weights_finite():
    opt = optforge.create("lans", learning_rate=0.1, wd=0.01)
    w = np.linspace(-1, 1, 5)
    opt.update(0, w, np.zeros(5), opt.create_state(0, w))
    assert np.all(np.isfinite(w))


def test_groupadagrad_requires_zero_weight_decay():
    opt = optforge.create("groupadagrad", wd=0.1)
    w = np.ones((3, 2))
    state = opt.create_state(0, w)
    with pytest.raises(ValueError, match=r"GroupAdaGrad requires wd == 0; parameter 0 has wd=0.1"):
        opt.update(0, w, np.ones((3, 2)), state)
    np.testing.assert_array_equal(w, 1)
    assert opt._index_update_count == {}


def test_groupadagrad_history_has_one_value_per_row():
    opt = optforge.create("groupadagrad")
    state = opt.create_state(0, np.ones((5, 3)))
    assert state.shape == (5, 1)
    assert opt.create_state(0, np.ones((5, 3, 2))).shape == (5, 1, 1)


def test_lars_exempts_bias_gamma_beta_by_name():
    rng = np.random.default_rng(0)
    names = {0: "conv_weight", 1: "conv_bias", 2: "bn_gamma", 3: "bn_beta", 4: "embedding"}
    weights = [rng.standard_normal(4) for _ in names]
    grads = [rng.standard_normal(4) for _ in names]
    opt = optforge.create("lars", learning_rate=1.0, eta=0.5, wd=0.0, param_idx2name=names)
    sgd = optforge.create("sgd", learning_rate=1.0)
    for i in names:
        w_lars, w_sgd = weights[i].copy(), weights[i].copy()
        opt.update(i, w_lars, grads[i], None)
        sgd.update(i, w_sgd, grads[i], None)
        exempt = names[i].endswith(("gamma", "beta", "bias"))
        assert np.array_equal(w_lars, w_sgd) == exempt, names[i]


@pytest.mark.parametrize("name", ["lamb", "lans", "lars", "adam"])
def test_aggregation_on_and_off_give_identical_results(name):
    rng = np.random.default_rng(3)
    shapes = [(6, 4), (4,), (3, 3), (8,), (2, 5)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    results = []
    for aggregate in (1, 3, np.inf):
        opt = optforge.create(name, learning_rate=0.05, wd=0.01, aggregate_num=aggregate,
                              **({"momentum": 0.9} if name == "lars" else {}))
        updater = optforge.get_updater(opt)
        ws = [w.copy() for w in start]
        for g in grads:
            updater(list(range(len(shapes))), g, ws)
        results.append(ws)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
