"""What a rule can start from: read-only copies of the initial weight, scalar states that
start from a hyperparameter, infinite defaults, and the `initial_lr` input.

Each spec here is written from its paper and run through every API family (MXNet style,
optforge.optim, optforge.torch) against a reference written here in float64 NumPy from the
paper, and AdaBound against torch-optimizer's implementation as well. Data: several
parameters of different shapes, signed gradients beyond the clip bound, wd > 0,
rescale_grad != 1, a learning rate changed between steps, begin_num_update > 0, 5 steps.

Tolerances: the optimizers compute in float32; the references in float64. A step's
relative rounding is a few float32 ulps (about 1e-7) of the values it combines, carried
over 5 steps: rtol 1e-5 and atol 1e-6 (of weights of order 1) bound that with margin and
still fail on any wrong term (each term moves the weights by more than 1e-4). torch-
optimizer's AdaBound computes in float32 with another operation order: the same bound.
"""
import inspect
import json
import math

import numpy as np
import pytest

import optforge
from optforge.codegen.errors import SpecError

from support import weights_and_grads

torch = pytest.importorskip("torch")

SHAPES = [(6,), (3, 4), (2, 3, 2)]
STEPS = 5
BEGIN = 3                      # begin_num_update: the first step has t = 4
RESCALE = 0.5
CLIP = 1.0
WD = 0.01
LRS = [0.05, 0.05, 0.02, 0.03, 0.01]     # changed between steps
RTOL, ATOL = 1e-5, 1e-6


def _load(tmp_path, monkeypatch, text, name):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / f"{name.lower()}.toml"
    path.write_text(text)
    return optforge.load_spec(path)


def _data(seed):
    return weights_and_grads(seed, SHAPES, STEPS)


def _mxnet_run(cls, weights, grads, **settings):
    """Every step through the MXNet-style `update` (the fused kernels) of all parameters at
    once, the learning rate set before each step."""
    opt = cls(learning_rate=LRS[0], rescale_grad=RESCALE, clip_gradient=CLIP, wd=WD,
              begin_num_update=BEGIN, **settings)
    ws = [w.copy() for w in weights]
    idx = list(range(len(ws)))
    states = [opt.create_state(i, w) for i, w in enumerate(ws)]
    for step, gs in enumerate(grads):
        opt.set_learning_rate(LRS[step])
        opt.update(idx, ws, gs, states)
    return ws, states


def _torch_run(cls, weights, grads, **settings):
    """Every step through the optforge.torch class (no rescale or clip there: torch has
    neither), the group's lr set before each step as a scheduler does."""
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = cls(params, lr=LRS[0], weight_decay=WD, **settings)
    for step, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad = torch.from_numpy(g.copy())
        opt.param_groups[0]["lr"] = LRS[step]
        opt.step()
    return [p.detach().numpy() for p in params], opt


def _optim_run(cls, weights, grads, **settings):
    params = [w.copy() for w in weights]
    opt = cls(params, lr=LRS[0], weight_decay=WD, **settings)
    for step, gs in enumerate(grads):
        opt.param_groups[0]["lr"] = LRS[step]
        opt.step([g.copy() for g in gs])
    return params, opt


# -- AdaBound: `initial_lr` ----------------------------------------------------------------

ADABOUND = '''name = "AdaBoundInit"
summary = "AdaBound: Adam whose per-element step is clipped into bounds that converge to SGD's"
references = ["Luo, Xiong, Liu and Sun, Adaptive Gradient Methods with Dynamic Bound of Learning Rate, ICLR 2019"]
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
m = beta1 * m + (1 - beta1) * grad
v = beta2 * v + (1 - beta2) * grad * grad
step_size = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
final = final_lr * lr / initial_lr
lower = final * (1 - 1 / (gamma * t + 1))
upper = final * (1 + 1 / (gamma * t))
weight = weight - clip(step_size / (sqrt(v) + epsilon), lower, upper) * m
"""
[hyperparameters]
learning_rate = 0.001
beta1 = { default = 0.9, range = "[0, 1)" }
beta2 = { default = 0.999, range = "[0, 1)" }
epsilon = { default = 1e-8, range = "[0, inf)" }
final_lr = { default = 0.1, range = "[0, inf)" }
gamma = { default = 1e-3, range = "(0, 1)" }
[states]
m = "zeros"
v = "zeros"
'''


GAMMA = 0.5


def _adabound_reference(weights, grads, initial_lr, begin, rescale, clip, final_lr=0.1, gamma=GAMMA,
                        beta1=0.9, beta2=0.999, eps=1e-8):
    """AdaBound (Algorithm 2 of the paper, with Adam's bias corrections in the step size as
    the authors' code has them), float64; the final rate scales with lr / initial_lr."""
    ws = [w.astype(np.float64) for w in weights]
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros_like(w) for w in ws]
    for step, gs in enumerate(grads):
        lr, t = LRS[step], begin + step + 1
        for w, m, v, g in zip(ws, ms, vs, gs):
            g = g.astype(np.float64) * rescale
            if clip is not None:
                g = np.clip(g, -clip, clip)
            g = g + WD * w
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
            final = final_lr * lr / initial_lr
            lower, upper = final * (1 - 1 / (gamma * t + 1)), final * (1 + 1 / (gamma * t))
            w -= np.clip(size / (np.sqrt(v) + eps), lower, upper) * m
    return ws


def test_adabound_initial_lr_in_every_family(tmp_path, monkeypatch):
    cls = _load(tmp_path, monkeypatch, ADABOUND, "AdaBoundInit")
    weights, grads = _data(0)
    # MXNet style: the rate given at construction, lr_mult applied; set_learning_rate leaves it
    # gamma = 0.5: the bounds bind within 5 steps (the paper's 1e-3 takes thousands)
    ws, _ = _mxnet_run(cls, weights, grads, gamma=GAMMA)
    expected = _adabound_reference(weights, grads, LRS[0], BEGIN, RESCALE, CLIP)
    for got, want in zip(ws, expected):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # the reference with the current lr in place of the initial one is far from it: the input
    # is read, not folded into lr
    wrong = _adabound_reference(weights, grads, 0.01, BEGIN, RESCALE, CLIP)
    assert max(np.abs(a - b).max() for a, b in zip(wrong, expected)) > 1e-3
    # torch and params style: the group's initial_lr, as torch's schedulers keep it
    for run, family in ((_torch_run, optforge.torch.AdaBoundInit), (_optim_run, optforge.optim.AdaBoundInit)):
        got, opt = run(family, weights, grads, gamma=GAMMA)
        assert opt.param_groups[0]["initial_lr"] == LRS[0]
        for a, b in zip(got, _adabound_reference(weights, grads, LRS[0], 0, 1.0, None)):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_adabound_matches_torch_optimizer(tmp_path, monkeypatch):
    torch_optimizer = pytest.importorskip("torch_optimizer")
    _load(tmp_path, monkeypatch, ADABOUND, "AdaBoundInit")
    weights, grads = _data(1)
    ours, _ = _torch_run(optforge.torch.AdaBoundInit, weights, grads, gamma=GAMMA)
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    peer = torch_optimizer.AdaBound(params, lr=LRS[0], weight_decay=WD, gamma=GAMMA)
    for step, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad = torch.from_numpy(g.copy())
        peer.param_groups[0]["lr"] = LRS[step]
        peer.step()
    for a, p in zip(ours, params):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=RTOL, atol=ATOL)


def test_initial_lr_follows_lr_mult_and_scheduler_base(tmp_path, monkeypatch):
    cls = _load(tmp_path, monkeypatch, ADABOUND, "AdaBoundInit")
    weights, grads = _data(2)
    # lr_mult 0.5 on parameter 1: its lr and its initial lr both halve
    opt = cls(learning_rate=LRS[0], rescale_grad=RESCALE, clip_gradient=CLIP, wd=WD, begin_num_update=BEGIN)
    opt.set_lr_mult({1: 0.5})
    assert opt._get_initial_lrs([0, 1]) == [LRS[0], LRS[0] * 0.5]
    # without learning_rate, the scheduler's base rate
    sched = optforge.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.2)
    opt = cls(learning_rate=None, lr_scheduler=sched)
    assert opt._get_initial_lrs([0]) == [0.2]
    # an invalid initial_lr in a torch group is refused before the group is added
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="initial_lr"):
        optforge.torch.AdaBoundInit([{"params": [p], "initial_lr": -1.0}])
    torch_opt = optforge.torch.AdaBoundInit([torch.nn.Parameter(torch.zeros(3))], lr=0.01)
    with pytest.raises(ValueError, match="initial_lr"):
        torch_opt.add_param_group({"params": [p], "initial_lr": float("nan")})
    assert len(torch_opt.param_groups) == 1
    # torch's scheduler keeps the initial_lr the optimizer set
    sched = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=1, gamma=0.5)
    torch_opt.step()      # no gradients: nothing moves
    sched.step()
    assert torch_opt.param_groups[0]["initial_lr"] == 0.01 and torch_opt.param_groups[0]["lr"] == 0.005
    # rules that do not read it keep torch's group layout
    sgd = optforge.torch.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    assert "initial_lr" not in sgd.param_groups[0]


# -- a read-only copy of the initial weight, scalar states from hyperparameters ------------

ANCHORED = '''name = "Anchored"
summary = "SGD with a pull towards the initial point and a step scale growing from d0"
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
a = norm(grad)
weight = weight - lr * d * (grad + mu * (weight - w0))
d = d * growth
e = maximum(e, 0.5 * a)
weight = weight - lr * e * sign(grad) * 0.01
"""
[hyperparameters]
learning_rate = 0.01
mu = { default = 0.3, range = "[0, inf)" }
d0 = { default = 0.5, range = "(0, inf)" }
growth = { default = 1.1, range = "(0, inf)" }
[states]
w0 = { init = "weight", doc = "the initial point" }
d = { init = "d0", shape = "scalar", doc = "a host scalar starting at d0" }
e = { init = "d0", shape = "scalar", doc = "a device scalar starting at d0" }
'''


def _anchored_reference(weights, grads, rescale, clip, d0=0.5, mu=0.3, growth=1.1):
    ws = [w.astype(np.float64) for w in weights]
    w0s = [w.copy() for w in ws]
    ds = [d0] * len(ws)
    es = [d0] * len(ws)
    for step, gs in enumerate(grads):
        lr = LRS[step]
        for k, (w, w0, g) in enumerate(zip(ws, w0s, gs)):
            g = g.astype(np.float64) * rescale
            if clip is not None:
                g = np.clip(g, -clip, clip)
            g = g + WD * w
            a = np.sqrt((g * g).sum())
            w -= lr * ds[k] * (g + mu * (w - w0))
            ds[k] *= growth
            es[k] = max(es[k], 0.5 * a)
            w -= lr * es[k] * np.sign(g) * 0.01
    return ws, ds, es


def test_initial_point_and_scalar_states_from_hyperparameters(tmp_path, monkeypatch):
    cls = _load(tmp_path, monkeypatch, ANCHORED, "Anchored")
    weights, grads = _data(3)
    for d0 in (0.5, 2.0):
        ws, states = _mxnet_run(cls, weights, grads, d0=d0)
        expected, ds, es = _anchored_reference(weights, grads, RESCALE, CLIP, d0=d0)
        for k, (got, want) in enumerate(zip(ws, expected)):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
            w0, d, e = states[k]
            np.testing.assert_array_equal(w0, weights[k])      # read-only: the initial weight
            assert d.dtype == np.float64 and float(d) == pytest.approx(ds[k], rel=1e-12)
            assert float(e) == pytest.approx(es[k], rel=RTOL)
    expected, _, _ = _anchored_reference(weights, grads, 1.0, None)
    for run, family in ((_torch_run, optforge.torch.Anchored), (_optim_run, optforge.optim.Anchored)):
        got, opt = run(family, weights, grads)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    # the kernels never write a read-only state: its pointer is const and nothing stores to it
    text = next((tmp_path / "cache").rglob("anchored.cpp")).read_text()
    declared = [line for line in text.splitlines() if "__restrict__ p_w0" in line]
    assert declared and all(line.strip().startswith("const ") for line in declared)
    assert "om::put(p_w0" not in text and "om::put(p_weight" in text


# -- infinite defaults --------------------------------------------------------------------

BOUNDED = '''name = "Bounded"
update = """
weight = weight - lr * clip(grad, bound)
"""
[hyperparameters]
learning_rate = 0.1
bound = { default = inf, range = "[0, inf]" }
'''


def test_an_infinite_default_within_its_range(tmp_path, monkeypatch):
    cls = _load(tmp_path, monkeypatch, BOUNDED, "Bounded")
    assert inspect.signature(cls).parameters["bound"].default == math.inf
    w, g = np.zeros(4, np.float32), np.array([-3.0, -0.2, 0.2, 3.0], np.float32)
    opt = cls()
    opt.update(0, w, g, opt.create_state(0, w))
    np.testing.assert_array_equal(w, -0.1 * g)            # no bound
    w[:] = 0
    opt = cls(bound=0.5)
    opt.update(0, w, g, opt.create_state(0, w))
    np.testing.assert_array_equal(w, np.float32(-0.1) * np.clip(g, -0.5, 0.5))
    # the constructor lines the docs and `optforge show` print are valid Python
    from optforge.conventions.api_families import constructors
    for family in constructors(cls.SPEC, True, builtin=False):
        for line in family["lines"]:
            assert "float('inf')" in line
            compile(line, "<line>", "exec")


@pytest.mark.parametrize("entry, message", [
    ("bound = { default = inf }", "infinite: give a range that includes it"),
    ('bound = { default = inf, range = "[0, inf)" }', "outside its range"),
    ("bound = { default = nan }", "NaN"),
])
def test_infinite_and_nan_defaults_refused_with_their_position(tmp_path, entry, message):
    path = tmp_path / "bad.toml"
    path.write_text(BOUNDED.replace('bound = { default = inf, range = "[0, inf]" }', entry))
    with pytest.raises(SpecError, match=message) as info:
        optforge.load_spec(path, register=False)
    assert "bad.toml:7:21:" in str(info.value)     # the default's line and column


@pytest.mark.parametrize("states, message", [
    ('w0 = "zeros"', "never written by the update (only a copy of the weight"),
    ('w0 = { init = "d0", shape = "rows" }', "has the weight's shape, is a scalar"),
    ('w0 = { init = "d0", shape = "scalar", when = "d0 > 1" }', "always exists: remove 'when'"),
])
def test_read_only_and_hyperparameter_states_refused_where_meaningless(tmp_path, states, message):
    path = tmp_path / "bad.toml"
    path.write_text('name = "Bad"\nupdate = "weight = weight - lr * grad"\n[hyperparameters]\n'
                    'd0 = { default = 0.5, range = "(0, inf)" }\n[states]\n' + states + "\n")
    with pytest.raises(SpecError, match=message.replace("(", r"\(")) as info:
        optforge.load_spec(path, register=False)
    assert "bad.toml:6:" in str(info.value)


def test_initial_lr_per_group_saved_and_loaded(tmp_path, monkeypatch):
    cls = _load(tmp_path, monkeypatch, ADABOUND, "AdaBoundInit")
    weights, grads = _data(4)
    # two torch groups with the same lr and different initial_lr step as each would alone
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights[:2]]
    opt = optforge.torch.AdaBoundInit([{"params": [params[0]]}, {"params": [params[1]], "initial_lr": 0.01}],
                                      lr=0.05, gamma=GAMMA)
    alone = [torch.nn.Parameter(torch.from_numpy(weights[1].copy()))]
    single = optforge.torch.AdaBoundInit([{"params": alone, "initial_lr": 0.01}], lr=0.05, gamma=GAMMA)
    for gs in grads:
        params[0].grad, params[1].grad = torch.from_numpy(gs[0].copy()), torch.from_numpy(gs[1].copy())
        alone[0].grad = torch.from_numpy(gs[1].copy())
        opt.step()
        single.step()
    assert torch.equal(params[1], alone[0])
    # MXNet style: the saved configuration keeps the initial lr (set_learning_rate changed lr)
    mx = cls(learning_rate=0.1)
    mx.set_learning_rate(0.05)
    again = cls.from_config(json.loads(json.dumps(mx.config())))
    assert again._get_initial_lrs([0]) == [0.1] and again.learning_rate == 0.05
    sched = optforge.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.2)
    mx = cls(learning_rate=None, lr_scheduler=sched)
    again = cls.from_config(json.loads(json.dumps(mx.config())))
    assert again._get_initial_lrs([0]) == [0.2]
    # a state dict without initial_lr (saved before the group had one) takes the group's lr;
    # an invalid one is refused before anything is loaded
    for family, make in ((optforge.optim.AdaBoundInit, lambda w: w.copy()),
                         (optforge.torch.AdaBoundInit, lambda w: torch.nn.Parameter(torch.from_numpy(w.copy())))):
        opt = family([make(weights[0])], lr=0.03)
        saved = opt.state_dict()
        del saved["param_groups"][0]["initial_lr"]
        fresh = family([make(weights[0])], lr=0.07)
        fresh.load_state_dict(saved)
        if family is optforge.optim.AdaBoundInit:
            fresh.step([grads[0][0].copy()])
        else:
            fresh.param_groups[0]["params"][0].grad = torch.from_numpy(grads[0][0].copy())
            fresh.step()
        assert fresh.param_groups[0]["initial_lr"] == 0.03
        saved["param_groups"][0]["initial_lr"] = -1.0
        before = fresh.state_dict()["param_groups"][0]["lr"]
        with pytest.raises(ValueError, match="initial_lr"):
            fresh.load_state_dict(saved)
        assert fresh.param_groups[0]["initial_lr"] == 0.03 and fresh.param_groups[0]["lr"] == before


def test_a_hyperparameter_cannot_take_the_initial_lr_keyword(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "Bad"\nupdate = "weight = weight - lr * foo * grad"\n[hyperparameters]\n'
                    'foo = { default = 0.5, keyword = "initial_lr" }\n')
    with pytest.raises(SpecError, match="'initial_lr' is a key of every params-style parameter group"):
        optforge.load_spec(path, register=False)
