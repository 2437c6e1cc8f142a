"""The API families an optimizer is constructed in, and each one's constructor for a spec.

MXNet style (`optforge.create`, and `optforge.Adam` for MXNet 2.0's flavor) with MXNet's
argument names exists for every spec; params style (`optforge.optim.Adam(params, lr=...)`)
and the torch module (`optforge.torch.Adam(model.parameters(), lr=...)`, a
torch.optim.Optimizer) with torch's names for the spec `arguments.chosen` picks (one class
per name in both, built from the same spec). The docs pages and `optforge show` print these
lines, so they cannot disagree. Nothing here imports torch.
"""
import math

from .arguments import default_arguments, mxnet_arguments
from .flavors import DEFAULT_FLAVOR, PARAMS_FLAVOR


def _arguments(pairs):
    return ", ".join(f"{name}={_value(value)}" for name, value in pairs)


def _value(value):
    """A default as Python source (repr of an infinity is `inf`, which is no Python name)."""
    if isinstance(value, float) and math.isinf(value):
        return "float('inf')" if value > 0 else "float('-inf')"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_value, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def mxnet_style(spec, has_params_class, builtin):
    arguments = _arguments([("learning_rate", spec["learning_rate"])] + mxnet_arguments(spec))
    flavor = "" if spec["flavor"] == DEFAULT_FLAVOR else f", flavor={spec['flavor']!r}"
    lines = [f"opt = optforge.create({spec['key']!r}{flavor}, {arguments})"]
    if spec["flavor"] == DEFAULT_FLAVOR and builtin:    # a loaded spec is no attribute of optforge
        lines.append(f"opt = optforge.{spec['name']}({arguments})")
    return lines


def params_style(spec, has_params_class, builtin):
    if not has_params_class:
        return []
    return [f"opt = optforge.optim.{spec['name']}(params, {_arguments(default_arguments(spec).items())})"]


def torch_module(spec, has_params_class, builtin):
    # optforge.torch builds its classes from optforge.optim's (torch_frontend/classes.py)
    if not has_params_class:
        return []
    return [f"opt = optforge.torch.{spec['name']}(model.parameters(), "
            f"{_arguments(default_arguments(spec).items())})"]


# (label, whose argument names, constructor lines of a spec: empty where the family has no
# class for it), in the order a torch-flavor page shows them.
FAMILIES = (
    ("torch module (a torch.optim.Optimizer)", "torch's", torch_module),
    ("params style (torch.optim)", "torch's", params_style),
    ("MXNet style", "MXNet's", mxnet_style),
)


def constructors(spec, has_params_class, builtin=True):
    """[{label, names, lines}] of the families with a class for the spec; the flavor's own
    families first (the torch ones for the torch flavor, else MXNet style). `builtin`: one of
    optforge's own specs, not one registered by `optforge.load_spec`."""
    out = [{"label": label, "names": names, "lines": build(spec, has_params_class, builtin)}
           for label, names, build in FAMILIES]
    out = [family for family in out if family["lines"]]
    return out if spec["flavor"] == PARAMS_FLAVOR else out[::-1]
