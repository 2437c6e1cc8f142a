"""optforge.torch against torch's own optimizer test data: `optim_db`, which the installed
torch wheel ships in torch/testing/_internal/common_optimizers.py (each OptimizerInfo's
optimizer inputs and error inputs), for every optforge.torch class whose torch.optim
class of the same name it lists.

- errors: every error input (construction and step errors, warnings) raises torch's
  exception type with a message matching torch's pattern, as torch's class does;
- layout: after the same steps, state_dict() has torch's structure key for key: the same
  state keys per parameter, each value of the same Python type, tensor dtype and shape, and
  the same param group keys with values of the same types;
- the rules whose torch class keeps no `step` read t at most as `t == 1`.
"""
import copy
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")    # torch's testing internals import it

import optforge.torch as ot  # noqa: E402
from optforge.conventions import torch_keywords  # noqa: E402
from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db  # noqa: E402

INFOS = {info.optim_cls.__name__: info for info in optim_db if info.optim_cls.__name__ in ot.classes()}


def test_the_shared_classes_are_all_there():
    assert set(INFOS) >= {"Adam", "AdamW", "Adamax", "SGD", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam",
                          "ASGD", "SparseAdam", "Rprop", "Muon", "Adafactor"}


def _error_cases():
    cases = []
    for name, info in sorted(INFOS.items()):
        if info.optim_error_inputs_func is None:
            continue
        for k, error in enumerate(info.optim_error_inputs_func(device="cpu", dtype=torch.float32)):
            cases.append(pytest.param(name, k, id=f"{name}-{k}-{error.optimizer_error_input.desc}"))
    return cases


def _raises_as(cls, error):
    """Run one error input against `cls`: the error (or warning) torch's test expects."""
    inp = error.optimizer_error_input

    def act():
        opt = cls(inp.params, **inp.kwargs)
        if error.error_on == OptimizerErrorEnum.STEP_ERROR:
            opt.step()

    if issubclass(error.error_type, Warning):
        with pytest.warns(error.error_type, match=error.error_regex):
            act()
    else:
        with pytest.raises(error.error_type, match=error.error_regex):
            act()


@pytest.mark.parametrize("name,k", _error_cases())
def test_error_inputs_raise_torchs_error(name, k):
    errors = INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32)
    _raises_as(INFOS[name].optim_cls, errors[k])     # the data hold for torch's class here
    errors = INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32)    # fresh tensors
    _raises_as(getattr(ot, name), errors[k])


def _structure(state_dict):
    """(per parameter id: {key: (type, dtype, shape)}, per group: {key: type} and the ids)."""
    def describe(value):
        if torch.is_tensor(value):
            return type(value).__name__, value.dtype, tuple(value.shape)
        return type(value).__name__, None, None
    state = {pid: {key: describe(value) for key, value in entry.items()} for pid, entry in state_dict["state"].items()}
    groups = [{key: (value if key == "params" else type(value).__name__) for key, value in group.items()}
              for group in state_dict["param_groups"]]
    return state, groups


def _layout_cases():
    cases = []
    for name, info in sorted(INFOS.items()):
        for k, inp in enumerate(info.optim_inputs_func(device="cpu", dtype=torch.float32)):
            cases.append(pytest.param(name, k, id=f"{name}-{k}-{inp.desc}"))
    return cases


@pytest.mark.parametrize("name,k", _layout_cases())
def test_state_dict_layout_equals_torchs(name, k):
    info = INFOS[name]
    kwargs = info.optim_inputs_func(device="cpu", dtype=torch.float32)[k].kwargs
    layouts = []
    for cls in (info.optim_cls, getattr(ot, name)):
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(4, 3, generator=gen).requires_grad_() for _ in range(3)]
        groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.0005}]
        opt = cls(groups, **copy.deepcopy(kwargs))
        for step in range(3):
            for j, p in enumerate(params):    # the last parameter gets no gradient at the first step
                grad = torch.randn(p.shape, generator=gen)
                p.grad = None if (step == 0 and j == 2) else (
                    grad.to_sparse() if info.only_supports_sparse_grads else grad)
            opt.step()
        layouts.append(_structure(opt.state_dict()))
    (torch_state, torch_groups), (our_state, our_groups) = layouts
    assert our_state == torch_state
    assert our_groups == torch_groups


def _no_step_rules():
    return sorted(key for key, kind in torch_keywords.STEP_KINDS.items() if kind is None)


@pytest.mark.parametrize("flavor,key", _no_step_rules())
def test_rules_whose_torch_class_keeps_no_step_read_t_only_as_the_first_step(flavor, key):
    """Such a rule runs with t = 1 before its states exist and t = 2 after: its host functions,
    requires and skip must not read t, and its conditions may read it only as t == 1 (the
    same branch for every t >= 2)."""
    import inspect
    import itertools
    from optforge.runtime import registry
    module = registry.lookup(key, flavor)._module
    functions = [v["host"] for v in module.VARIANTS.values()]
    functions += [f for f in (getattr(module, "requires", None), getattr(module, "skip", None)) if f]
    assert all("t" not in inspect.signature(f).parameters for f in functions)
    parameters = inspect.signature(module.conditions).parameters
    if "t" not in parameters:
        return
    flags = [name for name in parameters if name not in ("t", "_")]
    for values in itertools.product([0.0, 0.5, False, True], repeat=len(flags)):
        inputs = dict(zip(flags, values))
        assert len({module.conditions(t=t, **inputs) for t in range(2, 40)}) == 1


def test_parameter_checks_run_for_added_groups_too():
    """torch checks SparseAdam's and Muon's parameters in its constructor; optforge also
    when a group is added (add_param_group), with torch's wording, and nothing is added."""
    opt = ot.Muon([torch.randn(2, 3, requires_grad=True)])
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        opt.add_param_group({"params": [torch.randn(4, requires_grad=True)]})
    opt = ot.SparseAdam([torch.randn(3, requires_grad=True)])
    with pytest.raises(ValueError, match=re.escape("Sparse params at indices [[1, 0]]")):
        opt.add_param_group({"params": [torch.zeros(3).to_sparse()]})
    assert len(opt.param_groups) == 1
