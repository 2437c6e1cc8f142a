"""A step's host scalars: what a frontend gives the engine, and what each parameter gets.

The generated host functions (`host_<variant>`) are pure functions of their inputs, so
parameters with equal inputs (lr, wd, t, the initial lr, name flags, and the shape inputs
where the rule reads them; no host scalar states) share one evaluation: one per (variant, lr, wd, t)
group instead of one per parameter. Keys compare floats by value and by the sign of zero,
so a shared result is the one each parameter would have got.
"""
import inspect
import math
from typing import NamedTuple, Sequence

from ..noise import Noise
from .layout import MATRIX_INPUTS, PreconditionError, reads_shape, shape_inputs, state_parts


class StepInputs(NamedTuple):
    """What a frontend gives the engine for one step of a list of parameters."""

    ts: Sequence[int]           # each parameter's update count, this step included
    lrs: Sequence[float]        # each parameter's learning rate
    wds: Sequence[float]        # each parameter's weight decay
    rescale_grad: float = 1.0
    clip_gradient: float | None = None
    names: Sequence[str] | None = None   # each parameter's name (name flags); None: str(index)
    initial_lrs: Sequence[float] | None = None   # each parameter's first learning rate; None: lrs
    group: dict | None = None   # rules with group reductions: the group states' values and the
                                # group reductions' values (`_group<k>`, engine/group.py)


class HostResult(NamedTuple):
    variant: dict               # the module's VARIANTS entry
    scalars: dict               # float64 kernel scalars
    updates: dict               # new values of the host scalar states


class Plan(NamedTuple):
    """One parameter's planned step."""

    variant: dict               # the module's VARIANTS entry
    arrays: list                # the state arrays the kernel takes (host scalar states left out)
    scalars: dict               # kernel scalars (and `rng` for rules that draw noise)
    updates: dict               # new values of the host scalar states, written after the kernel
    scalar_arrays: dict         # host scalar state name -> its 0-d array
    t: int                      # the update count (noise is keyed by it)
    index: object = None        # the parameter's index (noise and stochastic rounding are keyed by it)
    group_updates: dict = {}    # new values of the group states (the same for every parameter)


def exact(value):
    """A float as a dict key that tells 0.0 from -0.0 (equal, but not the same input)."""
    return (value, math.copysign(1.0, value)) if value == 0 else value


def host_result(engine, inputs, index, requires, skip):
    """The HostResult of one parameter's inputs, None when the rule's skip_if holds;
    PreconditionError when its `requires` does not hold. `requires` and `skip` are the
    module's functions (None where the rule has none)."""
    module = engine.module
    if requires is not None and not requires(**inputs):
        arguments = [p for p in inspect.signature(requires).parameters if p != "_"]
        got = ", ".join(f"{n}={inputs[n]!r}" for n in arguments)
        raise PreconditionError(f"{engine.name} requires {engine.spec['requires']}; parameter {index!r} has {got}")
    if skip is not None and skip(**inputs):
        return None
    variant = module.VARIANTS[module.conditions(**inputs)]
    scalars = variant["host"](**inputs)
    updates = {name: scalars[key] for name, key in variant["updates"].items()}
    for host_only in variant["host_only"]:
        del scalars[host_only]
    return HostResult(variant, scalars, updates)


def plans(engine, indices, weights, states, inputs):
    """The Plan of every parameter (None where the rule's skip_if holds)."""
    module, spec = engine.module, engine.spec
    by_shape = reads_shape(module)
    base = dict(engine.hyperparameters, rescale_grad=inputs.rescale_grad, clip_gradient=inputs.clip_gradient,
                **(inputs.group or {}))
    flags = spec["name_flags"]
    namespace = vars(module)    # a dict lookup: a missing module attribute costs an exception
    requires = namespace.get("requires")
    skip = namespace.get("skip")
    names = inputs.names
    by_initial = inputs.initial_lrs is not None     # (else every initial lr is the lr: no key part)
    initial = inputs.initial_lrs if by_initial else inputs.lrs
    layouts = {}    # shape key -> (shape inputs, present states, host scalar states)
    shared = {}
    out = []
    for k, (index, weight, state, t, lr, wd, lr0) in enumerate(zip(indices, weights, states, inputs.ts, inputs.lrs,
                                                                   inputs.wds, initial)):
        shape_key = (tuple(weight.shape), weight.dtype) if by_shape else None
        layout = layouts.get(shape_key)
        if layout is None:
            shape = shape_inputs(spec, weight) if by_shape else {}
            present = module.states_present(**engine.hyperparameters, **(shape or MATRIX_INPUTS))
            scalar_states = [name for name in present if engine.states[name].host_scalar]
            layout = layouts[shape_key] = (shape, present, scalar_states)
        shape, present, scalar_states = layout
        parts = state_parts(state, len(present))
        flagged = ()
        if flags:
            name = names[k] if names is not None else str(index)
            flagged = tuple(name.endswith(tuple(suffixes)) for suffixes in flags.values())
        key = None
        if not scalar_states:
            key = (exact(lr), exact(wd), t, flagged, shape_key, exact(lr0) if by_initial else None)
            if key in shared:
                out.append(bind(engine, shared[key], parts, present, scalar_states, index, t))
                continue
        values = dict(base, lr=lr, initial_lr=lr0, wd=wd, t=t, **shape)
        values.update(zip(flags, flagged))
        parts_by_name = dict(zip(present, parts))
        for name in scalar_states:
            values[name] = float(parts_by_name[name])
        result = host_result(engine, values, index, requires, skip)
        if key is not None:
            shared[key] = result
        out.append(bind(engine, result, parts, present, scalar_states, index, t))
    return out


def bind(engine, result, parts, present, scalar_states, index, t):
    """One parameter's Plan from a (shared) host result: its own state arrays and scalar
    state targets, and a noise stream of its own."""
    if result is None:
        return None
    variant, scalars, updates = result
    by_name = dict(zip(present, parts))
    arrays = [by_name[name] for name in variant["states"] if name not in scalar_states]
    if variant["noise"]:
        scalars = dict(scalars, rng=Noise(engine.hyperparameters["seed"], index, t))
    own = {name: value for name, value in updates.items() if name in by_name}
    group = {name: value for name, value in updates.items() if name not in by_name} if len(own) < len(updates) else {}
    return Plan(variant, arrays, scalars, own, {name: by_name[name] for name in own}, t, index, group)
