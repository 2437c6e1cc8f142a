"""optforge.torch: every spec as a torch.optim.Optimizer, checked against torch.optim itself.

- torch's own configuration grids (`optim_db` of torch/testing/_internal/common_optimizers.py
  in the installed wheel) for every optimizer both have, float64, 6 steps, 3 parameters:
  rtol 1e-6 (the issue's bound). The formulas are the same, in another operation order, so
  float64 agrees to ~1e-13 except NAdam, whose mu_product torch keeps in float32 (its
  rounding, ~6e-8 relative, reaches the weights through the schedule terms). atol 1e-10
  only covers weights that cancel to near zero.
- state_dict() loads into torch.optim and torch.optim's into optforge.torch, through
  torch.save / torch.load(weights_only=True), and both continue identically (same tolerance).
- the Optimizer protocol: named_parameters, groups, add_param_group, duplicates, hooks,
  zero_grad, closure, the version counter, and errors that change nothing.
- every registered spec: a torch optimizer whose checkpoint resumes bit for bit.
"""
import copy
import inspect
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optforge.torch as ot  # noqa: E402
from support import shapes_for  # noqa: E402

TORCH_NAMED = ["Adam", "AdamW", "Adamax", "SGD", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "Rprop"]
SHAPES = [(4, 3), (5,), (2, 2, 2)]

# grid keywords optforge's spec lacks, with the reason; any other unknown keyword fails
UNSUPPORTED = {}   # none since Adagrad's sum starts at initial_accumulator_value


def _grid():
    pytest.importorskip("expecttest")   # torch's testing internals import it
    from torch.testing._internal.common_optimizers import optim_db
    cases = []
    for info in optim_db:
        name = info.optim_cls.__name__
        if name not in TORCH_NAMED:
            continue
        for k, inp in enumerate(info.optim_inputs_func(device="cpu", dtype=torch.float64)):
            cases.append(pytest.param(name, inp.kwargs, id=f"{name}-{k}-{inp.desc}"))
    return cases


def _grid_or_empty():
    try:
        return _grid()
    except BaseException:   # no torch testing internals: the test below reports the skip
        return [pytest.param(None, None, id="no-optim_db")]


def _params(seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in SHAPES]


def _grads(gen, params):
    # signed, some large: beyond any clip bound
    return [2 * torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def _set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = g.clone()


def _assert_params_close(ours, theirs, rtol=1e-6, atol=1e-10):
    for k, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"parameter {k}")


@pytest.mark.parametrize("name,kwargs", _grid_or_empty())
def test_torch_configuration_grid(name, kwargs):
    if name is None:
        _grid()   # raises the skip (or the error) that made the grid empty
    kwargs = {k: v for k, v in kwargs.items()}
    for key in list(kwargs):
        if (name, key) in UNSUPPORTED:
            pytest.skip(f"{name}({key}=...): {UNSUPPORTED[(name, key)]}")
        assert key in inspect.signature(getattr(ot, name)).parameters, f"{name} lacks {key}"
    ours, theirs = _params(1), _params(1)
    opt = getattr(ot, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kwargs)
    assert isinstance(opt, torch.optim.Optimizer)
    gen = torch.Generator().manual_seed(2)
    for _ in range(6):
        grads = _grads(gen, ours)
        _set_grads(ours, grads)
        _set_grads(theirs, grads)
        opt.step()
        ref.step()
        _assert_params_close(ours, theirs)
    moved = [not torch.equal(a, b) for a, b in zip(ours, _params(1))]
    assert any(moved)


INTERCHANGE = [
    ("Adam", {"betas": (0.8, 0.99), "weight_decay": 0.02, "amsgrad": True}),
    ("AdamW", {"weight_decay": 0.05, "maximize": True}),
    ("Adamax", {"weight_decay": 0.01}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("RMSprop", {"centered": True, "momentum": 0.3, "weight_decay": 0.01}),
    ("Adagrad", {"lr_decay": 0.05, "weight_decay": 0.01}),
    ("Adadelta", {"rho": 0.8, "weight_decay": 0.01}),
    ("NAdam", {"weight_decay": 0.01, "decoupled_weight_decay": True}),
    ("RAdam", {"weight_decay": 0.02}),
    ("Rprop", {"etas": (0.4, 1.3)}),
]


def _through_disk(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name,kwargs", INTERCHANGE, ids=[n for n, _ in INTERCHANGE])
@pytest.mark.parametrize("direction", ["ours_to_torch", "torch_to_ours"])
def test_state_dict_interchange_with_torch_optim(name, kwargs, direction):
    gen = torch.Generator().manual_seed(5)
    first, first_cls = (ot, torch.optim) if direction == "ours_to_torch" else (torch.optim, ot)
    params = _params(3)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.02}]
    opt = getattr(first, name)(groups, lr=0.01, **kwargs)
    for _ in range(4):
        _set_grads(params, _grads(gen, params))
        opt.step()
    saved = _through_disk(opt.state_dict())
    a = [p.detach().clone().requires_grad_() for p in params]
    b = [p.detach().clone().requires_grad_() for p in params]
    cont = getattr(first, name)([{"params": a[:2]}, {"params": a[2:]}], lr=0.01, **kwargs)
    other = getattr(first_cls, name)([{"params": b[:2]}, {"params": b[2:]}], lr=0.01, **kwargs)
    cont.load_state_dict(copy.deepcopy(saved))
    other.load_state_dict(copy.deepcopy(saved))
    assert other.param_groups[1]["lr"] == 0.02
    for _ in range(4):
        grads = _grads(gen, a)
        _set_grads(a, grads)
        _set_grads(b, grads)
        cont.step()
        other.step()
        _assert_params_close(b, a)
    counted = ("step",) if name != "SGD" else ()    # torch.optim.SGD keeps no step
    for key in counted + ("exp_avg", "momentum_buffer", "sum", "square_avg", "prev", "step_size"):
        if key in cont.state[a[0]]:
            np.testing.assert_allclose(other.state[b[0]][key].double().numpy(),
                                       cont.state[a[0]][key].double().numpy(), rtol=1e-6, atol=1e-10)


def test_named_parameters_groups_and_names_in_the_state_dict():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = ot.AdamW(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    assert saved["param_groups"][0]["param_names"][0] == "0.weight"
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert saved["state"][0]["step"].dtype == torch.float32 and float(saved["state"][0]["step"]) == 1.0


def test_groups_add_param_group_and_defaults():
    a, b, c = (torch.randn(3, requires_grad=True) for _ in range(3))
    opt = ot.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.defaults["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.9
    opt.add_param_group({"params": [c], "nesterov": True, "momentum": 0.5})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["nesterov"] is True
    c0 = c.detach().clone()
    for p in (a, b, c):
        p.grad = torch.ones(3)
    opt.step()
    # first Nesterov step: buffer = g, step along g + momentum * g
    assert torch.allclose(c.detach(), c0 - 0.1 * 1.5 * torch.ones(3))
    # torch.optim.SGD's layout: no step count; no state at all without momentum
    assert set(opt.state[b]) == {"momentum_buffer"} and a not in opt.state


def test_invalid_values_and_duplicates_are_refused_and_change_nothing():
    a, b = torch.randn(3, requires_grad=True), torch.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        ot.Adam([a], lr=-1.0)
    with pytest.raises(ValueError, match=r"Invalid beta parameter at index 1: 1.5"):   # torch's wording
        ot.Adam([a], betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        ot.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="master_weights"):
        ot.SGD([a], lr=0.1, master_weights="yes")
    opt = ot.Adam([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="Invalid weight_decay"):
        opt.add_param_group({"params": [b], "weight_decay": -1.0})
    assert len(opt.param_groups) == 1
    with pytest.raises(TypeError):
        ot.Adam(a)                      # a bare tensor, as torch refuses it
    # a gradient the engine cannot take raises before any parameter, state or count changes
    # (SparseAdam takes an element-sparse gradient through a flat view of its parameter: a
    # transposed one has none)
    b = torch.randn(3, 2).t().requires_grad_()
    sparse = ot.SparseAdam([a, b], lr=0.1)
    a0, b0 = a.detach().clone(), b.detach().clone()
    a.grad, b.grad = torch.ones(3).to_sparse(), torch.ones(2, 3).to_sparse(2)
    with pytest.raises(TypeError, match="parameter 1: a gradient sparse in several dimensions needs a parameter"):
        sparse.step()
    assert torch.equal(a, a0) and torch.equal(b, b0) and len(sparse.state) == 0
    b = torch.randn(2, 2, requires_grad=True)
    opt = ot.Adam([a, b], lr=0.1)
    # so does a state that does not fit its parameter
    b.grad = torch.ones(2, 2)
    opt.step()
    a1, b1, steps = a.detach().clone(), b.detach().clone(), float(opt.state[a]["step"])
    opt.state[b]["exp_avg"] = torch.zeros(5)
    with pytest.raises(ValueError, match="state 'exp_avg' of parameter 1 has shape"):
        opt.step()
    assert torch.equal(a, a1) and torch.equal(b, b1) and float(opt.state[a]["step"]) == steps


def test_step_and_state_dict_hooks_are_torchs():
    w = torch.randn(3, requires_grad=True)
    opt = ot.Lion([w], lr=0.01)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("state_dict") or sd)
    opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load") or sd)
    w.grad = torch.ones(3)
    opt.step()
    opt.load_state_dict(opt.state_dict())
    assert calls == ["pre", "post", "state_dict", "load"]


def test_zero_grad_and_closure():
    model = torch.nn.Linear(3, 1, dtype=torch.float64)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    twin = copy.deepcopy(model)
    opt, ref = ot.SGD(model.parameters(), lr=0.1, momentum=0.5), torch.optim.SGD(twin.parameters(), lr=0.1,
                                                                                 momentum=0.5)

    def closure_for(m, o):
        def closure():
            o.zero_grad()
            loss = torch.nn.functional.mse_loss(m(x), y)
            loss.backward()
            return loss
        return closure

    with torch.no_grad():    # the closure still gets gradients, as with torch.optim
        for _ in range(3):
            loss = opt.step(closure_for(model, opt))    # positional
            ref_loss = ref.step(closure_for(twin, ref))
            assert torch.allclose(loss, ref_loss, rtol=1e-12)
    _assert_params_close(list(model.parameters()), list(twin.parameters()), rtol=1e-12, atol=0)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("cls", [torch.optim.Adam, ot.Adam], ids=["torch", "optforge"])
def test_a_step_between_forward_and_backward_raises_as_with_torch(cls):
    w = torch.randn(3, requires_grad=True)
    opt = cls([w], lr=0.1)
    (w ** 2).sum().backward()
    version = w._version
    loss = (w ** 2).sum()           # saves w for backward
    opt.step()
    assert w._version > version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    # the states written through views are counted as written too
    states = {name: value._version for name, value in opt.state[w].items()}
    w.grad = torch.ones(3)
    opt.step()
    assert all(opt.state[w][name]._version > version for name, version in states.items())


def test_deepcopy_and_pickle_keep_working_optimizers():
    import pickle
    w = torch.randn(3, requires_grad=True)
    opt = ot.AdamW([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        p = clone.param_groups[0]["params"][0]
        assert p is not w and torch.equal(p, w)
        p.grad = torch.ones(3)
        clone.step()
        assert float(clone.state[p]["step"]) == 2 and not torch.equal(p, w)


def test_tensors_are_updated_in_place():
    w = torch.randn(1000, requires_grad=True)
    pointer = w.data_ptr()
    opt = ot.Adam([w], lr=0.1)
    w.grad = torch.randn(1000)
    opt.step()
    assert w.data_ptr() == pointer
    assert opt.state[w]["exp_avg"].abs().sum() > 0


@pytest.mark.parametrize("name", sorted(ot.classes()))
def test_every_spec_is_a_torch_optimizer_whose_checkpoint_resumes_exactly(name):
    cls = getattr(ot, name)
    assert issubclass(cls, torch.optim.Optimizer)
    gen = torch.Generator().manual_seed(11)
    shapes = shapes_for(cls.spec_class.SPEC, SHAPES)   # Muon: matrices only
    params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    kwargs = {"lr": 0.01}
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.005}], **kwargs)
    grads = [[0.5 * torch.randn(p.shape, generator=gen) for p in params] for _ in range(6)]
    start = [p.detach().clone() for p in params]
    for step in range(3):
        _set_grads(params, grads[step])
        opt.step()
    assert all(torch.isfinite(p).all() for p in params)
    assert any(not torch.equal(p, s) for p, s in zip(params, start)), "the parameters did not move"
    from optforge.conventions import torch_keywords
    kind = torch_keywords.step_kind(cls.spec_class.SPEC)     # as torch's class of the name keeps it
    for p in params:
        if kind is None:    # torch.optim.SGD and Muon keep no count
            assert "step" not in opt.state.get(p, {})
        else:
            assert type(opt.state[p]["step"]) is (torch.Tensor if kind == "tensor" else int)
            assert float(opt.state[p]["step"]) == 3
        assert all(isinstance(v, torch.Tensor) for k, v in opt.state.get(p, {}).items() if k != "step")
    saved = _through_disk(opt.state_dict())
    resumed_params = [p.detach().clone().requires_grad_() for p in params]
    resumed = cls([{"params": resumed_params[:2]}, {"params": resumed_params[2:]}], **kwargs)
    resumed.load_state_dict(saved)
    for step in range(3, 6):
        _set_grads(params, grads[step])
        _set_grads(resumed_params, grads[step])
        opt.step()
        resumed.step()
    for a, b in zip(params, resumed_params):
        assert torch.equal(a, b)


def test_create_reaches_every_flavor():
    w = torch.randn(3, requires_grad=True)
    mxnet = ot.create("adam", [w], flavor="mxnet2", lr=0.1)
    torch_flavor = ot.create("adam", [w], lr=0.1)
    assert mxnet.spec_class.SPEC["flavor"] == "mxnet2"
    assert torch_flavor.spec_class.SPEC["flavor"] == "torch"
    assert set(mxnet.defaults) >= {"lr", "betas", "eps", "weight_decay"}


def test_only_optforge_torch_imports_torch():
    import subprocess
    import sys
    code = ("import sys, numpy as np, optforge; from optforge import optim; "
            "optim.Adam([np.ones(2)], lr=0.1).step([np.ones(2)]); optforge.create('lamb'); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "import optforge.torch; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_step_over_several_batches_is_all_or_nothing():
    """Two (device, dtype) batches in two groups; the second cannot step (FTML divides by
    lr = 0 when it computes the step's scalars). Before, the first batch was already
    applied; now every batch is prepared before any kernel runs, so nothing changes:
    weights, states (none created on the first step, none advanced later) and step counts."""
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(4, 3, generator=gen).requires_grad_()
    b = torch.randn(5, generator=gen, dtype=torch.float64).requires_grad_()
    opt = ot.FTML([{"params": [a]}, {"params": [b], "lr": 0.0}], lr=0.1)
    a.grad, b.grad = torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen, dtype=torch.float64)
    start = [a.detach().clone(), b.detach().clone()]
    with pytest.raises(ValueError, match="cannot compute this step's scalars"):
        opt.step()
    assert torch.equal(a, start[0]) and torch.equal(b, start[1]) and len(opt.state) == 0
    opt.param_groups[1]["lr"] = 0.05
    opt.step()                                   # both step once
    saved = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in (a, b)}
    moved = [a.detach().clone(), b.detach().clone()]
    assert not torch.equal(moved[0], start[0]) and not torch.equal(moved[1], start[1])
    opt.param_groups[1]["lr"] = 0.0
    with pytest.raises(ValueError, match="cannot compute this step's scalars"):
        opt.step()
    assert torch.equal(a, moved[0]) and torch.equal(b, moved[1])
    for p in (a, b):
        assert set(opt.state[p]) == set(saved[p])
        assert all(torch.equal(opt.state[p][k], v) for k, v in saved[p].items())
        assert float(opt.state[p]["step"]) == 1
    opt.param_groups[1]["lr"] = 0.05
    opt.step()
    assert float(opt.state[a]["step"]) == float(opt.state[b]["step"]) == 2


def test_the_source_folder_is_not_a_second_package():
    # an editable install reaches torch_frontend/ as optforge.torch_frontend too: importing it
    # there would make a second copy of every class, so it refuses and names the package
    import importlib
    with pytest.raises(ImportError, match=r"optforge\.torch"):
        importlib.import_module("optforge.torch_frontend")
    assert importlib.import_module("optforge.torch").Adam is ot.Adam


def _twins():
    """(name, optforge class, torch class) for every class torch.optim also has."""
    return [(name, cls, getattr(torch.optim, name)) for name, cls in sorted(ot.classes().items())
            if cls.torch_name is not None]


def _grad_for(cls, p, gen):
    grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    return grad.to_sparse() if cls.__name__ == "SparseAdam" else grad


@pytest.mark.parametrize("name", [name for name, _, _ in _twins()])
def test_a_checkpoint_with_numeric_steps_loads_and_continues(name):
    """torch before 1.12 saved `step` as a plain number. torch.optim's state dict with its
    steps made numbers loads into optforge.torch and into torch.optim, and both continue
    alike (float64, the grid's tolerance; Muon: its stated bfloat16 deviation); an optforge
    optimizer that loads it continues bit for bit as one that kept its own state, with the
    count kept as torch's class keeps it."""
    ours_cls, theirs_cls = getattr(ot, name), getattr(torch.optim, name)
    gen = torch.Generator().manual_seed(7)
    start = [torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(2)]
    ours, theirs, kept, plain = ([p.clone().requires_grad_() for p in start] for _ in range(4))
    opt, ref, same = ours_cls(ours), theirs_cls(theirs), ours_cls(kept)
    sides = ((ours, opt), (theirs, ref), (kept, same), (plain, ours_cls(plain)))   # plain never reloads
    for _ in range(2):
        grads = [_grad_for(ours_cls, p, gen) for p in ours]
        for params, o in sides:
            _set_grads(params, grads)
            o.step()
    saved = copy.deepcopy(ref.state_dict())
    for entry in saved["state"].values():
        if "step" in entry:
            entry["step"] = float(entry["step"])
    opt.load_state_dict(copy.deepcopy(saved))
    ref.load_state_dict(copy.deepcopy(saved))
    mine = copy.deepcopy(same.state_dict())
    for entry in mine["state"].values():
        if "step" in entry:
            entry["step"] = float(entry["step"])
    same.load_state_dict(mine)
    for _ in range(2):
        grads = [_grad_for(ours_cls, p, gen) for p in ours]
        for params, o in sides:
            _set_grads(params, grads)
            o.step()
        _assert_params_close(ours, theirs, rtol=2e-2 if name == "Muon" else 1e-6)
    for p, q in zip(kept, plain):
        assert torch.equal(p, q)
    kind = opt._step_kind
    for p in ours:
        if kind is not None:
            assert type(opt.state[p]["step"]) is (torch.Tensor if kind == "tensor" else int)
            assert float(opt.state[p]["step"]) == 4


@pytest.mark.parametrize("bad", [-1.0, 2.5, float("nan"), "3", torch.tensor([1.0, 2.0])])
def test_a_checkpoint_with_a_bad_step_is_refused_whole(bad):
    w = torch.randn(3, requires_grad=True)
    opt = ot.Adam([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    saved["state"][0]["step"] = bad
    saved["param_groups"][0]["lr"] = 0.5
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match="state 'step' of parameter 0 in the loaded state dict"):
        opt.load_state_dict(saved)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"] and torch.equal(after["state"][0]["step"],
                                                                          before["state"][0]["step"])


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)], ids=["0-d", "(1,)", "(1, 1)"])
@pytest.mark.parametrize("name", ["Adam", "SGD", "Adagrad", "RMSprop"])
def test_a_one_element_lr_tensor_of_any_shape_is_taken_as_torch_takes_it(name, shape):
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(5, generator=gen, dtype=torch.float64)
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    opt = getattr(ot, name)([a], lr=torch.full(shape, 0.05, dtype=torch.float64))
    ref = getattr(torch.optim, name)([b], lr=torch.full(shape, 0.05, dtype=torch.float64))
    assert tuple(opt.param_groups[0]["lr"].shape) == tuple(ref.param_groups[0]["lr"].shape) == shape
    for _ in range(3):
        g = torch.randn(5, generator=gen, dtype=torch.float64)
        a.grad, b.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    _assert_params_close([a], [b])
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        getattr(ot, name)([a], lr=torch.tensor([0.1, 0.2]))


@pytest.mark.parametrize("name", ["Adam", "SGD", "Lion"])
def test_params_none_raises_torchs_error(name):
    with pytest.raises(TypeError, match="'NoneType' object is not iterable"):
        torch.optim.Adam(None)
    with pytest.raises(TypeError, match="'NoneType' object is not iterable"):
        getattr(ot, name)(None)
    with pytest.raises(ValueError, match="Invalid learning rate"):   # the arguments are checked first
        getattr(ot, name)(None, lr=-1.0)


@pytest.mark.parametrize("shape,sparse_dim", [((5, 4), 2), ((3, 4, 2), 3), ((3, 4, 2), 2), ((6, 2), 1)])
@pytest.mark.parametrize("name,kwargs", [("SparseAdam", {"lr": 0.05}), ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
                                         ("SGD", {"lr": 0.1, "momentum": 0.9})])
def test_gradients_sparse_in_any_dimensions_step_as_torchs(name, kwargs, shape, sparse_dim):
    """A COO gradient sparse in several dimensions (`to_sparse()`) changes, in the lazy
    rules (SparseAdam, Adagrad), exactly its elements as torch's do, and SGD's dense
    update equals torch's. Half the elements are left out of each gradient. float64: the
    same formulas, rounding only (1e-12)."""
    gen = torch.Generator().manual_seed(6)
    start = torch.randn(shape, generator=gen, dtype=torch.float64)
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    opt, ref = getattr(ot, name)([a], **kwargs), getattr(torch.optim, name)([b], **kwargs)
    for _ in range(4):
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        g[torch.rand(shape, generator=gen) < 0.5] = 0
        a.grad, b.grad = g.to_sparse(sparse_dim), g.to_sparse(sparse_dim)
        opt.step()
        ref.step()
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        for key, value in ref.state[b].items():
            assert type(opt.state[a][key]) is type(value)
            if torch.is_tensor(value):     # (torch's SGD makes its momentum buffer sparse: ours is dense)
                assert opt.state[a][key].shape == value.shape
                torch.testing.assert_close(opt.state[a][key], value.to_dense(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", [name for name, cls, _ in _twins() if name not in ("Muon", "Adafactor", "SparseAdam")])
def test_complex_parameters_step_as_torchs(name):
    """A complex parameter steps as torch.optim's class steps it (both treat it as its
    view_as_real), with states of the parameter's complex dtype and shape. float64:
    the same formulas, rounding only (1e-12); ASGD and NAdam 1e-7: their scalar states
    (eta and mu, mu_product) are float32 (torch's scalar dtype) in both, combined with
    float64 values in another order."""
    gen = torch.Generator().manual_seed(8)
    start = torch.randn(4, 3, dtype=torch.complex128, generator=gen)
    ours, theirs = start.clone().requires_grad_(), start.clone().requires_grad_()
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    opt, ref = getattr(ot, name)([ours], **kwargs), getattr(torch.optim, name)([theirs], **kwargs)
    for _ in range(3):
        grad = torch.randn(4, 3, dtype=torch.complex128, generator=gen)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        opt.step()
        ref.step()
    rtol, atol = (1e-7, 1e-9) if name in ("ASGD", "NAdam") else (1e-12, 1e-14)
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)
    for key, value in ref.state[theirs].items():
        mine = opt.state[ours][key]
        assert type(mine) is type(value)
        if torch.is_tensor(value):
            assert (mine.dtype, mine.shape) == (value.dtype, value.shape)
            torch.testing.assert_close(mine, value, rtol=rtol, atol=atol)


def test_complex_parameters_are_refused_by_rules_with_reductions():
    w = torch.randn(3, dtype=torch.complex64, requires_grad=True)
    opt = ot.LAMB([w])
    w.grad = torch.ones_like(w)
    with pytest.raises(TypeError, match="parameter 0: complex parameters step as their view_as_real"):
        opt.step()
    assert len(opt.state) == 0
    with pytest.raises(RuntimeError, match="Muon does not support complex parameters"):
        m = torch.randn(2, 2, dtype=torch.complex64, requires_grad=True)
        opt = ot.Muon([m])
        m.grad = torch.ones_like(m)
        opt.step()
