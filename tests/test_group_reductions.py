"""Group reductions (`group_sum`, `group_norm`, ...) and group states (`shape = "group"`):
Prodigy against prodigyopt, DAdaptAdam against dadaptation, ClippedAdamW against
torch.nn.utils.clip_grad_norm_ followed by torch.optim.AdamW, in every API family; a
NumPy reference of Prodigy written from the paper's algorithm for what the peers lack
(rescale_grad, clip_gradient, begin_num_update); the native kernels against `step`; group
semantics (one d per param group, split batches, checkpoints) and the errors.

Tolerances. The peers run in float64 here, as optforge does: both sides compute the same
formulas, but the group sums are added in another order (math.fsum of per-tensor partials
against torch.dot and Python additions), which moves d by a few float64 ulps per step; d
multiplies every step, so over 25 steps the weights agree to about 1e-14 relative. We allow
rtol 1e-10, atol 1e-12 (weights of order 1; a wrong term moves them by 1e-6 or more).
float32 runs (ClippedAdamW, the split batches) allow float32 rounding: rtol 1e-5, atol 1e-6.
"""
import copy
import math

import numpy as np
import pytest

import optforge
from optforge import SpecError

torch = pytest.importorskip("torch")
prodigyopt = pytest.importorskip("prodigyopt")
dadaptation = pytest.importorskip("dadaptation")

SHAPES = [(5, 4), (7,), (3, 2, 2)]
STEPS = 25
RTOL, ATOL = 1e-10, 1e-12


def _problem(seed, dtype=np.float64):
    """Weights, and a gradient function of a noisy quadratic (so that d grows: random
    gradients alone leave Prodigy's estimate at d0)."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    targets = [(2 * rng.standard_normal(shape)).astype(dtype) for shape in SHAPES]
    noise = np.random.default_rng(seed + 1)

    def grads(current):
        return [((w - t) * 3 + 0.1 * noise.standard_normal(w.shape)).astype(dtype)
                for w, t in zip(current, targets)]
    return weights, grads


def _lr(step):
    return 1.0 if step < 10 else 0.5      # a changing learning rate


def _run_torch_pair(ours, theirs, settings, seed=0, steps=STEPS, lr=_lr, before_step=None):
    """Both optimizers over the same gradients (each side's own weights); the weights of each."""
    weights, grads = _problem(seed)
    sides = []
    for cls in (ours, theirs):
        params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
        sides.append((params, cls(params, lr=lr(0), **settings)))
    for step in range(steps):
        gs = grads([p.detach().numpy() for p in sides[0][0]])
        for params, opt in sides:
            for group in opt.param_groups:
                group["lr"] = lr(step)
            for p, g in zip(params, gs):
                p.grad = torch.from_numpy(g.copy())
            if before_step is not None:
                before_step(params)
            opt.step()
    return sides


PRODIGY = [
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decouple": False},
    {"weight_decay": 0.05, "use_bias_correction": True, "betas": (0.8, 0.99)},
    {"safeguard_warmup": True, "beta3": 0.99, "d_coef": 0.7},
    {"growth_rate": 1.05, "d0": 1e-4},
]


@pytest.mark.parametrize("settings", PRODIGY, ids=[str(s) for s in PRODIGY])
def test_prodigy_matches_prodigyopt(settings):
    (ours, opt), (theirs, peer) = _run_torch_pair(optforge.torch.Prodigy, prodigyopt.Prodigy, settings)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=RTOL, atol=ATOL)
    for name in ("d", "d_max", "d_numerator"):
        assert math.isclose(opt.param_groups[0][name], float(peer.param_groups[0][name]), rel_tol=1e-10), name
    assert opt.param_groups[0]["d"] > 4 * opt.param_groups[0]["d0"]     # d really moved
    for a, b in zip(ours, theirs):
        for name in ("s", "p0", "exp_avg", "exp_avg_sq"):   # (prodigyopt keeps s and p0 flat)
            torch.testing.assert_close(opt.state[a][name], peer.state[b][name].reshape(a.shape), rtol=RTOL, atol=ATOL)


DADAPT = [
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decouple": True, "use_bias_correction": True},
    {"growth_rate": 1.02, "betas": (0.8, 0.99), "eps": 1e-6},
]


@pytest.mark.parametrize("settings", DADAPT, ids=[str(s) for s in DADAPT])
def test_dadaptadam_matches_dadaptation(settings):
    (ours, opt), (theirs, peer) = _run_torch_pair(optforge.torch.DAdaptAdam, dadaptation.DAdaptAdam, settings)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=RTOL, atol=ATOL)
    assert math.isclose(opt.param_groups[0]["d"], float(peer.param_groups[0]["d"]), rel_tol=1e-10)
    assert opt.param_groups[0]["d"] > 1.5 * 1e-6     # d really moved (growth_rate 1.02 holds it back)


def test_dadaptadam_layer_scale_is_a_group_value():
    weights, grads = _problem(3)
    sides = []
    for cls in (optforge.torch.DAdaptAdam, dadaptation.DAdaptAdam):
        params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
        sides.append((params, cls([{"params": params, "layer_scale": 0.5}], lr=1.0)))
    for _ in range(12):
        gs = grads([p.detach().numpy() for p in sides[0][0]])
        for params, opt in sides:
            for p, g in zip(params, gs):
                p.grad = torch.from_numpy(g.copy())
            opt.step()
    for a, b in zip(sides[0][0], sides[1][0]):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_clippedadamw_is_clip_grad_norm_then_adamw(amsgrad):
    """Gradients alternate between norms far above and below max_norm: clipped and not."""
    rng = np.random.default_rng(4)
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    ours = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = optforge.torch.ClippedAdamW(ours, lr=0.01, weight_decay=0.1, max_norm=2.0, amsgrad=amsgrad)
    peer = torch.optim.AdamW(theirs, lr=0.01, weight_decay=0.1, amsgrad=amsgrad)
    for step in range(10):
        scale = 3.0 if step % 2 else 0.05
        for a, b in zip(ours, theirs):
            g = torch.from_numpy((scale * rng.standard_normal(a.shape)).astype(np.float32))
            a.grad, b.grad = g.clone(), g.clone()
        torch.nn.utils.clip_grad_norm_(theirs, 2.0)
        for group in (opt.param_groups[0], peer.param_groups[0]):
            group["lr"] = 0.01 * (1 + step % 3)
        opt.step()
        peer.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


# -- every API family ----------------------------------------------------------------------
def _prodigy_reference(weights, grad_seq, lrs, wd, rescale_grad=1.0, clip=None, first_t=1,
                       beta1=0.9, beta2=0.999, d0=1e-6, bias_correction=True, growth_rate=math.inf):
    """Prodigy (Mishchenko and Defazio, Algorithm 4 with Adam, as prodigyopt 1.1 computes it:
    decoupled weight decay, d from the previous step in the moments and the step size, the
    new d in the denominator), over one group, in float64 NumPy, written from the paper."""
    beta3 = math.sqrt(beta2)
    w = [x.astype(np.float64) for x in weights]
    x0 = [x.copy() for x in w]
    s = [np.zeros_like(x) for x in w]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    d, d_max, numerator = d0, d0, 0.0
    for k, (grads, lr) in enumerate(zip(grad_seq, lrs)):
        t = first_t + k
        g = [np.asarray(x, np.float64) * rescale_grad for x in grads]
        if clip is not None:
            g = [np.clip(x, -clip, clip) for x in g]
        dlr = d * lr * (math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) if bias_correction else 1.0)
        numerator = beta3 * numerator + d / d0 * dlr * sum(float(np.dot(gi.ravel(), (x0i - wi).ravel()))
                                                          for gi, x0i, wi in zip(g, x0, w))
        for i in range(len(w)):
            m[i] = beta1 * m[i] + d * (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + d * d * (1 - beta2) * g[i] ** 2
            s[i] = beta3 * s[i] + d / d0 * dlr * g[i]
        denominator = sum(float(np.abs(si).sum()) for si in s)
        if denominator == 0:
            continue
        d_hat = numerator / denominator
        if d == d0:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * growth_rate)
        for i in range(len(w)):
            w[i] = w[i] - wd * dlr * w[i] - dlr * m[i] / (np.sqrt(v[i]) + d * 1e-8)
    return w, d


def test_prodigy_mxnet_style_matches_the_paper_reference():
    """rescale_grad != 1, clip_gradient (values beyond it), begin_num_update > 0 (bias
    correction reads t), a changing lr, wd > 0, one update call = one group."""
    weights, grads = _problem(7)
    opt = optforge.Prodigy(learning_rate=1.0, wd=0.1, rescale_grad=0.5, clip_gradient=2.0,
                           begin_num_update=4, use_bias_correction=True)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    grad_seq, lrs = [], []
    for step in range(STEPS):
        gs = grads(current)
        grad_seq.append(gs)
        lrs.append(_lr(step))
        opt.lr = _lr(step)
        opt.update(list(range(len(current))), current, gs, states)
    expected, d = _prodigy_reference(weights, grad_seq, lrs, 0.1, rescale_grad=0.5, clip=2.0, first_t=5)
    assert any(np.abs(g * 0.5).max() > 2.0 for gs in grad_seq for g in gs)     # the clip bound is reached
    for a, b in zip(current, expected):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    assert math.isclose(opt.group_states["d"], d, rel_tol=1e-10)


def test_prodigy_params_style_matches_prodigyopt():
    weights, grads = _problem(8)
    ours = [w.copy() for w in weights]
    opt = optforge.optim.Prodigy(ours, lr=1.0, weight_decay=0.1)
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    peer = prodigyopt.Prodigy(theirs, lr=1.0, weight_decay=0.1)
    for step in range(STEPS):
        gs = grads(ours)
        for group in (opt.param_groups[0], peer.param_groups[0]):
            group["lr"] = _lr(step)
        opt.step(gs)
        for p, g in zip(theirs, gs):
            p.grad = torch.from_numpy(g.copy())
        peer.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert math.isclose(opt.param_groups[0]["d"], peer.param_groups[0]["d"], rel_tol=1e-10)


@pytest.mark.parametrize("name", ["prodigy", "dadaptadam", "clippedadamw"])
def test_native_kernels_compute_what_step_computes(name, monkeypatch):
    """float32 weights through the native kernels (OPTFORGE_CPU_BACKEND=native: no fallback),
    the partials stage's included, against the generated NumPy code (`step`). The update is
    the same arithmetic on the same group values; the partials are sums added in double in
    another order, rounded to float32, so a group value may differ in its last float32 bit:
    rtol 1e-6 over 8 steps (a wrong term is off by far more)."""
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "native")
    runs = []
    for fused in (True, False):
        weights, grads = _problem(9, np.float32)     # the same gradients for each run
        opt = optforge.create(name, learning_rate=0.5, wd=0.05, use_fused_step=fused)
        current = [w.copy() for w in weights]
        states = [opt.create_state(i, w) for i, w in enumerate(current)]
        for _ in range(8):
            opt.update(list(range(len(current))), current, grads(current), states)
        runs.append((current, states, dict(opt.group_states)))
    (a, sa, ga), (b, sb, gb) = runs
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    for name in ga:
        assert math.isclose(ga[name], gb[name], rel_tol=1e-6, abs_tol=1e-12), name


# -- group semantics -----------------------------------------------------------------------
def test_each_param_group_keeps_its_own_d():
    weights, grads = _problem(10)
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = optforge.torch.Prodigy([{"params": params[:1]}, {"params": params[1:]}], lr=1.0)
    alone = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    first = optforge.torch.Prodigy(alone[:1], lr=1.0)
    rest = optforge.torch.Prodigy(alone[1:], lr=1.0)
    for _ in range(15):
        gs = grads([p.detach().numpy() for p in params])
        for p, q, g in zip(params, alone, gs):
            p.grad, q.grad = torch.from_numpy(g.copy()), torch.from_numpy(g.copy())
        opt.step()
        first.step()
        rest.step()
    assert opt.param_groups[0]["d"] == first.param_groups[0]["d"]
    assert opt.param_groups[1]["d"] == rest.param_groups[0]["d"]
    assert opt.param_groups[0]["d"] != opt.param_groups[1]["d"]
    for p, q in zip(params, alone):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=0)


def test_a_group_split_by_dtype_still_sums_over_every_parameter():
    """A float32 and a float64 parameter in one group step in two batches (one per dtype);
    d is still estimated from both, as prodigyopt does."""
    weights, grads = _problem(11)
    dtypes = (torch.float32, torch.float64, torch.float64)
    ours = [torch.nn.Parameter(torch.from_numpy(w.copy()).to(dt)) for w, dt in zip(weights, dtypes)]
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy()).to(dt)) for w, dt in zip(weights, dtypes)]
    opt = optforge.torch.Prodigy(ours, lr=1.0)
    peer = prodigyopt.Prodigy(theirs, lr=1.0)
    for _ in range(15):
        gs = grads([p.detach().double().numpy() for p in ours])
        for a, b, g, dt in zip(ours, theirs, gs, dtypes):
            a.grad, b.grad = torch.from_numpy(g.copy()).to(dt), torch.from_numpy(g.copy()).to(dt)
        opt.step()
        peer.step()
    assert math.isclose(opt.param_groups[0]["d"], peer.param_groups[0]["d"], rel_tol=1e-5)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


def test_torch_state_dict_resumes_with_the_group_states():
    weights, grads = _problem(12)
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = optforge.torch.Prodigy(params, lr=1.0, weight_decay=0.1)
    gs_seq = []
    for step in range(16):
        gs = grads([p.detach().numpy() for p in params])
        gs_seq.append(gs)
        if step == 8:
            saved = copy.deepcopy(opt.state_dict())
            resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
        for p, g in zip(params, gs):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    assert isinstance(saved["param_groups"][0]["d"], float)
    resumed = optforge.torch.Prodigy(resumed_params, lr=1.0, weight_decay=0.1)
    resumed.load_state_dict(saved)
    for gs in gs_seq[8:]:
        for p, g in zip(resumed_params, gs):
            p.grad = torch.from_numpy(g.copy())
        resumed.step()
    for a, b in zip(params, resumed_params):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
    assert resumed.param_groups[0]["d"] == opt.param_groups[0]["d"]


def test_mxnet_config_keeps_the_group_states():
    weights, grads = _problem(13)
    opt = optforge.Prodigy(learning_rate=1.0)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    for _ in range(10):
        opt.update([0, 1, 2], current, grads(current), states)
    config = opt.config()
    assert config["counters"]["group_states"] == opt.group_states
    restored = optforge.Prodigy.from_config(config)
    assert restored.group_states == opt.group_states and restored.group_states["d"] > 1e-6
    broken = copy.deepcopy(config)
    broken["counters"]["group_states"]["d"] = "large"
    with pytest.raises(ValueError, match="group state 'd' must be a number"):
        optforge.Prodigy.from_config(broken)


def test_parameters_of_one_group_with_different_learning_rates_are_refused_before_anything_changes():
    """A group state is one value per group: MXNet-style lr_mult giving the parameters of one
    update call different rates would give it several new values."""
    weights, grads = _problem(14)
    opt = optforge.Prodigy(learning_rate=1.0)
    opt.set_lr_mult({1: 0.5})
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    with pytest.raises(ValueError, match="group states' new values differ between parameters"):
        for _ in range(20):
            snapshot = [w.copy() for w in current], copy.deepcopy(states), dict(opt.group_states), \
                dict(opt._index_update_count)
            opt.update([0, 1, 2], current, grads(current), states)
    for w, kept in zip(current, snapshot[0]):
        np.testing.assert_array_equal(w, kept)
    for state, kept in zip(states, snapshot[1]):
        for part, kept_part in zip(state, kept):
            np.testing.assert_array_equal(part, kept_part)
    assert opt.group_states == snapshot[2] and dict(opt._index_update_count) == snapshot[3]


def test_differentiable_is_refused_with_the_reason():
    param = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="reduces over the whole param group"):
        optforge.torch.Prodigy([param], differentiable=True)


# -- the language --------------------------------------------------------------------------
BASE = """name = "G"
update = \"\"\"
{update}
\"\"\"
[hyperparameters]
learning_rate = 0.1
flag = {{ default = false }}
[states]
m = "zeros"
d = {{ init = 1.0, shape = "group" }}
"""


def _load(tmp_path, update):
    path = tmp_path / "g.toml"
    path.write_text(BASE.format(update=update))
    cls = optforge.load_spec(path)
    return cls


@pytest.mark.parametrize("update, message, line", [
    ("m = grad\nif flag:\n    d = group_sum(sum(grad))\nweight = weight - lr * d * m",
     "write them outside 'if' and 'for'", 5),
    ("m = grad\nd = group_sum(grad)\nweight = weight - lr * d * m",
     "its argument is a tensor value: reduce it over the tensor first", 4),
    ("m = grad\nd = norm(grad)\nweight = weight - lr * d * m",
     "group state 'd' is one value per param group", 4),
    ("m = grad\nd = group_sum(sum(grad))\nb = group_sum(sum(grad * d))\nweight = weight - lr * b * m",
     "reads 'd', which is computed from a group reduction of the same step", 5),
    ("m = grad\nd = group_sum(lr)\nweight = weight - lr * d * m",
     "does not depend on a parameter", 4),
    # these three raised NotImplementedError or a printer's error instead
    ("m = grad\nd = group_norm(group_norm(grad) * grad)\nweight = weight - lr * d * m",
     "reads a group reduction of the same step in its argument", 4),
    ("m = grad\nd = group_sum(sum(grad * group_sum(sum(grad))))\nweight = weight - lr * d * m",
     "reads a group reduction of the same step in its argument", 4),
    ("m = grad\nd = 2 * d\nif group_max(max(grad)) > 0:\n    m = 2 * m\nweight = weight - lr * d * m",
     "assign one to a name before the 'if'", 5),
    # a group state given a tensor: named as one (it was called a scalar state)
    ("d = grad\nm = grad\nweight = weight - lr * d * m", "group state 'd' is one value per param group", 3),
])
def test_mistakes_are_positioned(tmp_path, update, message, line):
    with pytest.raises(SpecError, match=message) as caught:
        _load(tmp_path, update)
    assert caught.value.line == line


def test_a_group_state_cannot_depend_on_the_parameters_shape(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(BASE.format(update="m = grad\nweight = weight - lr * m").replace(
        'd = { init = 1.0, shape = "group" }', 'd = { init = 1.0, shape = "group", when = "flag" }'))
    with pytest.raises(SpecError, match="a group state always exists"):
        optforge.load_spec(path)


def test_a_spec_loaded_at_run_time_runs_its_partials_stage_natively(tmp_path, monkeypatch):
    """optforge.load_spec: the partials stage is generated into the cache entry beside the
    rule's module and launched with the native kernels (OPTFORGE_CPU_BACKEND=native: no
    fallback), for SGD with global-norm clipping checked against NumPy written here."""
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "native")
    path = tmp_path / "clipsgd.toml"
    path.write_text('name = "ClipSGD"\nupdate = """\n'
                    'grad = grad * rescale_grad\n'
                    'grad = grad * minimum(1, max_norm / (group_norm(grad) + 1e-6))\n'
                    'weight = weight - lr * (grad + wd * weight)\n"""\n'
                    '[hyperparameters]\nlearning_rate = 0.1\nmax_norm = { default = 1.0, range = "(0, inf]" }\n')
    cls = optforge.load_spec(path)
    rng = np.random.default_rng(15)
    weights = [rng.standard_normal(shape) for shape in [(300, 70), (7,), (2, 3, 5)]]
    expected = [w.copy() for w in weights]
    opt = cls(learning_rate=0.1, wd=0.01, rescale_grad=0.5, max_norm=2.0)
    for step in range(5):
        grads = [rng.standard_normal(w.shape) * (4 if step % 2 else 0.01) for w in weights]
        opt.update([0, 1, 2], weights, grads, [None] * 3)
        scaled = [g * 0.5 for g in grads]
        total = math.sqrt(sum(float((g * g).sum()) for g in scaled))
        factor = min(1.0, 2.0 / (total + 1e-6))
        expected = [w - 0.1 * (g * factor + 0.01 * w) for w, g in zip(expected, scaled)]
    for a, b in zip(weights, expected):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_a_group_reduction_in_skip_if_or_requires_is_positioned(tmp_path):
    """They raised a printer's error (GroupSum is no host function) instead."""
    for key, column in (("skip_if", 12), ("requires", 13)):
        path = tmp_path / "g.toml"
        path.write_text(BASE.format(update="m = grad\nd = group_sum(sum(grad))\nweight = weight - lr * d * m")
                        .replace('update = """', f'{key} = "group_sum(sum(grad)) > 0"\nupdate = """'))
        with pytest.raises(SpecError, match=r"group_sum\(\) is computed by the update") as caught:
            optforge.load_spec(path)
        assert (caught.value.line, caught.value.col) == (2, column)


def test_a_matrix_product_in_a_group_partial_loads(tmp_path):
    """sympy's printer took the language's MatMul for its own (AttributeError) when the
    partials stage named the reduction."""
    path = tmp_path / "g.toml"
    path.write_text(BASE.format(update="m = grad\nd = group_sum(sum(matmul(grad, transpose(grad))))\n"
                                       "weight = weight - lr * d * m").replace('update = """', 'matrix = "first_rest"\nupdate = """'))
    cls = optforge.load_spec(path, register=False)
    opt = cls(learning_rate=0.1)
    weights = [np.ones((2, 3)), np.ones((3, 2))]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    opt.update([0, 1], weights, [np.ones((2, 3)), np.ones((3, 2))], states)
    assert opt.group_states["d"] == 12 + 18     # sum(g g^T): 4 entries of 3, then 9 of 2


@pytest.mark.parametrize("init", ["1.0", '"d0"'])
def test_a_group_state_has_no_dtype(tmp_path, init):
    """A group state is always float64: a dtype would say otherwise."""
    path = tmp_path / "g.toml"
    path.write_text(BASE.format(update="m = grad\nd = group_sum(sum(grad))\nweight = weight - lr * d * m").replace(
        'd = { init = 1.0, shape = "group" }', f'd = {{ init = {init}, shape = "group", dtype = "float32" }}')
        .replace("[states]", "d0 = { default = 1.0 }\n[states]"))
    with pytest.raises(SpecError, match="a group state is one float64 per param group: remove 'dtype'"):
        optforge.load_spec(path)

