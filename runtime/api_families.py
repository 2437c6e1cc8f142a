"""The API families an optimizer is constructed in, and each one's constructor for a spec.

MXNet style (`optforge.create`, and `optforge.Adam` for MXNet 2.0's flavor) with MXNet's
argument names exists for every spec; params style (`optforge.optim.Adam(params, lr=...)`)
with torch's names for the spec `params_api.chosen` picks. The docs pages and `optforge
show` print these lines, so they cannot disagree.
"""
from .params_api import PARAMS_FLAVOR, default_arguments
from .registry import DEFAULT_FLAVOR


def _arguments(pairs):
    return ", ".join(f"{name}={value!r}" for name, value in pairs)


def mxnet_style(spec, has_params_class):
    arguments = _arguments([("learning_rate", spec["learning_rate"])]
                           + [(h["name"], h["default"]) for h in spec["hyperparameters"]])
    flavor = "" if spec["flavor"] == DEFAULT_FLAVOR else f", flavor={spec['flavor']!r}"
    lines = [f"opt = optforge.create({spec['key']!r}{flavor}, {arguments})"]
    if spec["flavor"] == DEFAULT_FLAVOR:
        lines.append(f"opt = optforge.{spec['name']}({arguments})")
    return lines


def params_style(spec, has_params_class):
    if not has_params_class:
        return []
    return [f"opt = optforge.optim.{spec['name']}(params, {_arguments(default_arguments(spec).items())})"]


# (label, whose argument names, constructor lines of a spec: empty where the family has no
# class for it). The torch-module family (optforge.torch.Adam) is added here, as one more
# row, once that module exists.
FAMILIES = (
    ("params style (torch.optim)", "torch's", params_style),
    ("MXNet style", "MXNet's", mxnet_style),
)


def constructors(spec, has_params_class):
    """[{label, names, lines}] of the families with a class for the spec; the flavor's own
    family first (params style for the torch flavor, else MXNet style)."""
    out = [{"label": label, "names": names, "lines": build(spec, has_params_class)}
           for label, names, build in FAMILIES]
    out = [family for family in out if family["lines"]]
    return out if spec["flavor"] == PARAMS_FLAVOR else out[::-1]
