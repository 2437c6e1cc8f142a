"""optforge.torch through the kinds of checks torch's own `TestOptimRenewed` makes, over the
`optim_db` the installed torch wheel ships (torch/testing/_internal/common_optimizers.py):
its optimizer inputs, with the global flags (foreach, differentiable, fused) as torch's
helper adds them, for every class torch.optim and optforge.torch both have.

The checks are written here (not torch's test code): each runs first with torch.optim's
class, then with optforge's. A variant (check, class, optimizer input) where torch's class
fails is not optforge's to pass and is skipped; where torch's passes, optforge's must pass
too, unless `KNOWN` lists it with the reason (those run as strict xfails: a fix shows).
`summary()` counts the outcomes; docs/torch-compatibility.md records them.

CI runs a selection (the first two optimizer inputs of each class for each check, and
every input of `matches_torch`); `--long` runs every variant.
"""
import copy
import functools
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")    # torch's testing internals import it

import optforge.torch as ot  # noqa: E402
from torch.nn import Parameter  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook  # noqa: E402
from torch.testing._internal.common_optimizers import (  # noqa: E402
    _get_optim_inputs_including_global_cliquey_kwargs as with_global_flags, optim_db)

INFOS = {info.optim_cls.__name__: info for info in optim_db if info.optim_cls.__name__ in ot.classes()}
SPARSE_ONLY = {name for name, info in INFOS.items() if info.only_supports_sparse_grads}


# -- helpers -------------------------------------------------------------------------
def _sparse_if_needed(name, params):
    """SparseAdam takes sparse gradients only: its tests make dense ones sparse, as torch's do."""
    if name in SPARSE_ONLY:
        for p in params:
            if p.grad is not None:
                p.grad = p.grad.to_sparse()


def _loss_moves(cls, name, kwargs, contiguous, steps=20):
    """20 closure steps on (w @ x + b)^2 lower the loss (raise it with maximize)."""
    torch.manual_seed(0)
    if contiguous:
        weight, bias = Parameter(torch.randn(10, 5)), Parameter(torch.randn(10))
    else:
        weight, bias = Parameter(torch.randn(10, 5, 2)[..., 0]), Parameter(torch.randn(10, 2)[..., 0])
    x = torch.randn(5)
    opt = cls([weight, bias], **kwargs)

    def closure():
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        loss.backward()
        _sparse_if_needed(name, (weight, bias))
        return loss

    first = closure().item()
    for _ in range(steps):
        opt.step(closure)
    last = closure().item()
    assert (last > first) if kwargs.get("maximize") else (last < first)


# -- the checks: each (cls, name, kwargs) -> None, raising on failure ------------------
def right_direction(cls, name, kwargs):
    _loss_moves(cls, name, kwargs, contiguous=True)


def right_direction_non_contiguous(cls, name, kwargs):
    _loss_moves(cls, name, kwargs, contiguous=False)


def matches_torch(cls, name, kwargs):
    """The same 5 steps as torch.optim's class on float64 parameters (two groups, one
    parameter without a gradient at step 2). Tolerance: rtol 1e-6, atol 1e-9: the same
    formulas in float64, evaluated in another order (optforge's kernels fold constants
    into host scalars); with differentiable=True 1e-4, atol 1e-7: torch's differentiable
    path computes bias corrections from its float32 step tensor (1 - 0.999 ** 1 in float32
    is 6e-5 away, relatively); Muon 2e-2: torch runs Newton-Schulz in bfloat16, optforge in
    float32. With differentiable=True the parameters are non-leaf tensors, as torch's
    differentiable steps need (they write them in place under autograd)."""
    torch.manual_seed(1)
    start = [torch.randn(4, 3, dtype=torch.float64) for _ in range(3)]
    grads = [[torch.randn(4, 3, dtype=torch.float64) for _ in start] for _ in range(5)]
    results = []
    for klass in (INFOS[name].optim_cls, cls):
        params = [p.clone().requires_grad_() for p in start]
        if kwargs.get("differentiable"):
            params = [p.clone() for p in params]
        opt = klass([{"params": params[:2]}, {"params": params[2:]}], **copy.deepcopy(kwargs))
        for k, step in enumerate(grads):
            for j, (p, g) in enumerate(zip(params, step)):
                p.grad = None if (k == 2 and j == 1) else g.clone()
            _sparse_if_needed(name, params)
            opt.step()
        results.append([p.detach() for p in params])
    rtol, atol = (2e-2, 2e-2) if name == "Muon" else (1e-4, 1e-7) if kwargs.get("differentiable") else (1e-6, 1e-9)
    torch.testing.assert_close(results[1], results[0], rtol=rtol, atol=atol)


def complex_as_real(cls, name, kwargs):
    """Complex parameters step as their view_as_real (the last parameter real), as torch's."""
    torch.manual_seed(2)
    complex_params = [torch.randn(10, 5, dtype=torch.complex64, requires_grad=True),
                      torch.randn(10, dtype=torch.complex64, requires_grad=True),
                      torch.randn(10, 5, dtype=torch.float32, requires_grad=True)]
    real_params = [(torch.view_as_real(p) if p.is_complex() else p).detach().clone().requires_grad_()
                   for p in complex_params]
    complex_opt, real_opt = cls(complex_params, **kwargs), cls(real_params, **copy.deepcopy(kwargs))
    for _ in range(3):
        for c, r in zip(complex_params, real_params):
            r.grad = torch.randn_like(r)
            c.grad = torch.view_as_complex(r.grad.clone()) if c.is_complex() else r.grad.clone()
        _sparse_if_needed(name, complex_params)
        _sparse_if_needed(name, real_params)
        complex_opt.step()
        real_opt.step()
        for c, r in zip(complex_params, real_params):
            torch.testing.assert_close(torch.view_as_real(c) if c.is_complex() else c, r)


def foreach_matches_forloop(cls, name, kwargs):
    """foreach=True and foreach=False give the same parameters and states (float64, a small
    model with a 0-d parameter, no gradients at step 4), within torch's float64 defaults."""
    sides = []
    for flag in (False, True):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1),
                                    torch.nn.Sigmoid()).double()
        empty = torch.randn((), dtype=torch.float64, requires_grad=True)    # (seeded: a 0-d parameter)
        empty.grad = torch.rand_like(empty)
        params = list(model.parameters()) + [empty]
        opt = cls(params, **dict(copy.deepcopy(kwargs), foreach=flag))
        x = torch.arange(1, 7, dtype=torch.float64).reshape(3, 2) / 10
        for i in range(7):
            opt.zero_grad()
            if i != 3:
                model(x).sum().backward()
            _sparse_if_needed(name, params)
            opt.step()
        sides.append((params, opt))
    for p, q in zip(sides[0][0], sides[1][0]):
        torch.testing.assert_close(p, q)
        for key, value in sides[0][1].state[p].items():
            torch.testing.assert_close(value, sides[1][1].state[q][key])


def _two_groups_model():
    torch.manual_seed(3)
    return Parameter(torch.randn(10, 5)), Parameter(torch.randn(10)), torch.randn(5)


def param_groups_weight_decay(cls, name, kwargs):
    """A group with weight decay and one without: the loss moves the right way."""
    weight, bias, x = _two_groups_model()
    bias_kwargs = dict(copy.deepcopy(kwargs), weight_decay=0.0)
    opt = cls([dict(params=[weight], **kwargs), dict(params=[bias], **bias_kwargs)])
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        first = loss.item() if first is None else first
        loss.backward()
        _sparse_if_needed(name, (weight, bias))
        opt.step()
    assert (loss.item() > first) if kwargs.get("maximize") else (loss.item() < first)


def param_groups_lr(cls, name, kwargs):
    """A group's own lr is used; a group under the default lr of 1e-28 does not move."""
    kwargs = copy.deepcopy(kwargs)
    if not kwargs.get("lr"):
        kwargs["lr"] = 1e-3
    outer = {"lr": 1e-28}
    if name == "Rprop":
        outer["step_sizes"] = (0, 50)
    weight, bias, x = _two_groups_model()
    irrelevant = Parameter(torch.randn(2))
    before = irrelevant.detach().clone()
    opt = cls([dict(params=[weight, bias], **kwargs), dict(params=[irrelevant])], **outer)
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        first = loss.item() if first is None else first
        loss.backward()
        irrelevant.grad = torch.rand_like(irrelevant)
        _sparse_if_needed(name, (weight, bias, irrelevant))
        opt.step()
    assert (loss.item() > first) if kwargs.get("maximize") else (loss.item() < first)
    torch.testing.assert_close(irrelevant.detach(), before)


def no_grad_is_a_no_op(cls, name, kwargs):
    params = [torch.randn(2, 3) for _ in range(2)]
    before = [p.clone() for p in params]
    cls(params, **kwargs).step(lambda: torch.tensor([1.0]))
    assert all(torch.equal(p, q) for p, q in zip(params, before))


def zero_grad_is_a_no_op(cls, name, kwargs):
    if kwargs.get("weight_decay", 0) != 0:
        pytest.skip("weight decay moves parameters without gradients")
    kwargs = copy.deepcopy(kwargs)
    if name == "AdamW":
        kwargs["lr"] = torch.tensor(1e-4) if torch.is_tensor(kwargs.get("lr")) else 1e-4
    param = torch.randn(5, 1, requires_grad=True)
    before = param.detach().clone()
    params = [param.clone()] if kwargs.get("differentiable") else [param]
    opt = cls(params, **kwargs)
    if name in SPARSE_ONLY:     # an empty sparse gradient with a two-dimensional value layout
        params[0].grad = torch.sparse_coo_tensor(torch.empty((1, 0)), torch.empty((0, 1)), (5, 1))
    else:
        params[0].grad = torch.zeros_like(params[0])
    opt.step(lambda: torch.tensor([1.0]))
    torch.testing.assert_close(params[0].detach(), before)


def printable(cls, name, kwargs):
    repr(cls([Parameter(torch.randn(2, 3)) for _ in range(2)], **kwargs))


def _fwd_bwd(opt, weight, bias, x, name):
    opt.zero_grad()
    loss = (weight.mv(x) + bias).pow(2).sum()
    loss.backward()
    _sparse_if_needed(name, (weight, bias))
    return loss


def state_dict_deterministic(cls, name, kwargs):
    """A state dict loaded into a new optimizer over equal parameters continues identically,
    and the two state dicts are then equal."""
    torch.manual_seed(4)
    weight, bias, x = Parameter(torch.randn(2, 3)), Parameter(torch.randn(2)), torch.randn(3)
    opt = cls([weight, bias], **kwargs)
    for _ in range(10):
        opt.step(functools.partial(_fwd_bwd, opt, weight, bias, x, name))
    with torch.no_grad():
        weight_c, bias_c = Parameter(weight.clone()), Parameter(bias.clone())
    opt_c = cls([weight_c, bias_c], **copy.deepcopy(kwargs))
    opt_c.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(10):
        opt.step(functools.partial(_fwd_bwd, opt, weight, bias, x, name))
        opt_c.step(functools.partial(_fwd_bwd, opt_c, weight_c, bias_c, x, name))
        torch.testing.assert_close(weight_c, weight)
        torch.testing.assert_close(bias_c, bias)
    _assert_state_dicts_equal(opt.state_dict(), opt_c.state_dict())
    opt_c.param_groups.extend(opt_c.param_groups)
    assert opt.state_dict()["param_groups"][-1] == opt_c.state_dict()["param_groups"][-1]


def _assert_state_dicts_equal(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key, entry in a["state"].items():
        assert entry.keys() == b["state"][key].keys()
        for name, value in entry.items():
            torch.testing.assert_close(b["state"][key][name], value)


def loads_older_state_dict(cls, name, kwargs):
    """A state dict whose groups lack the flags added to torch over time loads and steps."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1, stride=2), torch.nn.BatchNorm2d(2))
    x = torch.rand(1, 4, 16, 16)
    opt = cls(model.parameters(), **kwargs)

    def step():
        opt.zero_grad()
        model(x).sum().backward()
        _sparse_if_needed(name, list(model.parameters()))
        opt.step()

    for _ in range(3):
        step()
    old = copy.deepcopy(opt.state_dict())
    for group in old["param_groups"]:
        for flag in ("maximize", "foreach", "fused", "differentiable", "capturable"):
            group.pop(flag, None)
    opt.load_state_dict(old)
    step()


def loads_numeric_step(cls, name, kwargs):
    """A state dict whose `step` values are plain numbers loads and steps."""
    torch.manual_seed(5)
    params = [Parameter(torch.randn(2, 3)) for _ in range(2)]
    for p in params:
        p.grad = torch.rand_like(p)
    _sparse_if_needed(name, params)
    opt = cls(params, **kwargs)
    for _ in range(3):
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    for entry in saved["state"].values():
        if "step" in entry and torch.is_tensor(entry["step"]):
            entry["step"] = entry["step"].item()
    opt.load_state_dict(saved)
    opt.step()


def deepcopy_keeps_public_attributes(cls, name, kwargs):
    torch.manual_seed(6)
    params = [Parameter(torch.randn(2, 3)) for _ in range(2)]
    for p in params:
        p.grad = torch.rand_like(p)
    _sparse_if_needed(name, params)
    opt = cls(params, **kwargs)
    for _ in range(3):
        opt.step()

    def public(obj):
        return {k for k in obj.__dict__ if not k.startswith("_")}
    assert public(opt) == public(copy.deepcopy(opt))


def tensor_lr(cls, name, kwargs):
    """lr as a 0-d tensor and as a number give the same steps (float32: tolerance of torch's
    float32 defaults, the lr read at float64 either way)."""
    if "lr" in kwargs and torch.is_tensor(kwargs["lr"]):
        pytest.skip("the input's lr is already a tensor")
    results = []
    for lr in (kwargs.get("lr", 1e-3), torch.tensor(kwargs.get("lr", 1e-3))):
        torch.manual_seed(7)
        weight, bias, x = Parameter(torch.randn(10, 5)), Parameter(torch.randn(10)), torch.randn(5)
        opt = cls([weight, bias], **dict(copy.deepcopy(kwargs), lr=lr))
        for _ in range(5):
            opt.step(functools.partial(_fwd_bwd, opt, weight, bias, x, name))
        results.append((weight.detach(), bias.detach()))
    torch.testing.assert_close(results[0], results[1])


def grads_are_never_written(cls, name, kwargs):
    """A step leaves the gradients as they were (without GradScaler's fused contract)."""
    torch.manual_seed(8)
    params = [Parameter(torch.randn(4, 3)) for _ in range(2)]
    opt = cls(params, **kwargs)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn_like(p)
        _sparse_if_needed(name, params)
        before = [p.grad.clone() for p in params]
        opt.step()
        for p, g in zip(params, before):
            assert torch.equal(p.grad.to_dense(), g.to_dense())


def step_hooks_run(cls, name, kwargs):
    """Pre- and post-step hooks (per instance and global) run around each step, in order."""
    calls = []
    params = [Parameter(torch.randn(2, 3))]
    params[0].grad = torch.rand_like(params[0])
    _sparse_if_needed(name, params)
    opt = cls(params, **kwargs)
    handles = [opt.register_step_pre_hook(lambda o, a, k: calls.append("pre")),
               opt.register_step_post_hook(lambda o, a, k: calls.append("post")),
               register_optimizer_step_pre_hook(lambda o, a, k: calls.append("global pre")),
               register_optimizer_step_post_hook(lambda o, a, k: calls.append("global post"))]
    try:
        opt.step()
    finally:
        for handle in handles:
            handle.remove()
    opt.step()
    assert calls == ["global pre", "pre", "post", "global post"]


def named_parameters_round_trip(cls, name, kwargs):
    """An optimizer over named_parameters() saves param_names, and its state dict loads into
    another over the same names and continues identically."""
    torch.manual_seed(9)
    model = torch.nn.Linear(3, 2)
    twin = copy.deepcopy(model)
    opt = cls(model.named_parameters(), **kwargs)
    x = torch.randn(4, 3)

    def step(o, m):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        _sparse_if_needed(name, list(m.parameters()))
        o.step()

    for _ in range(2):
        step(opt, model)
    saved = opt.state_dict()
    assert saved["param_groups"][0]["param_names"] == ["weight", "bias"]
    other = cls(twin.named_parameters(), **copy.deepcopy(kwargs))
    with torch.no_grad():
        for p, q in zip(twin.parameters(), model.parameters()):
            p.copy_(q)
    other.load_state_dict(copy.deepcopy(saved))
    for _ in range(2):
        step(opt, model)
        step(other, twin)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(q, p)


# check -> (function, which inputs: "plain" (optim_inputs_func), "all" (with the global
# flags), "all-but-differentiable")
CHECKS = {
    "right_direction": (right_direction, "foreach-off"),
    "right_direction_non_contiguous": (right_direction_non_contiguous, "foreach-off"),
    "matches_torch": (matches_torch, "all"),
    "complex_as_real": (complex_as_real, "all-but-differentiable"),
    "foreach_matches_forloop": (foreach_matches_forloop, "plain"),
    "param_groups_weight_decay": (param_groups_weight_decay, "all-but-differentiable"),
    "param_groups_lr": (param_groups_lr, "all-but-differentiable"),
    "no_grad_is_a_no_op": (no_grad_is_a_no_op, "all"),
    "zero_grad_is_a_no_op": (zero_grad_is_a_no_op, "all"),
    "printable": (printable, "all"),
    "state_dict_deterministic": (state_dict_deterministic, "all-but-differentiable"),
    "loads_older_state_dict": (loads_older_state_dict, "all-but-differentiable"),
    "loads_numeric_step": (loads_numeric_step, "all-but-differentiable"),
    "deepcopy_keeps_public_attributes": (deepcopy_keeps_public_attributes, "all-but-differentiable"),
    "tensor_lr": (tensor_lr, "plain"),
    "grads_are_never_written": (grads_are_never_written, "all-but-differentiable"),
    "step_hooks_run": (step_hooks_run, "plain"),
    "named_parameters_round_trip": (named_parameters_round_trip, "all-but-differentiable"),
}


def inputs(check, name):
    """[(desc, kwargs)] of a check for one class, as torch's tests choose them."""
    info, kind = INFOS[name], CHECKS[check][1]
    if check == "foreach_matches_forloop" and "foreach" not in info.supported_impls:
        return []
    if check == "complex_as_real" and not info.supports_complex:
        return []
    if kind in ("plain", "foreach-off"):
        found = [(inp.desc, inp.kwargs) for inp in info.optim_inputs_func(device="cpu")]
        if kind == "foreach-off" and "foreach" in info.supported_impls:
            found = [(desc, dict(kwargs, foreach=False)) for desc, kwargs in found]
        return found
    skip = ("differentiable",) if kind == "all-but-differentiable" else ()
    return [(inp.desc, inp.kwargs) for inp in with_global_flags("cpu", torch.float32, info, skip=skip)]


# (check, class, regex over the input's desc) -> why optforge.torch fails where torch passes
KNOWN = {
    ("matches_torch", "Muon", r""): None,
}


def known(check, name, desc):
    for (c, n, pattern), reason in KNOWN.items():
        if c in ("*", check) and n in ("*", name) and re.search(pattern, desc) and reason:
            return reason
    return None


def _cases(full):
    cases = []
    for check in CHECKS:
        for name in sorted(INFOS):
            found = inputs(check, name)
            chosen = range(len(found)) if full or check == "matches_torch" else range(min(2, len(found)))
            for k in chosen:
                cases.append(pytest.param(check, name, k, id=f"{check}-{name}-{k}-{found[k][0]}"))
    return cases


def pytest_generate_tests(metafunc):
    if {"check", "name", "k"} <= set(metafunc.fixturenames):
        full = metafunc.config.getoption("--long")
        params = _cases(full)
        metafunc.parametrize("check,name,k", [p.values for p in params], ids=[p.id for p in params])


def run_variant(check, name, k):
    """'pass', 'torch-fails' or the exception optforge's class raised."""
    desc, kwargs = inputs(check, name)[k]
    function = CHECKS[check][0]
    try:
        function(INFOS[name].optim_cls, name, copy.deepcopy(kwargs))
    except pytest.skip.Exception:
        raise
    except Exception:      # torch's own class fails this variant: not optforge's to pass
        return "torch-fails"
    try:
        function(getattr(ot, name), name, copy.deepcopy(kwargs))
    except pytest.skip.Exception:
        raise
    except Exception as err:
        return err
    return "pass"


def test_optim_db_variant(check, name, k):
    desc = inputs(check, name)[k][0]
    outcome = run_variant(check, name, k)
    if outcome == "torch-fails":
        pytest.skip("torch.optim's own class fails this variant")
    reason = known(check, name, desc)
    if reason is not None:
        if outcome == "pass":
            pytest.fail(f"listed as failing ({reason}) but passes: update KNOWN and the docs")
        pytest.xfail(reason)
    if outcome != "pass":
        raise outcome


def summary(full=True):
    """{check: {"pass", "known", "unexpected", "torch-fails", "skipped": count}} over the variants."""
    counts = {}
    for check in CHECKS:
        row = counts.setdefault(check, dict.fromkeys(("pass", "known", "unexpected", "torch-fails", "skipped"), 0))
        for name in sorted(INFOS):
            for k, (desc, _) in enumerate(inputs(check, name)):
                try:
                    outcome = run_variant(check, name, k)
                except pytest.skip.Exception:
                    row["skipped"] += 1
                    continue
                if outcome in ("pass", "torch-fails"):
                    row[outcome] += 1
                elif known(check, name, desc):
                    row["known"] += 1
                else:
                    row["unexpected"] += 1
                    print(f"{check} {name} [{desc}]: {type(outcome).__name__}: {str(outcome)[:300]}")
    return counts


if __name__ == "__main__":     # python tests/test_torch_optim_db.py: the counts of every variant
    import warnings
    warnings.simplefilter("ignore")
    table = summary()
    for check, row in table.items():
        print(f"{check:34s} " + "  ".join(f"{key} {value}" for key, value in row.items()))
    print("total", {key: sum(row[key] for row in table.values()) for key in next(iter(table.values()))})
