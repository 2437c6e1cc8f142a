"""The params-style API (optforge.optim) against the hand-written references: param groups
overriding defaults, several steps and parameters with signed data, wd > 0, a learning
rate changed through param_groups (as torch schedulers do), both call forms,
state_dict()/load_state_dict() in torch's layout, maximize, and the validation errors
of the MindSpore Adamax page. Tolerances are those of support.py."""
import inspect

import numpy as np
import pytest

from optforge import optim
from reference import papers, torch_optim
from support import assert_close, signed

SHAPES = [(4, 3), (5,), (2, 2, 2)]

# (class, constructor arguments, reference, reference arguments)
CASES = [
    ("Adam", {"betas": (0.8, 0.99), "weight_decay": 0.02}, torch_optim.adam, {"beta1": 0.8, "beta2": 0.99}),
    ("Adam", {"amsgrad": True, "maximize": True}, torch_optim.adam, {"amsgrad": True, "maximize": True}),
    ("AdamW", {}, torch_optim.adamw, {}),
    ("Adamax", {"eps": 1e-6, "weight_decay": 0.01}, torch_optim.adamax, {"epsilon": 1e-6}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, torch_optim.sgd,
     {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.5, "dampening": 0.5}, torch_optim.sgd, {"momentum": 0.5, "dampening": 0.5}),
    ("RMSprop", {"centered": True, "momentum": 0.3}, torch_optim.rmsprop, {"centered": True, "momentum": 0.3}),
    ("Adagrad", {"lr_decay": 0.05, "weight_decay": 0.01}, torch_optim.adagrad, {"lr_decay": 0.05}),
    ("Adadelta", {"rho": 0.8}, torch_optim.adadelta, {"rho": 0.8}),
    ("NAdam", {"momentum_decay": 0.01}, torch_optim.nadam, {"momentum_decay": 0.01}),
    ("RAdam", {"decoupled_weight_decay": True, "weight_decay": 0.05}, torch_optim.radam,
     {"decoupled_weight_decay": True}),
    ("Lion", {"betas": (0.95, 0.98), "weight_decay": 0.1}, papers.lion, {"beta1": 0.95, "beta2": 0.98}),
    ("AMSGrad", {"weight_decay": 0.01}, papers.amsgrad, {}),
    ("Yogi", {"eps": 1e-3}, papers.yogi, {"epsilon": 1e-3}),
    ("Adan", {"betas": (0.9, 0.9, 0.95), "weight_decay": 0.02}, papers.adan,
     {"beta1": 0.9, "beta2": 0.9, "beta3": 0.95}),
    ("NovoGrad", {"betas": (0.9, 0.5), "weight_decay": 0.01}, papers.novograd, {"beta1": 0.9, "beta2": 0.5}),
    ("Rprop", {"etas": (0.4, 1.3), "step_sizes": (1e-4, 0.5)}, papers.rprop,
     {"etaminus": 0.4, "etaplus": 1.3, "step_size_min": 1e-4, "step_size_max": 0.5}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_matches_reference_with_param_groups(case, dtype):
    name, kwargs, rule, ref_kwargs = case
    cls = getattr(optim, name)
    rng = np.random.default_rng(len(name) * 31 + len(kwargs))
    params = [signed(rng, s, 1.0, dtype) for s in SHAPES]
    lr0 = 0.01 * (50 if name == "Adadelta" else 1)
    # the second group overrides the learning rate and the weight decay
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": 2 * lr0, "weight_decay": 0.07}],
              lr=lr0, **kwargs)
    wd = kwargs.get("weight_decay", cls([np.zeros(1)]).defaults["weight_decay"])
    expected = [p.copy() for p in params]
    states = [{} for _ in params]
    for step in range(1, 7):
        if step == 4:                                  # a scheduler changes group["lr"]
            for group in opt.param_groups:
                group["lr"] *= 0.5
        grads = [signed(rng, s, 2.0, dtype) for s in SHAPES]
        for i in range(len(params)):
            group = opt.param_groups[0 if i < 2 else 1]
            expected[i], states[i] = rule(expected[i], grads[i], states[i], lr=group["lr"],
                                          wd=wd if i < 2 else 0.07, t=step, **ref_kwargs)
        if step % 2:
            opt(grads)                                 # MindSpore's call form
        else:
            opt.step(grads)
        for i in range(len(params)):
            assert_close(params[i], expected[i], dtype, f"{name} param {i} after step {step}")
    saved = opt.state_dict()
    for i in range(len(params)):
        assert float(saved["state"][i]["step"]) == 6
        for key, value in states[i].items():
            assert_close(saved["state"][i][key], value, dtype, f"{name} state {key} of param {i}")


def test_signatures_follow_torch():
    # torch.optim's keywords, then the state storage (bitsandbytes' min_8bit_size default)
    storage = ", state_storage=None, min_8bit_size=4096)"
    assert str(inspect.signature(optim.Adam)) == \
        "(params, lr=0.001, *, betas=(0.9, 0.999), eps=1e-08, amsgrad=False, maximize=False, weight_decay=0.0" + storage
    assert str(inspect.signature(optim.Adamax)) == \
        "(params, lr=0.002, *, betas=(0.9, 0.999), eps=1e-08, maximize=False, weight_decay=0.0" + storage
    assert inspect.signature(optim.AdamW).parameters["weight_decay"].default == 0.01
    assert inspect.signature(optim.SGD).parameters["lr"].default == 0.001
    for name in ("Adam", "AdamW", "Adamax", "SGD", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam",
                 "Lion", "AMSGrad", "Yogi", "Adan", "Rprop", "NovoGrad"):
        assert getattr(optim, name).__name__ == name


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": -0.1}, "Invalid learning rate: lr must be >= 0.0, got -0.1"),
    ({"lr": "0.1"}, "Invalid learning rate: lr must be a number, got '0.1'"),
    ({"eps": -1e-8}, "Invalid eps value: epsilon must be in [0, inf), got -1e-08"),
    ({"weight_decay": -0.1}, "Invalid weight_decay value: weight_decay must be >= 0.0, got -0.1"),
    ({"betas": (1.0, 0.999)}, "Invalid betas[0] value: beta1 must be in [0, 1), got 1.0"),
    ({"betas": (0.9, -0.5)}, "Invalid betas[1] value: beta2 must be in [0, 1), got -0.5"),
    ({"betas": (0.9,)}, "Invalid betas: expected 2 values (beta1, beta2), got (0.9,)"),
])
def test_mindspore_adamax_validation(kwargs, message):
    with pytest.raises(ValueError) as info:
        optim.Adamax([np.zeros(3)], **kwargs)
    assert str(info.value) == message


def test_invalid_group_value_raises_at_the_next_step_and_changes_nothing():
    w = np.ones(3)
    opt = optim.Adam([w], lr=0.1)
    opt.param_groups[0]["betas"] = (0.9, 2.0)
    with pytest.raises(ValueError, match=r"Invalid betas\[1\]"):
        opt.step([np.ones(3)])
    np.testing.assert_array_equal(w, 1)
    assert opt.state == {}


def test_a_new_lr_keeps_the_engine_and_is_checked_like_any_value():
    # a scheduler changes lr every step: the group's engine is kept (its kept launches with
    # it) and the lr read at each step, validated as the constructor validates it
    w = np.ones(3)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    opt.step([np.ones(3)])
    engine = opt._engines[0][1]
    opt.param_groups[0]["lr"] = 0.05
    opt.step([np.ones(3)])
    assert opt._engines[0][1] is engine
    np.testing.assert_allclose(w, 1 - 0.1 - 0.05 * (0.9 + 1), rtol=1e-15)   # torch.optim.SGD's rule
    opt.param_groups[0]["lr"] = -0.5
    with pytest.raises(ValueError, match="Invalid learning rate: lr must be >= 0.0, got -0.5"):
        opt.step([np.ones(3)])
    np.testing.assert_allclose(w, 1 - 0.1 - 0.05 * 1.9, rtol=1e-15)
    assert opt._engines[0][1] is engine and opt._counts == {0: 2}


def test_arrays_are_checked_before_any_state_is_touched():
    a, b = np.ones(3, np.float32), np.ones(4, np.float32)
    opt = optim.Adam([a, b], lr=0.1)
    opt.step([np.ones(3, np.float32), np.ones(4, np.float32)])
    before = {k: tuple(s.copy() for s in v) for k, v in opt.state.items()}
    for bad, error in (([np.ones(3, np.float32), np.ones(5, np.float32)], "shape"),
                       ([np.ones(3, np.float32), np.ones(4, np.float64)], "dtype"),
                       ([np.ones(3, np.float32)], "1 gradients for 2 parameters"),
                       ([np.ones(3, np.float32), [1.0, 1.0, 1.0, 1.0]], "gradient is list")):
        with pytest.raises((ValueError, TypeError), match=error):
            opt.step(bad)
        np.testing.assert_array_equal(a, before[0][0] * 0 + a)   # a unchanged below
    for k, v in opt.state.items():
        for x, y in zip(v, before[k]):
            np.testing.assert_array_equal(x, y)
    assert float(opt.state_dict()["state"][0]["step"]) == 1


def test_none_gradients_skip_their_parameter():
    a, b = np.ones(2), np.ones(2)
    opt = optim.SGD([a, b], lr=0.5)
    opt.step([np.ones(2), None])
    np.testing.assert_array_equal(a, 0.5)
    np.testing.assert_array_equal(b, 1.0)
    assert list(opt.state_dict()["state"]) == [0]


def test_state_dict_round_trip_resumes_exactly():
    rng = np.random.default_rng(5)
    params = [signed(rng, s, 1.0, np.float64) for s in SHAPES]
    twin = [p.copy() for p in params]
    grads = [[signed(rng, s, 1.0, np.float64) for s in SHAPES] for _ in range(6)]
    opt = optim.NAdam([{"params": params[:1], "lr": 0.02}, {"params": params[1:]}], lr=0.01)
    for g in grads[:3]:
        opt.step(g)
    saved = opt.state_dict()
    other = optim.NAdam([{"params": twin[:1], "lr": 0.5}, {"params": twin[1:]}], lr=0.01)
    for p, q in zip(twin, params):
        p[...] = q
    other.load_state_dict(saved)
    assert other.param_groups[0]["lr"] == 0.02
    for g in grads[3:]:
        opt.step(g)
        other.step(g)
    for p, q in zip(params, twin):
        np.testing.assert_array_equal(p, q)
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "mu_product"}
    assert saved["param_groups"][1]["params"] == [1, 2]


def test_load_state_dict_checks_before_changing_anything():
    w = np.ones(3)
    opt = optim.Adam([w], lr=0.1)
    opt.step([np.ones(3)])
    good = opt.state_dict()
    bad = {"state": {0: dict(good["state"][0], exp_avg=np.zeros(4))}, "param_groups": good["param_groups"]}
    before = opt.state[0][0].copy()
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    missing = {"state": {0: {"step": 1.0, "exp_avg": np.zeros(3)}}, "param_groups": good["param_groups"]}
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict(missing)
    np.testing.assert_array_equal(opt.state[0][0], before)


def test_maximize_is_gradient_ascent():
    a, b = np.zeros(3), np.zeros(3)
    optim.SGD([a], lr=0.1, maximize=True).step([np.ones(3)])
    optim.SGD([b], lr=0.1).step([-np.ones(3)])
    np.testing.assert_array_equal(a, b)
    assert a[0] == pytest.approx(0.1)


def test_create_and_repr():
    w = np.ones(2)
    opt = optim.create("lion", [w], lr=1e-3)
    assert type(opt).__name__ == "Lion" and "lr: 0.001" in repr(opt)
    assert type(optim.create("adam", [w])).spec_class.flavor == "torch"
    assert type(optim.create("adam", [w], flavor="mxnet2")).spec_class.flavor == "mxnet2"


def test_nesterov_needs_momentum_and_no_dampening():
    with pytest.raises(ValueError, match=r"SGD requires not nesterov or \(momentum > 0 and dampening == 0\); "
                                         r"got dampening=0.0, momentum=0.0, nesterov=True"):
        optim.SGD([np.ones(2)], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="dampening=0.5"):
        optim.SGD([np.ones(2)], lr=0.1, momentum=0.9, dampening=0.5, nesterov=True)
    optim.SGD([np.ones(2)], lr=0.1, momentum=0.9, nesterov=True).step([np.ones(2)])


@pytest.mark.gpu
def test_cupy_parameters_match_numpy():
    """On a GPU: CuPy parameters run the same generated code on the device (pytest -m gpu)."""
    cupy = pytest.importorskip("cupy")
    if not cupy.cuda.is_available():
        pytest.skip("no usable CUDA GPU")
    rng = np.random.default_rng(2)
    host = [signed(rng, s, 1.0, np.float32) for s in SHAPES]
    device = [cupy.asarray(p) for p in host]
    a = optim.Adam(host, lr=0.01, weight_decay=0.01)
    b = optim.Adam(device, lr=0.01, weight_decay=0.01)
    for _ in range(3):
        grads = [signed(rng, s, 1.0, np.float32) for s in SHAPES]
        a.step(grads)
        b.step([cupy.asarray(g) for g in grads])
    for p, q in zip(host, device):
        assert_close(cupy.asnumpy(q), p, np.float32, "cupy vs numpy")
    assert isinstance(b.state_dict()["state"][0]["exp_avg"], cupy.ndarray)
