"""The MXNet 1.x flavor (`flavor='mxnet1'`) against hand-written 1.x references
(tests/reference/mxnet1.py), with the same schedule as the 2.0 tests: 6 steps, two
parameters, signed data beyond the clip bound, wd > 0, rescale_grad != 1, clip set
and None, lr changed between steps, begin_num_update > 0, float32 and float64."""
import numpy as np
import pytest

import optforge
from reference import mxnet1 as ref
from support import check_against_reference

CASES = [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("ccsgd", {"momentum": 0.5}),
    ("nag", {}), ("nag", {"momentum": 0.9}),
    ("signum", {}), ("signum", {"momentum": 0.0, "wd_lh": 0.01}),
    ("ftml", {}),
    ("dcasgd", {}), ("dcasgd", {"momentum": 0.9}),
    ("sgld", {"seed": 3}),
    ("adam", {}),
    ("adagrad", {}),
    ("rmsprop", {}), ("rmsprop", {"centered": True, "clip_weights": 1.2}),
    ("adadelta", {}),
    ("ftrl", {}),
    ("adamax", {}),
    ("nadam", {}),
    ("test", {}),
    ("groupadagrad", {"wd": 0.0}),
    ("lamb", {}),
    ("lars", {"momentum": 0.9, "param_idx2name": {1: "fc_bias"}}), ("lars", {"momentum": 0.9, "momentum_correction": False}),
    ("lars", {}),
    ("lbsgd", {}), ("lbsgd", {"momentum": 0.9, "batch_scale": 2, "warmup_epochs": 1, "updates_per_epoch": 4}),
    ("lbsgd", {"batch_scale": 3, "warmup_strategy": "power2", "warmup_epochs": 2, "updates_per_epoch": 5}),
    ("lbsgd", {"batch_scale": 2, "warmup_strategy": "sqrt", "begin_epoch": 1, "updates_per_epoch": 3}),
    ("lbsgd", {"momentum": 0.5, "batch_scale": 2, "warmup_strategy": "lars"}),
]


@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}{hp}" for n, hp in CASES])
def test_matches_1x_reference(name, hp, dtype, clip):
    check_against_reference("mxnet1", name, hp, ref.RULES[name], dtype, clip)


def test_every_1x_optimizer_is_registered_and_covered():
    expected = {"sgd", "ccsgd", "signum", "ftml", "lars", "lbsgd", "lamb", "dcasgd", "nag", "sgld",
                "adam", "adagrad", "rmsprop", "adadelta", "ftrl", "adamax", "nadam", "test",
                "groupadagrad"}
    assert set(optforge.runtime.registry.names("mxnet1")) == expected
    assert {name for name, _ in CASES} == expected


def test_1x_defaults():
    create = optforge.create
    assert create("sgd", flavor="mxnet1").lr == 0.01 and create("sgd", flavor="mxnet1").lazy_update
    assert create("nag", flavor="mxnet1").momentum == 0.0
    assert create("adagrad", flavor="mxnet1").eps == 1e-7
    assert create("rmsprop", flavor="mxnet1").gamma1 == 0.9
    assert "epsilon" not in create("adamax", flavor="mxnet1").hyperparameters
    assert create("lars", flavor="mxnet1").eps == 0.0


def test_1x_wd_mult_naming_rule():
    names = {0: "fc_weight", 1: "fc_bias", 2: "bn_gamma", 3: "bn_beta", 4: "emb"}
    opt = optforge.create("sgd", flavor="mxnet1", wd=0.1, param_idx2name=names)
    assert opt.wd_mult == {"fc_bias": 0.0, "bn_beta": 0.0, "emb": 0.0}
    assert [opt._get_wd(i) for i in range(5)] == [0.1, 0.0, 0.1, 0.0, 0.0]
    lars = optforge.create("lars", flavor="mxnet1", wd=0.1, param_idx2name=names)
    assert [lars._get_wd(i) for i in range(5)] == [0.1, 0.0, 0.0, 0.0, 0.0]   # only *_weight
    two = optforge.create("sgd", wd=0.1, param_idx2name=names)                 # 2.0: all decay
    assert [two._get_wd(i) for i in range(5)] == [0.1] * 5


def test_lbsgd_reads_the_learning_rate_before_counting():
    seen = []

    def schedule(n):
        seen.append(n)
        return 0.1
    opt = optforge.create("lbsgd", flavor="mxnet1", lr_scheduler=schedule, begin_num_update=5)
    opt.update(0, np.ones(2), np.ones(2), opt.create_state(0, np.ones(2)))
    sgd = optforge.create("sgd", flavor="mxnet1", lr_scheduler=schedule, begin_num_update=5)
    sgd.update(0, np.ones(2), np.ones(2), None)
    assert seen == [5, 6]


def test_lbsgd_with_batch_scale_1_is_sgd():
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal(10)
    w2 = w1.copy()
    a = optforge.create("lbsgd", flavor="mxnet1", learning_rate=0.1, momentum=0.9, wd=0.01)
    b = optforge.create("sgd", flavor="mxnet1", learning_rate=0.1, momentum=0.9, wd=0.01)
    sa, sb = a.create_state(0, w1), b.create_state(0, w2)
    for _ in range(5):
        g = rng.standard_normal(10)
        a.update(0, w1, g, sa)
        b.update(0, w2, g, sb)
    np.testing.assert_array_equal(w1, w2)


def test_adamax_1x_has_no_epsilon():
    opt = optforge.create("adamax", flavor="mxnet1")
    w = np.ones(3)
    with np.errstate(invalid="ignore"):
        opt.update(0, w, np.array([1.0, 0.0, -1.0]), opt.create_state(0, w))
    assert np.isnan(w[1]) and np.isfinite(w[[0, 2]]).all()


def test_aggregate_num_defaults_from_the_environment(monkeypatch):
    monkeypatch.delenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", raising=False)
    assert optforge.create("sgd", flavor="mxnet1").aggregate_num == 4
    assert optforge.create("lamb", flavor="mxnet1").aggregate_num == 45
    assert optforge.create("sgd").aggregate_num == 1 and optforge.create("lamb").aggregate_num == 4
    monkeypatch.setenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "60")
    assert optforge.create("sgd", flavor="mxnet1").aggregate_num == 60
    assert optforge.create("lamb", flavor="mxnet1").aggregate_num == 45     # capped like MXNet
    assert optforge.create("sgd", flavor="mxnet1", aggregate_num=2).aggregate_num == 2
    monkeypatch.setenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "many")
    with pytest.raises(ValueError, match="MXNET_OPTIMIZER_AGGREGATION_SIZE='many' is not an integer"):
        optforge.create("sgd", flavor="mxnet1")
