"""Every MXNet 2.0 optimizer against a hand-written reference (tests/reference/mxnet2.py).

Each case runs 6 steps on two parameters of different shapes with signed data
(gradients beyond the clip bound), wd > 0, rescale_grad != 1, clip_gradient set
and None, a learning rate changed between steps, begin_num_update > 0, in
float32 and float64. Weights and every state are compared after every step;
tolerances are stated in support.py.
"""
from pathlib import Path

import numpy as np
import pytest

import optforge
from reference import mxnet2 as ref
from support import check_against_reference

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
    ("lamb", {}), ("lamb", {"bias_correction": False, "lower_bound": 3.0, "upper_bound": 5.0}),
    ("lans", {}), ("lans", {"lower_bound": 3.0}),
    ("lars", {}), ("lars", {"momentum": 0.9, "param_idx2name": {1: "bn_gamma"}}),
    ("groupadagrad", {"wd": 0.0}),
    ("adabelief", {}), ("adabelief", {"correct_bias": False}),
]

@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}{hp}" for n, hp in CASES])
def test_matches_reference(name, hp, dtype, clip):
    check_against_reference("mxnet2", name, hp, ref.RULES[name], dtype, clip)


# Rules whose reference is their authors' package (and, for Prodigy, a reference written from
# the paper), compared in the test file named: their group reductions or factored matrices do
# not fit the per-parameter references of tests/reference/papers.py
PEER_CHECKED = {"prodigy": "test_group_reductions.py", "dadaptadam": "test_group_reductions.py",
                "clippedadamw": "test_group_reductions.py", "came": "test_came.py", "shampoo": "test_shampoo.py",
                "soap": "test_soap.py", "kron": "test_kron.py"}


def test_every_registered_optimizer_has_a_reference():
    from reference import papers   # the optimizers MXNet lacks: tests/test_new_reference.py
    for name, test_file in PEER_CHECKED.items():
        assert f"{name}" in (Path(__file__).parent / test_file).read_text().lower(), name
    covered = {name for name, _ in CASES} | set(papers.RULES) | set(papers.MATRIX_RULES) | set(PEER_CHECKED)
    assert set(optforge.runtime.registry.names("mxnet2")) == covered


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
