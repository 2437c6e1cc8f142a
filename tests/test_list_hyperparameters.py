"""List-valued hyperparameters: `betas = [0.0, 0.9, 0.99]`, read as `betas[k]`.

AggMo (Lucas et al., ICLR 2019) is the example: K heavy-ball velocities with their own
damping, the weight moved by their mean. It runs through every API family against a
float64 reference written here from the paper and against torch-optimizer's AggMo.
Data: three parameters, signed gradients beyond the clip bound, wd > 0, rescale_grad != 1,
lr changed between steps, begin_num_update > 0, 5 steps.

Tolerances: float32 against float64 over 5 steps of sums of three velocities: a few
float32 ulps per step (about 1e-7 relative), so rtol 1e-5, atol 1e-6; torch-optimizer
computes in float32 in another order: the same bound. Any wrong element (betas[1] read as
betas[2]) moves the weights by more than 1e-3 in these runs.
"""
import inspect
import json

import numpy as np
import pytest

import optforge
from optforge.codegen.errors import SpecError

from support import html5_error, weights_and_grads

torch = pytest.importorskip("torch")

SHAPES = [(6,), (3, 4), (2, 3, 2)]
STEPS = 5
BEGIN = 3
RESCALE, CLIP, WD = 0.5, 1.0, 0.01
LRS = [0.05, 0.05, 0.02, 0.03, 0.01]
BETAS = (0.0, 0.5, 0.9)
RTOL, ATOL = 1e-5, 1e-6

AGGMO = '''name = "AggMoList"
summary = "Aggregated momentum: the mean of several heavy-ball velocities with their own damping"
references = ["Lucas, Sun, Zemel and Grosse, Aggregated Momentum: Stability Through Passive Damping, ICLR 2019"]
update = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
v0 = betas[0] * v0 - grad
v1 = betas[1] * v1 - grad
v2 = betas[2] * v2 - grad
weight = weight + lr / 3 * (v0 + v1 + v2)
"""
[hyperparameters]
learning_rate = 0.1
betas = { default = [0.0, 0.9, 0.99], range = "[0, 1)", doc = "the damping of each velocity" }
[states]
v0 = "zeros"
v1 = "zeros"
v2 = "zeros"
'''


@pytest.fixture
def aggmo(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "aggmo.toml"
    path.write_text(AGGMO)
    return optforge.load_spec(path)


def _data(seed):
    return weights_and_grads(seed, SHAPES, STEPS)


def _reference(weights, grads, betas, rescale, clip):
    """AggMo (Algorithm 1 of the paper), float64: v_i = beta_i v_i - g, w += lr/K sum v_i."""
    ws = [w.astype(np.float64) for w in weights]
    vs = [[np.zeros_like(w) for _ in betas] for w in ws]
    for step, gs in enumerate(grads):
        for w, v, g in zip(ws, vs, gs):
            g = g.astype(np.float64) * rescale
            if clip is not None:
                g = np.clip(g, -clip, clip)
            g = g + WD * w
            for k, beta in enumerate(betas):
                v[k] = beta * v[k] - g
            w += LRS[step] / len(betas) * sum(v)
    return ws


def test_aggmo_in_every_family(aggmo):
    weights, grads = _data(0)
    opt = aggmo(learning_rate=LRS[0], betas=BETAS, rescale_grad=RESCALE, clip_gradient=CLIP, wd=WD,
                begin_num_update=BEGIN)
    ws = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(ws)]
    for step, gs in enumerate(grads):
        opt.set_learning_rate(LRS[step])
        opt.update(list(range(len(ws))), ws, gs, states)
    expected = _reference(weights, grads, BETAS, RESCALE, CLIP)
    for got, want in zip(ws, expected):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # every element is read: the run with one element read in place of another is far away
    wrong = _reference(weights, grads, (BETAS[0], BETAS[2], BETAS[2]), RESCALE, CLIP)
    assert max(np.abs(a - b).max() for a, b in zip(wrong, expected)) > 1e-3
    expected = _reference(weights, grads, BETAS, 1.0, None)
    for family in (optforge.optim.AggMoList, optforge.torch.AggMoList):
        if family is optforge.torch.AggMoList:
            params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
        else:
            params = [w.copy() for w in weights]
        opt = family(params, lr=LRS[0], betas=BETAS, weight_decay=WD)
        for step, gs in enumerate(grads):
            opt.param_groups[0]["lr"] = LRS[step]
            if family is optforge.torch.AggMoList:
                for p, g in zip(params, gs):
                    p.grad = torch.from_numpy(g.copy())
                opt.step()
            else:
                opt.step([g.copy() for g in gs])
        for p, want in zip(params, expected):
            got = p.detach().numpy() if torch.is_tensor(p) else p
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_aggmo_matches_torch_optimizer(aggmo):
    torch_optimizer = pytest.importorskip("torch_optimizer")
    weights, grads = _data(1)
    ours = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opts = (optforge.torch.AggMoList(ours, lr=LRS[0], betas=BETAS, weight_decay=WD),
            torch_optimizer.AggMo(theirs, lr=LRS[0], betas=BETAS, weight_decay=WD))
    for step, gs in enumerate(grads):
        for params, opt in zip((ours, theirs), opts):
            for p, g in zip(params, gs):
                p.grad = torch.from_numpy(g.copy())
            opt.param_groups[0]["lr"] = LRS[step]
            opt.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=RTOL, atol=ATOL)


def test_one_argument_in_every_family(aggmo):
    default = (0.0, 0.9, 0.99)
    assert inspect.signature(aggmo).parameters["betas"].default == default
    assert "betas_0" not in inspect.signature(aggmo).parameters
    assert inspect.signature(optforge.optim.AggMoList).parameters["betas"].default == default
    assert inspect.signature(optforge.torch.AggMoList).parameters["betas"].default == default
    opt = aggmo(betas=[0.1, 0.2, 0.3])
    assert opt.betas == (0.1, 0.2, 0.3) and opt.hyperparameters == {"betas": (0.1, 0.2, 0.3)}
    # setting checks every element before any changes
    with pytest.raises(ValueError, match=r"betas\[2\] must be in \[0, 1\), got 2.0"):
        opt.betas = (0.5, 0.6, 2.0)
    assert opt.betas == (0.1, 0.2, 0.3)
    with pytest.raises(ValueError, match="betas must be a list or tuple of 3 numbers"):
        opt.betas = (0.5, 0.6)
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0, 1\)"):
        aggmo(betas=(0.5, 1.0, 0.5))
    with pytest.raises(ValueError, match="betas must be a list or tuple of 3 numbers"):
        aggmo(betas=0.5)
    # the saved configuration holds the list and rebuilds it
    again = aggmo.from_config(json.loads(json.dumps(opt.config())))
    assert again.betas == (0.1, 0.2, 0.3)
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match=r"Invalid betas\[1\] value"):
        optforge.torch.AggMoList([p], betas=(0.5, 1.5, 0.5))
    with pytest.raises(ValueError, match="Invalid betas: expected 3 values"):
        optforge.optim.AggMoList([np.zeros(3)], betas=(0.5, 0.5))


def test_docs_and_show_print_one_entry(aggmo, tmp_path, capsys):
    from optforge.cli import main
    from optforge.conventions.api_families import constructors
    lines = [line for family in constructors(aggmo.SPEC, True, builtin=False) for line in family["lines"]]
    assert all("betas=(0.0, 0.9, 0.99)" in line for line in lines)
    main(["show", "aggmolist"])
    out = capsys.readouterr().out
    hyper = out.split("Hyperparameters:")[1].split("States:")[0]
    assert "betas = (0.0, 0.9, 0.99) (3 x float in [0, 1))" in hyper and "betas_0" not in hyper
    # the formula page: elements written beta_k in the formulas, betas[k] in the legend,
    # one row in the hyperparameter table, valid HTML
    main(["docs", str(tmp_path / "aggmo.toml")])
    page = open(capsys.readouterr().out.strip()).read()
    assert "<mi>β</mi><mn>2</mn>" in page and "<code>betas[2]</code>" in page and "betas_" not in page
    assert html5_error(page) is None


@pytest.mark.parametrize("line, entry, position, message", [
    ("v0 = betas * v0 - grad", None, "6:6", "'betas' is a list of 3 numbers: read one element, betas[0] to betas[2]"),
    ("v0 = betas[3] * v0 - grad", None, "6:12", "index 3 is outside 'betas' (elements 0 to 2)"),
    ("v0 = betas[t] * v0 - grad", None, "6:12", "index betas[...] with an integer literal"),
    ("v0 = betas_0 * v0 - grad", None, "6:6", "unknown name 'betas_0'; did you mean 'betas[0]'?"),
    ("v0 = grad[0] * v0 - grad", None, "6:6", "indexing ('a[i]') not allowed in a spec: only a list hyperparameter's elements"),
    (None, "[0.5]", "13:21", "a list hyperparameter has 2 to 16 elements, 'betas' has 1"),
    (None, "[0.0, 0.9, 1.5]", "13:21", "default 1.5 of 'betas[2]' is outside its range [0, 1)"),
    (None, '[0.0, 0.9, "x"]', "13:9", "element 2 of 'betas' is not a number"),
])
def test_positioned_errors(tmp_path, line, entry, position, message):
    text = AGGMO
    if line is not None:
        text = text.replace("v0 = betas[0] * v0 - grad", line)
    if entry is not None:
        text = text.replace("default = [0.0, 0.9, 0.99]", f"default = {entry}")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        optforge.load_spec(path, register=False)
    assert f"bad.toml:{position}: {message}" in str(info.value)


def test_an_element_name_cannot_be_declared_twice(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(AGGMO.replace("[states]", "betas_1 = 0.5\n[states]"))
    with pytest.raises(SpecError, match="'betas_1' has the name of element 1 of the list 'betas'"):
        optforge.load_spec(path, register=False)


def test_element_names_stay_inside(aggmo, tmp_path, capsys):
    """The elements' own names (betas_0, ...) never reach a user: not in errors, docstrings,
    state inits or argument tables; a list's keyword names its params-style argument."""
    with pytest.raises(ValueError, match=r"expected 3 values \(betas\[0\], betas\[1\], betas\[2\]\)"):
        optforge.optim.AggMoList([np.zeros(3)], betas=(0.5,))
    with pytest.raises(ValueError, match="betas must be a list or tuple of 3 numbers"):
        aggmo(betas={0.1, 0.2, 0.3})       # a set has no order
    for doc in (aggmo.__doc__, optforge.optim.AggMoList.__doc__):
        assert "betas_" not in doc
    assert "betas : tuple of 3 float, default (0.0, 0.9, 0.99)" in aggmo.__doc__
    path = tmp_path / "bad.toml"
    path.write_text(AGGMO.replace('v2 = "zeros"', 'v2 = { init = "betas_0" }'))
    with pytest.raises(SpecError, match="state init 'betas_0' is not"):
        optforge.load_spec(path, register=False)
    from optforge.cli import main
    keyworded = tmp_path / "keyworded.toml"
    keyworded.write_text(AGGMO.replace('name = "AggMoList"', 'name = "AggMoKeyword"').replace(
        'doc = "the damping of each velocity" }', 'doc = "the damping of each velocity", keyword = "dampings" }'))
    cls = optforge.load_spec(keyworded)
    assert "dampings" in inspect.signature(optforge.optim.AggMoKeyword).parameters
    assert cls.SPEC["hyperparameters"][0]["keyword"] == "dampings"
    main(["docs", str(keyworded)])
    page = open(capsys.readouterr().out.strip()).read()
    # the hyperparameter table's row: the list, its params-style argument, its defaults
    assert "<tr><td><code>betas</code></td><td><code>dampings</code></td><td><code>(0.0, 0.9, 0.99)</code>" in page
