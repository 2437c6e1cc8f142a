"""Group reductions at run time: the partials stage and the group states.

A rule with group reductions (`group_sum`, `group_max`, `group_min`; codegen/group_stage.py)
has a generated `GROUP`: a partials stage run for every parameter of the group before the
step, its per-tensor values combined over the group in float64 and in parameter order
(sum: `math.fsum`, so the result does not depend on how the group is ordered beyond one
rounding; max, min: NaN wins), and the group states (`shape = "group"`), one float64 per
param group, which the API family keeps with the group (`param_groups[i]` in optforge.torch
and optforge.optim; the optimizer itself in the MXNet style, whose group is one update
call). The combined values reach the step as host inputs (`_group<k>`); the step's host
code computes the group states' new values, the same for every parameter of the group.

Sharded runs (ZeRO, FSDP2) hold parts of each tensor on each rank: `reduce` lets the
frontend combine each rank's group values (sums added, maxima and minima compared) before
the step reads them.
"""
import importlib
import importlib.util
import math
import sys
from pathlib import Path

import numpy

from ..backends import array_module
from .layout import StepError, state_dtype, state_parts


def has_group(module):
    return hasattr(module, "GROUP")


def initial_states(engine):
    """The group states' first values: {name: float} (a number, or the hyperparameter named)."""
    out = {}
    for meta in engine.spec["states"]:
        if meta["shape"] == "group":
            init = meta["init"]
            out[meta["name"]] = float(engine.hyperparameters[init] if isinstance(init, str) else init)
    return out


def check_states(engine, values, where="group states"):
    """The group states a frontend holds: {name: float}; ValueError when one is missing or
    not a real number."""
    out = {}
    for name in engine.module.GROUP["states"]:
        if name not in values:
            raise ValueError(f"{engine.name}: {where} lack '{name}' (one value per param group)")
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, numpy.floating, numpy.integer)) \
                and not (hasattr(value, "shape") and tuple(value.shape) in ((), (1,))):
            raise ValueError(f"{engine.name}: group state '{name}' must be a number, got {type(value).__name__}")
        out[name] = float(value)
    return out


def combine(op, values):
    """One reduction's group value from its per-tensor partials, in float64."""
    if op == "sum":
        return math.fsum(values)
    if any(math.isnan(v) for v in values):
        return math.nan
    if not values:
        return -math.inf if op == "max" else math.inf
    return (max(values) if op == "max" else min(values)) + 0.0


def partials_module(module):
    """The generated module of a rule's partials stage (GROUP["module"], beside the rule's
    own: in the package, or in optforge.load_spec's cache entry)."""
    found = _MODULES.get(module.__name__)
    if found is None:
        name = module.GROUP["module"]
        if ".generated.numpy." in module.__name__:
            found = importlib.import_module(f"{module.__name__.rpartition('.')[0]}.{name}")
        else:
            path = Path(module.__file__).with_name(f"{name}.py")
            spec = importlib.util.spec_from_file_location(f"{module.__name__}_{name}", path)
            found = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = found
            spec.loader.exec_module(found)
        _MODULES[module.__name__] = found
    return found


_MODULES = {}


def partials(engine, indices, weights, grads, states, inputs, group_states, fused=True):
    """Each reduction's per-tensor partials over these parameters: {step input: [float]}.
    The partials stage is a rule of its own (it reads the step's states, writes one 0-d
    array per reduction), launched like any rule: the native CPU or CUDA kernels where they
    apply (`fused`), else its NumPy code. Parameters the rule skips this step (skip_if)
    contribute nothing."""
    reductions = engine.module.GROUP["reductions"]
    if not reductions:      # group states alone: no partials stage
        return {}
    stage = engine.group_engine()
    metas = [stage.states[partial] for _, _, partial in reductions]
    written, staged = [], []
    for weight, state in zip(weights, states):
        parts = state_parts(state, len(engine.present_states(weight))) or ()
        xp = array_module(weight)
        arrays = [xp.zeros((), dtype=state_dtype(meta.meta, weight.dtype)) for meta in metas]
        written.append(arrays)
        every = tuple(parts) + tuple(arrays)
        staged.append(every[0] if len(every) == 1 else every)
    launch = stage.launch(indices, weights, grads, staged, fused)
    planned = launch.plan(inputs._replace(group=dict(group_states)))
    launch.run()
    kept = [arrays for plan, arrays in zip(planned, written) if plan is not None]
    read = [[float(a) for a in arrays] if type(arrays[0]) is numpy.ndarray else None for arrays in kept]
    on_device = [arrays for arrays, values in zip(kept, read) if values is None]
    if on_device:   # CuPy: every partial of the step read back at once (one device sync)
        xp = array_module(on_device[0][0])
        values = iter(xp.asnumpy(xp.stack([a.astype(xp.float64) for arrays in on_device for a in arrays])).tolist())
        read = [[next(values) for _ in arrays] if got is None else got for arrays, got in zip(kept, read)]
    out = {value: [] for _, value, _ in reductions}
    for values in read:
        for (_, value, _), got in zip(reductions, values):
            out[value].append(got)
    return out


def combined(engine, found):
    """The step inputs of a group's reductions ({`_group<k>`: float}) from the partials of
    every parameter of the group (`partials`' lists, gathered over all of its launches)."""
    return {value: combine(op, found.get(value, [])) for op, value, _ in engine.module.GROUP["reductions"]}


def values(engine, indices, weights, grads, states, inputs, group_states, fused=True):
    """The step inputs of a group's reductions when these parameters are the whole group."""
    return combined(engine, partials(engine, indices, weights, grads, states, inputs, group_states, fused))


def updates(engine, planned):
    """The group states' new values from every parameter's Plan ({} when every parameter
    skipped the step); StepError when parameters disagree (their lr or wd differ: a group
    state is one value for the whole group)."""
    names = engine.module.GROUP["states"]
    found = None
    for plan in planned:
        if plan is None:
            continue
        new = {name: plan.group_updates[name] for name in names}
        if found is None:
            found = new
        elif any(not (new[n] == found[n] or (math.isnan(new[n]) and math.isnan(found[n]))) for n in names):
            raise StepError(f"{engine.name}: the group states' new values differ between parameters of one "
                            "group (their learning rates or weight decays differ): give every parameter of a "
                            "group the same lr and wd")
    return found or {}
