"""Every MXNet 2.0 optimizer against a hand-written reference (tests/reference/mxnet2.py).

Each case runs 6 steps on two parameters of different shapes with signed data
(gradients beyond the clip bound), wd > 0, rescale_grad != 1, clip_gradient set
and None, a learning rate changed between steps, begin_num_update > 0, in
float32 and float64. Weights and every state are compared after every step;
tolerances are stated in support.py.
"""
import numpy as np
import pytest

import optforge
from reference import mxnet2 as ref
from support import SHAPES, assert_close, assert_states_close, signed

CASES = [
    ("sgd", {}), ("sgd", {"momentum": 0.9}),
    ("nag", {}), ("nag", {"momentum": 0.0}),
    ("signum", {}), ("signum", {"wd_lh": 0.02}), ("signum", {"momentum": 0.0, "wd_lh": 0.01}),
    ("ftml", {}),
    ("dcasgd", {}), ("dcasgd", {"momentum": 0.9}),
    ("sgld", {"seed": 7}),
    ("adam", {}),
    ("adamw", {}), ("adamw", {"correct_bias": False}),
    ("adamax", {}),
    ("nadam", {}),
    ("adagrad", {}),
    ("adadelta", {}),
    ("rmsprop", {}), ("rmsprop", {"centered": True}),
    ("rmsprop", {"clip_weights": 0.9}), ("rmsprop", {"centered": True, "clip_weights": 0.9}),
    ("ftrl", {}), ("ftrl", {"lamda1": 0.0}),
    ("test", {}),
]

BEGIN = 3          # begin_num_update: the first step has t = 4
STEPS = 6
LEARNING_RATES = {1: 0.05, 3: 0.02, 5: 0.08}   # set before these steps
WD = 0.02
RESCALE = 0.7


def _noise(seed, index, t, shape, dtype):
    """SGLD's documented noise contract: a function of (seed, index, t, draw number) only."""
    return np.random.default_rng([seed, index, t, 1]).standard_normal(shape, dtype=dtype)


@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}{hp}" for n, hp in CASES])
def test_matches_reference(name, hp, dtype, clip):
    rng = np.random.default_rng(abs(hash((name, str(hp)))) % 2**32)
    opt = optforge.create(name, wd=WD, rescale_grad=RESCALE, clip_gradient=clip,
                          begin_num_update=BEGIN, **hp)
    weights = [signed(rng, s, 1.5, dtype) for s in SHAPES]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    expected_w = [w.copy() for w in weights]
    expected_s = [_copy(s) for s in states]
    rule = ref.RULES[name]
    lr = None
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            lr = LEARNING_RATES[step] * (10 if name == "adadelta" else 1)
            opt.set_learning_rate(lr)
        grads = [signed(rng, s, 2.0, dtype) for s in SHAPES]
        before = [g.copy() for g in grads]
        t = BEGIN + step
        for i in range(len(weights)):
            extra = {"noise": _noise(hp["seed"], i, t, SHAPES[i], dtype)} if name == "sgld" else {}
            hp_ref = {k: v for k, v in hp.items() if k != "seed"}
            expected_w[i], expected_s[i] = rule(expected_w[i], grads[i], expected_s[i], lr=lr, wd=WD, t=t,
                                                rescale_grad=RESCALE, clip_gradient=clip, **hp_ref, **extra)
        opt.update(list(range(len(weights))), weights, grads, states)
        for i in range(len(weights)):
            np.testing.assert_array_equal(grads[i], before[i], err_msg="the caller's gradient changed")
            assert weights[i].dtype == dtype
            assert_close(weights[i], expected_w[i], dtype, f"{name} weight {i} after step {step}")
            assert_states_close(states[i], expected_s[i], dtype, f"{name} param {i} after step {step}")
    assert opt.num_update == BEGIN + STEPS
    assert opt._index_update_count == {0: BEGIN + STEPS, 1: BEGIN + STEPS}


def _copy(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.copy() for s in state)
    return state.copy()


def test_every_registered_optimizer_has_a_reference():
    from reference import papers   # the optimizers MXNet lacks: tests/test_new_reference.py
    covered = {name for name, _ in CASES} | set(papers.RULES)
    assert set(optforge.runtime.registry.names()) == covered


def test_sgld_noise_has_variance_lr():
    opt = optforge.create("sgld", learning_rate=0.04, seed=3)
    w = np.zeros(200_000, np.float32)
    opt.update(0, w, np.zeros_like(w), None)
    assert abs(w.mean()) < 0.002
    assert abs(w.std() - 0.2) < 0.002     # std = sqrt(lr)


def test_sgld_noise_depends_on_seed_index_and_step():
    def run(seed, index):
        opt = optforge.create("sgld", learning_rate=0.01, seed=seed)
        w = np.zeros(64)
        opt.update(index, w, np.zeros_like(w), None)
        first = w.copy()
        opt.update(index, w, np.zeros_like(w), None)
        return first, w - first
    a1, a2 = run(1, 0)
    b1, _ = run(1, 0)
    np.testing.assert_array_equal(a1, b1)          # reproducible
    assert not np.allclose(a1, a2)                 # a new draw every step
    assert not np.allclose(a1, run(2, 0)[0])       # seed matters
    assert not np.allclose(a1, run(1, 1)[0])       # index matters


def test_adamw_skips_steps_with_bad_rescale_grad():
    for bad in (0.0, float("nan"), float("inf")):
        opt = optforge.create("adamw", learning_rate=0.1, wd=0.1, rescale_grad=bad)
        w = np.ones(5, np.float32)
        state = opt.create_state(0, w)
        opt.update(0, w, np.full(5, 2, np.float32), state)
        np.testing.assert_array_equal(w, 1)
        np.testing.assert_array_equal(state[0], 0)
        assert opt._index_update_count[0] == 1     # the step still counts, as in MXNet
