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
import math

import numpy

from ..backends import array_module, quantized, quiet
from ..sparse import RowSparse
from .layout import MATRIX_INPUTS, StepError, reads_shape, shape_inputs, state_parts


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


def partials(engine, indices, weights, grads, states, inputs, group_states):
    """Each reduction's per-tensor partials over these parameters: {step input: [float]}.
    Parameters the rule skips this step (skip_if) contribute nothing."""
    module = engine.module
    group = module.GROUP
    spec = engine.spec
    base = dict(engine.hyperparameters, rescale_grad=inputs.rescale_grad, clip_gradient=inputs.clip_gradient,
                **group_states)
    skip = getattr(module, "skip", None)
    by_shape = reads_shape(module)
    flags = spec["name_flags"]
    initial = inputs.initial_lrs if inputs.initial_lrs is not None else inputs.lrs
    out = {value: [] for _, value, _ in group["reductions"]}
    for k, (index, weight, grad, state) in enumerate(zip(indices, weights, grads, states)):
        shape = shape_inputs(spec, weight) if by_shape else {}
        values = dict(base, lr=inputs.lrs[k], wd=inputs.wds[k], t=inputs.ts[k], initial_lr=initial[k], **shape)
        if flags:
            name = inputs.names[k] if inputs.names is not None else str(index)
            values.update((flag, name.endswith(tuple(suffixes))) for flag, suffixes in flags.items())
        if skip is not None and skip(**values):
            continue
        present = module.states_present(**engine.hyperparameters, **(shape or MATRIX_INPUTS))
        arrays = dict(zip(present, state_parts(state, len(present))))
        for name, part in arrays.items():
            if quantized.is_stored(weight, part):
                arrays[name] = quantized.load(part)
        for name in [n for n in arrays if engine.states[n].host_scalar]:
            values[name] = float(arrays.pop(name))
        variant = group["variants"][group["conditions"](**values)]
        try:
            scalars = variant["host"](**values)
        except (ArithmeticError, ValueError) as err:
            raise StepError(f"{engine.name}: cannot compute this step's group partials: {err}") from err
        xp = array_module(weight)
        if isinstance(grad, RowSparse):
            grad = grad.todense()
        written = {partial: xp.zeros((), dtype=numpy.float64) for _, _, partial in group["reductions"]}
        if weight.ndim == 0:    # (as Engine.execute: 0-d temporaries would be scalars)
            weight, grad = weight.reshape(1), grad.reshape(1)
            arrays = {n: a if engine.states[n].shape == "scalar" else a.reshape(1) for n, a in arrays.items()}
        with quiet(xp):
            variant["kernel"](xp, weight=weight, grad=grad, **arrays, **written, **scalars)
        for _, value, partial in group["reductions"]:
            out[value].append(float(written[partial]))
    return out


def values(engine, indices, weights, grads, states, inputs, group_states, reduce=None):
    """The step inputs of a group's reductions ({`_group<k>`: float}), from these parameters'
    partials; `reduce(ops, values)` combines them across ranks (sharded runs)."""
    found = partials(engine, indices, weights, grads, states, inputs, group_states)
    ops = [op for op, _, _ in engine.module.GROUP["reductions"]]
    combined = [combine(op, found[value]) for op, value, _ in engine.module.GROUP["reductions"]]
    if reduce is not None:
        combined = reduce(ops, combined)
    return dict(zip(found, combined))


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
