"""optforge.torch's classes named as torch.optim's, as drop-in replacements for them: every
keyword of the real torch.optim constructor (walked from `inspect.signature` of the
installed torch) is either taken with torch's default or refused with the reason, and a
torch state dict carrying a setting optforge does not implement is refused whole."""
import copy
import inspect

import pytest

torch = pytest.importorskip("torch")
import optforge.torch  # noqa: E402
from optforge.conventions import torch_keywords  # noqa: E402


def _torch_named_classes():
    """(optforge class, torch.optim class) for every class torch.optim also has: the torch
    flavor's, and Rprop (MXNet 2.0's spec, with torch's semantics and keywords)."""
    return [(cls, getattr(torch.optim, name)) for name, cls in sorted(optforge.torch.classes().items())
            if hasattr(torch.optim, name)]


PAIRS = _torch_named_classes()


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()


def test_the_torch_named_classes_are_all_there():
    assert {theirs.__name__ for _, theirs in PAIRS} >= {
        "Adam", "AdamW", "Adamax", "SGD", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "ASGD", "SparseAdam",
        "Rprop"}


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=[t.__name__ for _, t in PAIRS])
def test_every_torch_keyword_is_supported_or_refused_clearly(ours, theirs):
    mine = inspect.signature(ours).parameters
    refused = torch_keywords.refused(ours.spec_class.SPEC)
    for name, parameter in inspect.signature(theirs).parameters.items():
        if name == "params":
            continue
        assert name in mine, f"{theirs.__name__} keyword {name!r} is neither taken nor refused"
        # the same default as torch's (a tuple where torch writes one; 0 and 0.0 alike)
        assert mine[name].default == parameter.default, (name, mine[name].default, parameter.default)
        if name in refused:
            accepted, reason = refused[name]
            other = (not accepted) if isinstance(accepted, bool) else 0.5
            model = _model()
            with pytest.raises(ValueError) as err:
                ours(model.parameters(), **{name: other})
            assert f"does not support {name}={other!r}" in str(err.value) and reason in str(err.value)
            ours(model.parameters(), **{name: accepted})      # torch's default is taken
    for name in ("foreach", "fused"):
        assert name in mine and name not in refused


def _train(opt, model, steps=4):
    torch.manual_seed(1)
    for _ in range(steps):
        opt.zero_grad()
        x = torch.randn(5, 4, dtype=torch.float64) * 3
        model(x).pow(2).sum().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
@pytest.mark.parametrize("switch", [{"foreach": True}, {"fused": True}, {"foreach": False, "fused": False}])
def test_foreach_and_fused_are_accepted_and_change_nothing(name, switch):
    cls = getattr(optforge.torch, name)
    kwargs = {"lr": 0.05, "weight_decay": 0.1} | ({"momentum": 0.9} if name == "SGD" else {})
    model = _model()
    plain = _train(cls(model.parameters(), **kwargs), model)
    model = _model()
    opt = cls(model.parameters(), **kwargs, **switch)
    switched = _train(opt, model)
    assert not torch.equal(plain[0], _model()[0].weight)    # it trained
    assert all(opt.param_groups[0][k] == v for k, v in switch.items())   # kept, as torch keeps them
    for a, b in zip(plain, switched):
        assert torch.equal(a, b)   # bit-identical: the switches select nothing in optforge


def test_refused_group_values_change_nothing():
    model = _model()
    first, second = list(model.parameters())[:2], list(model.parameters())[2:]
    opt = optforge.torch.Adam(first, lr=1e-3)
    for key, value in (("capturable", True), ("decoupled_weight_decay", True)):
        with pytest.raises(ValueError, match=f"does not support {key}=True"):
            opt.add_param_group({"params": second, key: value})
        assert len(opt.param_groups) == 1
    opt = optforge.torch.LAMB(first, lr=1e-3)    # differentiable=True: element-wise rules only
    with pytest.raises(ValueError, match="does not support differentiable=True"):
        opt.add_param_group({"params": second, "differentiable": True})
    assert len(opt.param_groups) == 1


def _torch_state_dict(**kwargs):
    model = _model()
    ref = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=0.1, **kwargs)
    _train(ref, model, steps=2)
    return ref.state_dict()


@pytest.mark.parametrize("setting", [{"decoupled_weight_decay": True}, {"capturable": True}])
def test_a_torch_state_dict_with_a_setting_optforge_lacks_is_refused_whole(setting):
    saved = _torch_state_dict(**({"decoupled_weight_decay": True} if "decoupled_weight_decay" in setting else {}))
    for group in saved["param_groups"]:
        group.update(setting)    # capturable/differentiable runs need CUDA or autograd; the dict is what matters
    model = _model()
    opt = optforge.torch.Adam(model.parameters(), lr=1e-3)
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=f"does not support {next(iter(setting))}=True"):
        opt.load_state_dict(saved)
    assert len(opt.state) == 0
    assert [dict(g) for g in opt.param_groups] == before


def test_a_torch_state_dict_with_torchs_switches_loads_and_continues_as_torch():
    """torch.optim.Adam(foreach=True) -> optforge.torch.Adam -> two more steps each: the
    same weights (float64; 1e-12 relative: the same formulas, a different summation order
    is not involved, only rounding of the element-wise update)."""
    model_ref = _model()
    ref = torch.optim.Adam(model_ref.parameters(), lr=1e-2, weight_decay=0.1, foreach=True)
    _train(ref, model_ref, steps=3)
    model = _model()
    with torch.no_grad():
        for p, q in zip(model.parameters(), model_ref.parameters()):
            p.copy_(q)
    opt = optforge.torch.Adam(model.parameters(), lr=1e-3)
    opt.load_state_dict(copy.deepcopy(ref.state_dict()))   # as from a checkpoint: no shared tensors
    assert opt.param_groups[0]["foreach"] is True and opt.param_groups[0]["lr"] == 1e-2
    ours = _train(opt, model, steps=2)
    theirs = _train(ref, model_ref, steps=2)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_adagrad_sum_starts_at_initial_accumulator_value_as_torchs():
    """torch.optim.Adagrad fills `sum` with initial_accumulator_value; after three steps
    (signed gradients, wd > 0, lr_decay > 0) both the sums and the weights agree in float64
    (1e-12 relative: the same element-wise formulas, rounding only)."""
    model_ref, model = _model(), _model()
    kwargs = dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.3)
    ref = torch.optim.Adagrad(model_ref.parameters(), **kwargs)
    opt = optforge.torch.Adagrad(model.parameters(), **kwargs)
    ours, theirs = _train(opt, model, steps=3), _train(ref, model_ref, steps=3)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for p, q in zip(model.parameters(), model_ref.parameters()):
        torch.testing.assert_close(opt.state[p]["sum"], ref.state[q]["sum"], rtol=1e-12, atol=1e-14)
    fresh = optforge.create("adagrad", flavor="torch", initial_accumulator_value=0.25)
    import numpy as np
    assert np.array_equal(fresh.create_state(0, np.ones((2, 3), np.float32)), np.full((2, 3), 0.25, np.float32))
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        optforge.torch.Adagrad(model.parameters(), initial_accumulator_value=-1.0)
