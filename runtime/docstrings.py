"""Docstrings of generated optimizer classes, written from their spec metadata."""
import textwrap

from ..conventions.arguments import mxnet_arguments, written
from ..conventions.flavors import title as flavor_title


def class_docstring(spec, parameters=None):
    """The class docstring; `parameters`: the lines of its Parameters section, for a class
    whose arguments are not the MXNet-style ones (`mxnet_parameters`)."""
    lines = [spec["summary"].rstrip(".") + ".", ""]
    lines += [f"Update rule ({flavor_title(spec['flavor'])}), per parameter and step::", ""]
    lines += ["    " + line for line in spec["update"].splitlines()]
    if spec.get("formulas"):
        lines += ["", "The same rule as formulas (LaTeX printed from the parsed spec; "
                  "\\leftarrow assigns)::", ""]
        lines += ["    " + line for line in spec["formulas"]]
        if spec.get("symbols"):
            shown = {m["name"]: written(m) for m in spec["hyperparameters"]}
            lines += ["", "Symbols: " + ", ".join(f"{latex} = ``{shown.get(name, name)}``"
                                                  for latex, name in spec["symbols"]) + "."]
    lines += ["", "Inputs of the rule: ``weight``, ``grad``; ``lr`` and ``wd`` after the scheduler "
              "and the lr/wd multipliers; ``t`` the parameter's update count (first step: "
              "begin_num_update + 1); ``rescale_grad``; ``clip_gradient`` (None: no clipping)"
              + ("; ``initial_lr`` the learning rate the optimizer started with"
                 if any(name == "initial_lr" for _, name in spec.get("symbols", ())) else "")
              + ". ``clip(x, c)`` is ``min(max(x, -c), c)``."]
    if spec.get("skip_if"):
        lines += ["", f"The whole step is skipped (weight and states unchanged) when ``{spec['skip_if']}``."]
    if spec.get("modes"):
        lines += ["", "Modes: steps run in train mode; ``eval()`` and ``train()`` rewrite the weights between "
                  "steps (a step in eval mode raises ValueError): "
                  + "; ".join(f"{mode}: ``{text.strip()}``" for mode, text in spec["modes"].items()) + "."]
    lines += ["", "Parameters", "----------"]
    lines += mxnet_parameters(spec) if parameters is None else parameters
    group_states = [st for st in spec["states"] if st["shape"] == "group"]
    if group_states:
        lines += ["", "Group states", "------------",
                  "One float64 value per param group (the parameters of one update call in the MXNet style):"]
        for st in group_states:
            lines.append(f"{st['name']} : starts as {st['init']!r}" if not isinstance(st["init"], str)
                         else f"{st['name']} : starts as {st['init']}")
            if st["doc"]:
                lines += textwrap.wrap(st["doc"], 88, initial_indent="    ", subsequent_indent="    ")
    per_parameter = [st for st in spec["states"] if st["shape"] != "group"]
    if per_parameter:
        lines += ["", "States", "------",
                  "Per parameter, in this order (a single state is returned bare, none as None):"]
        for st in per_parameter:
            shape = {"weight": "weight's shape", "rows": "one value per row of the matrix view",
                     "cols": "one value per column of the matrix view", "scalar": "per-parameter scalar",
                     "rows_by_rows": "a (rows, rows) matrix per matrix of the view",
                     "cols_by_cols": "a (cols, cols) matrix per matrix of the view"}[st["shape"]]
            dtype = "" if st["shape"] == "scalar" else \
                (", float32 (float64 for float64 weights)" if st["dtype"] == "float32" else ", weight's dtype")
            init = st["init"] if isinstance(st["init"], str) else repr(st["init"])
            when = f", exists when {st['when']}" if st["when"] else ""
            lines.append(f"{st['name']} : {shape}{dtype}, starts as {init}{when}")
            if st["doc"]:
                lines += textwrap.wrap(st["doc"], 88, initial_indent="    ", subsequent_indent="    ")
    for title, items in (("References", spec["references"]), ("Notes", spec["notes"]),
                         ("Deviations from MXNet", spec["deviations"])):
        if items:
            lines += ["", title, "-" * len(title)]
            for item in items:
                lines += textwrap.wrap(item, 88, initial_indent="- ", subsequent_indent="  ")
    lines += ["", f"Generated from {spec['spec']}."]
    return "\n".join(lines)


def mxnet_parameters(spec):
    """The Parameters section of an MXNet-style class."""
    lines = [f"learning_rate : float, default {spec['learning_rate']!r}", "    Base learning rate."]
    defaults = dict(mxnet_arguments(spec))
    for hp in spec["hyperparameters"]:
        if not hp.get("list"):
            lines += hyperparameter_lines(hp)
        elif hp["name"].endswith("_0"):     # a list: one argument, its elements share range and doc
            lines += hyperparameter_lines(dict(hp, type=f"tuple of {len(defaults[hp['list']])} {hp['type']}",
                                               default=defaults[hp["list"]]), name=hp["list"])
    for name, default in spec["options"].items():
        if isinstance(default, dict):
            default = f"None (${default['env']}, else {default['default']})"
        if name != "use_fused_step":
            lines += [f"{name} : default {default}", "    " + _OPTION_DOCS.get(name, "")]
    lines += [f"use_fused_step : bool, default {spec['options'].get('use_fused_step', True)!r}",
              "    update() runs the generated kernels (fused_step) rather than the NumPy reference (step).",
              "**kwargs",
              "    Arguments of :class:`optforge.Optimizer`: rescale_grad, wd, clip_gradient, lr_scheduler,",
              "    begin_num_update, multi_precision, param_idx2name, param_dict, aggregate_num."]
    return lines


def hyperparameter_lines(hp, name=None, indent=""):
    """`name : type, default ..., in range` and the meaning (name: the argument's own name)."""
    kind = hp["type"] + (" or None" if hp["optional"] else "")
    where = f", in {hp['range_text']}" if hp.get("range_text") else ""
    choices = f", one of {', '.join(repr(c) for c in hp['choices'])}" if hp.get("choices") else ""
    lines = [f"{indent}{name or hp['name']} : {kind}, default {hp['default']!r}{where}{choices}"]
    if hp["doc"]:
        lines += textwrap.wrap(hp["doc"], 88, initial_indent=indent + "    ", subsequent_indent=indent + "    ")
    return lines


_OPTION_DOCS = {
    "lazy_update": "With row-sparse gradients, update only the rows present in the gradient.",
    "aggregate_num": "How many parameters the Updater passes per call.",
    "multi_precision": "Keep float32 master weights for float16/bfloat16 weights.",
}
