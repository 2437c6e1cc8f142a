"""The PyTorch-semantics flavor and the optimizers MXNet lacks, against hand-written
references (tests/reference/torch_optim.py from the torch.optim / MindSpore docs,
tests/reference/papers.py from the papers), through the MXNet-style API.

Each case runs 7 steps on two parameters of different shapes with signed data,
wd > 0 and a learning rate changed between steps, in float32 and float64; the new
optimizers also with rescale_grad != 1 and clip_gradient set. Weights and every
state are compared after every step; tolerances are stated in support.py.
"""
import numpy as np
import pytest

import optforge
from reference import papers, torch_optim
from support import SHAPES, assert_close, signed

STEPS = 7
LEARNING_RATES = {1: 0.01, 3: 0.004, 6: 0.02}   # set before these steps
WD = 0.03

TORCH_CASES = [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "dampening": 0.3}),
    ("sgd", {"momentum": 0.8, "nesterov": True}), ("sgd", {"momentum": 0.9, "maximize": True}),
    ("adam", {}), ("adam", {"amsgrad": True}), ("adam", {"maximize": True, "beta1": 0.8}),
    ("adamw", {}), ("adamw", {"amsgrad": True}),
    ("adamax", {}), ("adamax", {"maximize": True}),
    ("rmsprop", {}), ("rmsprop", {"centered": True}), ("rmsprop", {"momentum": 0.9}),
    ("rmsprop", {"centered": True, "momentum": 0.5, "maximize": True}),
    ("adagrad", {}), ("adagrad", {"lr_decay": 0.1}),
    ("adadelta", {}),
    ("nadam", {}), ("nadam", {"decoupled_weight_decay": True}),
    ("radam", {}), ("radam", {"decoupled_weight_decay": True}), ("radam", {"beta2": 0.9}),
    ("asgd", {}), ("asgd", {"t0": 2.0, "lambd": 0.05, "maximize": True}),
    ("sparseadam", {"wd": 0.0}), ("sparseadam", {"wd": 0.0, "maximize": True, "beta1": 0.8}),
]
NEW_CASES = [
    ("lion", {}), ("lion", {"maximize": True}),
    ("amsgrad", {}), ("yogi", {}), ("yogi", {"beta2": 0.9}),
    ("adan", {}), ("adan", {"maximize": True}),
    ("rprop", {}), ("rprop", {"step_size_max": 0.05}),
    ("novograd", {}), ("novograd", {"beta1": 0.5, "maximize": True}),
    ("adopt", {}), ("adopt", {"use_clipping": False, "nesterov": True}),
    ("ademamix", {}), ("ademamix", {"warmup": 4.0, "alpha": 2.0, "beta3": 0.999}),
    ("cadamw", {}), ("cadamw", {"mask_epsilon": 1e-8}),
    ("schedulefreeadamw", {}), ("schedulefreeadamw", {"warmup_steps": 3, "decay_at_z": True}),
    # learning_rate: the initial lr AdaBound's bounds scale by (the steps set other rates);
    # gamma 0.5: the bounds bind within 7 steps
    ("adabound", {"learning_rate": 0.004, "gamma": 0.5}),
    ("adabound", {"learning_rate": 0.004, "gamma": 0.5, "final_lr": 0.05, "amsbound": True}),
    ("aggmo", {}), ("aggmo", {"betas": (0.0, 0.5, 0.8)}),
]


def _run(name, flavor, hp, rule, dtype, rescale, clip, seed):
    rng = np.random.default_rng(seed)
    hp = dict(hp)
    wd = hp.pop("wd", WD)      # SparseAdam has no weight decay (wd must be 0)
    extra = {} if flavor == "torch" else {"rescale_grad": rescale, "clip_gradient": clip}
    opt = optforge.create(name, flavor=flavor, wd=wd, **extra, **hp)
    weights = [signed(rng, s, 1.5, dtype) for s in SHAPES]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    names = opt._present_states()
    expected_w = [w.copy() for w in weights]   # the reference computes in the same dtype
    expected_s = [{} for _ in weights]
    ref_extra = {} if flavor == "torch" else {"rescale_grad": rescale, "clip_gradient": clip}
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            lr = LEARNING_RATES[step] * (10 if name == "adadelta" else 1)
            opt.set_learning_rate(lr)
        grads = [signed(rng, s, 2.0, dtype) for s in SHAPES]
        for i in range(len(weights)):
            expected_w[i], expected_s[i] = rule(expected_w[i], grads[i], expected_s[i],
                                                lr=lr, wd=wd, t=step, **ref_extra, **hp)
        opt.update(list(range(len(weights))), weights, grads, states)
        for i in range(len(weights)):
            assert weights[i].dtype == dtype
            assert_close(weights[i], expected_w[i], dtype, f"{name} weight {i} after step {step}")
            parts = () if states[i] is None else states[i] if isinstance(states[i], tuple) else (states[i],)
            assert len(parts) == len(names)
            for state_name, part in zip(names, parts):
                assert_close(part, expected_s[i][state_name], dtype,
                             f"{name} state {state_name} of param {i} after step {step}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,hp", TORCH_CASES, ids=[f"{n}{hp}" for n, hp in TORCH_CASES])
def test_torch_flavor_matches_the_docs(name, hp, dtype):
    _run(name, "torch", hp, torch_optim.RULES[name], dtype, 1.0, None, seed=len(name) * 7 + len(hp))


@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,hp", NEW_CASES, ids=[f"{n}{hp}" for n, hp in NEW_CASES])
def test_new_optimizers_match_their_papers(name, hp, dtype, clip):
    _run(name, "mxnet2", hp, papers.RULES[name], dtype, 0.7, clip, seed=len(name) * 11 + len(hp))


def test_every_torch_flavor_spec_has_a_reference():
    assert set(optforge.runtime.registry.names("torch")) == set(torch_optim.RULES) | set(torch_optim.MATRIX_RULES)
    assert {n for n, _ in TORCH_CASES} == set(torch_optim.RULES)


def test_new_optimizers_are_registered_and_listed(capsys):
    from optforge.cli import main
    for name in papers.RULES:
        assert type(optforge.create(name)).__name__.lower() == name
    main(["list"])
    listed = capsys.readouterr().out
    for name in papers.RULES:
        assert f"\n{name} " in listed


def test_rprop_first_step_uses_lr_and_flips_skip_the_element():
    opt = optforge.create("rprop", learning_rate=0.1)
    w = np.zeros(3)
    state = opt.create_state(0, w)
    opt.update(0, w, np.array([1.0, -1.0, 0.0]), state)
    np.testing.assert_array_equal(w, [-0.1, 0.1, 0.0])
    opt.update(0, w, np.array([1.0, 1.0, 2.0]), state)       # same sign, flipped, first sign
    np.testing.assert_allclose(w, [-0.1 - 0.12, 0.1, -0.1])
