"""One `torch.optim.Optimizer` subclass per registered spec, built from its metadata.

The signature is the params-style class's (`params_api.params_class`: torch's names,
`lr`, `betas`, `eps`, `weight_decay`, a hyperparameter's `keyword`, ...) plus torch's
implementation keywords (`foreach`, `fused` and `differentiable` accepted, the last for
element-wise rules; `capturable` and torch keywords the spec lacks refused unless left at
torch's default: conventions/torch_keywords.py), `master_weights` and `group_all_reduce`;
the class holds no code of its own beyond `optimizer.Optimizer`.
"""
import inspect

import torch

from ..conventions import torch_keywords
from ..conventions.arguments import chosen
from ..runtime import params_api, registry
from . import torch_checks
from .optimizer import Optimizer

_CLASSES = {}   # engine class -> torch class


def twin(spec_class):
    """torch.optim's class of the same name, when this spec is the one optforge.torch names
    after it (the torch flavor's, or MXNet 2.0's where it has none: Rprop); else None."""
    spec = spec_class.SPEC
    theirs = getattr(torch.optim, spec["name"], None)
    if not (isinstance(theirs, type) and issubclass(theirs, torch.optim.Optimizer)):
        return None
    return theirs if chosen(registry.registered().items()).get(spec["key"]) is spec_class else None


def torch_class(spec_class):
    """The torch optimizer class for a spec-built class: (params, lr=<default>, *, <keywords>,
    weight_decay=<default>, foreach=None, fused=None, capturable=False, differentiable=False,
    master_weights=False, group_all_reduce=False).

    A class named as a torch.optim class (`twin`) checks its arguments as torch's does
    first (torch_checks.py), takes torch's default objects where they are equal (0 where
    torch writes 0, so param groups hold what torch's hold), and keeps the keywords torch's
    class lacks out of its param groups unless they are given (`master_weights`, Rprop's
    `weight_decay`, ...): its state_dict has torch's keys. Other classes keep only
    `master_weights` and `group_all_reduce` out unless given."""
    if spec_class in _CLASSES:
        return _CLASSES[spec_class]
    spec = spec_class.SPEC
    theirs = twin(spec_class)
    torch_parameters = inspect.signature(theirs).parameters if theirs is not None else {}
    reference = inspect.signature(params_api.params_class(spec_class).__init__)
    P = inspect.Parameter
    parameters = list(reference.parameters.values())
    parameters += [P(name, P.KEYWORD_ONLY, default=default)
                   for name, _, default in torch_keywords.extra_keywords(spec)]
    for k, parameter in enumerate(parameters):
        other = torch_parameters.get(parameter.name)
        if other is not None and other.default is not P.empty and other.default == parameter.default \
                and type(other.default) is not type(parameter.default):
            parameters[k] = parameter.replace(default=other.default)    # torch's 0 for our 0.0
    signature = inspect.Signature(parameters)
    own_keywords = (torch_keywords.MASTER_WEIGHTS, torch_keywords.GROUP_ALL_REDUCE)
    implied = {p.name: p.default for p in parameters[2:]
               if p.name in own_keywords or (theirs is not None and p.name not in torch_parameters)}
    constants = torch_keywords.group_constants(spec)
    name = spec["name"] if theirs is not None else None

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        given = set(bound.arguments)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        params = values.pop("params")
        if name is not None:
            torch_checks.check_constructor(name, values)
        own = {key: value for key, value in implied.items() if key not in given}
        for key in own:
            del values[key]
        values.update(constants)
        Optimizer.__init__(self, params, values, own)

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{spec['name']}.__init__"
    arguments = ", ".join(f"{p.name}={p.default!r}" for p in parameters[2:])
    doc = (f"{spec['name']}(params, {arguments}): a torch.optim.Optimizer "
           f"({spec['flavor']} rule, generated from {spec['spec']}).\n\n"
           "params: tensors, named_parameters() or parameter groups (dicts). foreach, fused: accepted "
           "as torch.optim's, no effect on the update (one fused kernel call per (device, dtype) batch "
           "always); fused=True makes torch.amp.GradScaler hand the step the still-scaled gradients "
           "with grad_scale and found_inf, as torch's fused optimizers. "
           + "".join(f"{name}: only {value!r} ({reason}). " for name, (value, reason)
                     in torch_keywords.refused(spec).items())
           + "master_weights: keep a float32 master copy and float32 states for float16/bfloat16 "
           "parameters. group_all_reduce: True for a rule with group reductions (group_sum) under "
           "ZeroRedundancyOptimizer (it passes the keyword to each rank's optimizer): the param group's "
           "group values are all-reduced in float64 over every rank of the default process group, so each "
           "rank's partition steps with the values of the whole group; other rules refuse True.\n\n"
           + (spec_class.__doc__ or ""))
    bases = (Optimizer,)
    if getattr(spec_class._module, "MODES", None) is not None:   # train()/eval() (modes.py)
        from .torch_modes import TorchModes
        bases = (TorchModes, Optimizer)
    cls = type(spec["name"], bases, {"spec_class": spec_class, "__init__": __init__, "torch_name": name,
                                     "__doc__": doc, "__module__": "optforge.torch"})
    _CLASSES[spec_class] = cls
    return cls


def classes():
    """{class name: torch optimizer class}: the torch flavor where a spec has one, else
    MXNet 2.0 (the same choice as optforge.optim)."""
    return {name: torch_class(optim_class.spec_class)
            for name, optim_class in params_api.classes().items()}


def create(name, params, flavor=None, **kwargs):
    """`create('lion', model.parameters(), lr=1e-4)`: any registered spec of any flavor."""
    if flavor is None:
        flavor = "torch" if name.lower() in registry.names("torch") else registry.DEFAULT_FLAVOR
    return torch_class(registry.lookup(name, flavor))(params, **kwargs)
