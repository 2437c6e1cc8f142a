"""One run of a rule through one target: the final weights and states after the schedule.

A run steps every parameter of `scenario.draw`'s data through `scenario.SCHEDULE` with one
API family and one backend, and returns every array after every step (as float64 copies)
plus what it observed: the variants the rule's conditions chose, and the proof that the
target's kernels ran (`NotRun` when they could not: no compiler, no torch, no kernels).
"""
import contextlib
import os
import re
from dataclasses import dataclass, field
from unittest import mock

import numpy as np

from ..conventions.arguments import grouped
from ..runtime.backends import native, native_matrix
from ..runtime.engine import PreconditionError
from . import scenario


class NotRun(Exception):
    """The target cannot run here (its reason is the message)."""


class Refused(Exception):
    """The rule refuses this setting or shape (`requires`, a state that needs an axis)."""


@dataclass
class Result:
    steps: list                     # per step: [per parameter: [weight, state parts...]] (float64)
    initial: list = field(default_factory=list)     # the weights before the first step (float64)
    variants: set = field(default_factory=set)
    kernels: int = 0                # kernel launches observed
    groups: list = field(default_factory=list)      # per step: [per group holder: {group state: float}]


def has_group(cls):
    """Whether the rule has group reductions or group states (runtime/engine/group.py)."""
    return hasattr(cls._module, "GROUP")


def layouts(count):
    """The param groups a rule with group reductions is verified in, as tuples of parameter
    indices: every parameter in one group, and groups of unequal sizes (1, 2 and the rest) of
    tensors of unequal sizes. (One parameter per group is the single-tensor `update`.)"""
    every = tuple(range(count))
    mixed = tuple(g for g in (every[:1], every[1:3], every[3:]) if g)
    return ((every,), mixed) if len(mixed) > 1 else ((every,),)


def layout_text(layout):
    return "groups of " + "+".join(str(len(g)) for g in layout)


def _parts(state):
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def _snapshot(weights, states, host=lambda a: a):
    return [[np.array(host(w), dtype=np.float64)] + [np.array(host(s), dtype=np.float64) for s in _parts(st)]
            for w, st in zip(weights, states)]


@contextlib.contextmanager
def _watch_variants(module, seen):
    conditions = module.conditions

    def spy(**inputs):
        key = conditions(**inputs)
        seen.add(key)
        return key
    with mock.patch.object(module, "conditions", spy):
        yield


@contextlib.contextmanager
def _native_demanded():
    old = os.environ.get(native.BACKEND_ENV)
    os.environ[native.BACKEND_ENV] = "native"
    try:
        yield
    finally:
        if old is None:
            del os.environ[native.BACKEND_ENV]
        else:
            os.environ[native.BACKEND_ENV] = old


@contextlib.contextmanager
def _count_native(result):
    execute, run = native.execute, native_matrix.run

    def counted_execute(*args, **kwargs):
        result.kernels += 1
        return execute(*args, **kwargs)

    def counted_run(*args, **kwargs):
        ran = run(*args, **kwargs)
        result.kernels += bool(ran)
        return ran
    with mock.patch.object(native, "execute", counted_execute), \
            mock.patch.object(native_matrix, "run", counted_run):
        yield


def mxnet_run(cls, hyper, shapes, dtype, seed, fused, multi, device=None, groups=None):
    """The MXNet-style family: `update` per parameter (multi=False) or for all at once, with
    `step` (fused=False: the NumPy reference) or `fused_step`. `device`: a
    `host_device.HostLibraries` to run the CUDA kernels compiled for the host. groups (with
    multi): one `update` per tuple of parameter indices (`layouts`), each call a param group
    of a rule with group reductions, every call updating the optimizer's group states."""
    from . import host_device
    steps = scenario.SCHEDULE
    weights, grads = scenario.draw(seed, shapes, dtype, len(steps))
    first = steps[0]
    try:
        opt = cls(use_fused_step=fused, begin_num_update=scenario.BEGIN_NUM_UPDATE, learning_rate=first.lr,
                  **grouped(cls.SPEC, hyper))
        states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    except ValueError as err:       # a PreconditionError (requires) among them
        raise Refused(str(err)) from None
    result = Result([], [np.array(w, dtype=np.float64) for w in weights])
    matrix = bool(cls.SPEC.get("matrix"))
    wrap, host = (lambda a: a), (lambda a: a)
    if device is not None and not matrix:
        wrap, host = host_device.DeviceArray, host_device.on_host
        weights = [wrap(w) for w in weights]
        host_parts = [opt.engine.states[n].host_scalar for n in opt.engine.present_states()]
        states = [host_device.on_device(s, host_parts) for s in states]
    indices = list(range(len(shapes)))
    calls = [list(g) for g in groups] if groups is not None else [indices]
    context = contextlib.ExitStack()
    with context:
        context.enter_context(_watch_variants(cls._module, result.variants))
        if fused and device is None:
            context.enter_context(_native_demanded())
            context.enter_context(_count_native(result))
        if device is not None:
            context.enter_context(host_device.host_cuda_backend(device))
        wd_allowed = _wd_allowed(cls)
        for step, step_grads in zip(steps, grads):
            opt.lr, opt.rescale_grad, opt.clip_gradient = step.lr, step.rescale_grad, step.clip_gradient
            opt.wd = step.wd if wd_allowed else 0.0
            step_grads = [wrap(g) for g in step_grads]
            with np.errstate(all="ignore"):
                try:
                    if multi:
                        for call in calls:
                            opt.update(call, [weights[i] for i in call], [step_grads[i] for i in call],
                                       [states[i] for i in call])
                    else:
                        for i in indices:
                            opt.update(i, weights[i], step_grads[i], states[i])
                except PreconditionError as err:
                    raise Refused(str(err)) from None
            result.steps.append(_snapshot(weights, states, host))
            if has_group(cls):
                result.groups.append([dict(opt.group_states)])
    return result


def _wd_allowed(cls):
    """Rules that require wd == 0 (GroupAdaGrad, SparseAdam) run their schedule without it."""
    return re.search(r"\bwd\b", cls.SPEC.get("requires") or "") is None


def torch_run(cls, hyper, shapes, dtype, seed, native=True, groups=None):
    """optforge.torch: the class built from the same spec, on CPU tensors, the schedule's lr
    and weight decay set in the group before each step (torch has no rescale_grad,
    clip_gradient or begin_num_update: compare with `torch_reference`). native: the rule has
    native kernels, which must then run. groups: one param group per tuple of parameter
    indices (`layouts`), else one for all."""
    try:
        import torch
        from ..torch.classes import torch_class
    except ImportError as err:
        raise NotRun(f"torch is not installed ({err})") from None
    from ..conventions.arguments import keywords
    steps = scenario.SCHEDULE
    weights, grads = scenario.draw(seed, shapes, dtype, len(steps))
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    arguments = {}
    for keyword, names in keywords(cls.SPEC):
        values = tuple(hyper[n] for n in names if n in hyper)
        if len(values) == len(names):
            arguments[keyword] = values if len(names) > 1 else values[0]
    wd_allowed = _wd_allowed(cls)
    param_groups = params if groups is None else [{"params": [params[i] for i in g]} for g in groups]
    try:
        opt = torch_class(cls)(param_groups, lr=steps[0].lr, **arguments)
    except ValueError as err:
        raise Refused(str(err)) from None
    result = Result([])
    names = [m["name"] for m in cls.SPEC["states"] if m["shape"] == "group"]
    with _watch_variants(cls._module, result.variants), _count_native(result), \
            (_native_demanded() if native else contextlib.nullcontext()):
        for step, step_grads in zip(steps, grads):
            for group in opt.param_groups:
                group["lr"], group["weight_decay"] = step.lr, step.wd if wd_allowed else 0.0
            for p, g in zip(params, step_grads):
                p.grad = torch.from_numpy(g.copy())
            with np.errstate(all="ignore"):
                try:
                    opt.step()
                except PreconditionError as err:
                    raise Refused(str(err)) from None
            result.steps.append(_torch_snapshot(opt, params, cls))
            if has_group(cls):
                result.groups.append([{n: float(group[n]) for n in names} for group in opt.param_groups])
    return result


def _torch_host_scalar_dtype(cls):
    """The dtype optforge.torch keeps cls's host scalar states in: torch's scalar dtype
    (float32) for a class named as torch.optim's (NAdam's mu_product), else float64."""
    try:
        from ..torch.classes import torch_class
    except ImportError:     # no torch: torch_run reports the target as not run
        return np.float64
    return np.float32 if torch_class(cls).torch_name is not None else np.float64


def _with_scalars(state, present, engine, dtype):
    """A state with its host scalar arrays in `dtype` (the engine takes any 0-d array)."""
    parts = [np.array(part, dtype=dtype) if engine.states[name].host_scalar else part
             for name, part in zip(present, _parts(state))]
    return None if not parts else parts[0] if len(parts) == 1 else tuple(parts)


def _torch_snapshot(opt, params, cls):
    spec_states = [m["name"] for m in cls.SPEC["states"]]
    out = []
    for p in params:
        state = opt.state[p]
        arrays = [np.array(p.detach().numpy(), dtype=np.float64)]
        arrays += [np.array(state[n].detach().numpy(), dtype=np.float64) for n in spec_states if n in state]
        out.append(arrays)
    return out


def torch_reference(cls, hyper, shapes, dtype, seed, groups=None):
    """`step` with what optforge.torch passes its engine: no rescaling or clipping, t from 1.
    groups (`layouts`): one optimizer per param group (each keeps its own group states, as
    each of torch's param groups does), one `update` each."""
    steps = scenario.SCHEDULE
    weights, grads = scenario.draw(seed, shapes, dtype, len(steps))
    groups = groups if groups is not None else (tuple(range(len(shapes))),)
    try:
        opts = [cls(use_fused_step=False, learning_rate=steps[0].lr, **grouped(cls.SPEC, hyper)) for _ in groups]
        states = [None] * len(weights)
        for opt, group in zip(opts, groups):
            for i in group:
                states[i] = opt.create_state(i, weights[i])
    except ValueError as err:
        raise Refused(str(err)) from None
    wd_allowed = _wd_allowed(cls)
    engine = opts[0].engine
    present = list(engine.present_states())
    scalar_dtype = _torch_host_scalar_dtype(cls)
    if scalar_dtype != np.float64:     # host scalar states kept as optforge.torch keeps them
        states = [_with_scalars(st, present, engine, scalar_dtype) for st in states]
    result = Result([], [np.array(w, dtype=np.float64) for w in weights])
    with _watch_variants(cls._module, result.variants):
        for step, step_grads in zip(steps, grads):
            for opt, group in zip(opts, groups):
                opt.lr, opt.wd = step.lr, step.wd if wd_allowed else 0.0
                with np.errstate(all="ignore"):
                    opt.update(list(group), [weights[i] for i in group], [step_grads[i] for i in group],
                               [states[i] for i in group])
            snap = []
            for w, st in zip(weights, states):
                parts = dict(zip(present, _parts(st)))
                snap.append([np.array(w, dtype=np.float64)] +
                            [np.array(parts[m["name"]], dtype=np.float64) for m in cls.SPEC["states"]
                             if m["name"] in parts])
            result.steps.append(snap)
            if has_group(cls):
                result.groups.append([dict(opt.group_states) for opt in opts])
    return result
