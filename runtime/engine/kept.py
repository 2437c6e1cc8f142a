"""Native CPU launches kept from one update to the next, for the same NumPy arrays.

After an update has run the full path (`Engine.check`, `native.applies`, a plan per
parameter, the table built by `launch_table.table`) and ran as one multi-tensor (or
single-tensor) launch, its table is kept by the engine (`KeptLaunches`, per list of
indices). A later update with the same indices reuses it when everything the table and
the full path's checks concluded still holds:

- the same weight objects and states holding the same array objects (None, an array or a
  tuple of arrays: the same tuple, or a new one of the same arrays; never a list, which may
  change its arrays under the same identity), the same present states for the rule's current
  hyperparameters, and for every weight and state array the shape, dtype and data address
  it had, still C-contiguous and writeable (the address is taken through the buffer
  protocol asking for a writeable C-contiguous buffer, which fails otherwise);
- every gradient (new objects are fine: backward makes new ones) a plain NumPy array of its
  weight's dtype and shape, C-contiguous, aligned, and sharing no memory with its weight or
  states;
- the native backend still chosen.

Nothing but the arrays is kept: the frontend counts the step and gives its inputs
(`StepInputs`) as on the full path, and the host scalars are planned (`Engine.plans`) once
per group of parameters with equal inputs (lr, wd, t and the bits of the host scalar
states, as NAdam's mu_product) instead of once per parameter, and written into the table's
scalar columns; new host scalar states are written after the kernel, as the full path
writes them. A plan choosing another variant or skipping part of the update leaves the
kept launch (`plan` returns False: the frontend restores its counts and takes the full
path). Whether a rule can keep launches at all is `qualifies(engine)`, the one rule every
API family asks (optforge.torch's group launches too, torch_frontend/launch_cache.py):
rules whose host scalars read more than that (shape inputs, name flags, noise), rules with
passes, device scalar states or row values never do, nor do master-copy updates.
"""
import ctypes
import itertools
import operator
import weakref

import numpy

from .. import validation
from ..backends import launch_table
from .layout import reads_input, reads_shape, states_fit
from .plans import StepInputs, exact

KEPT = 32           # kept launches per optimizer (one per distinct list of indices)
_SHAPE = operator.attrgetter("shape")
_DTYPE = operator.attrgetter("dtype")
_C_CONTIGUOUS = operator.attrgetter("flags.c_contiguous")
_WRITEABLE = operator.attrgetter("flags.writeable")


def _writable_addresses(arrays):
    """The data addresses of C-contiguous writeable arrays; None if any array is not one.
    (ctypes' from_buffer asks for a writeable C-contiguous buffer; NumPy refuses a buffer of
    bfloat16, whose arrays take the slower attribute checks.)"""
    try:
        return list(map(ctypes.addressof, map(ctypes.c_char.from_buffer, arrays)))
    except (TypeError, ValueError, BufferError):
        if not (all(map(_C_CONTIGUOUS, arrays)) and all(map(_WRITEABLE, arrays))):
            return None
        return [a.ctypes.data for a in arrays]


def _read_addresses(arrays):
    """The data addresses of C-contiguous arrays (read-only ones too); None otherwise."""
    try:
        return list(map(ctypes.addressof, map(ctypes.c_char.from_buffer, arrays)))
    except (TypeError, ValueError, BufferError):
        if not all(map(_C_CONTIGUOUS, arrays)):
            return None
        return [a.ctypes.data for a in arrays]


def qualifies(engine):
    """Whether a rule can keep launches at all (a property of the rule and its values)."""
    from ..backends import native    # imported on the first native update, not with optforge
    module, spec = engine.module, engine.spec
    if spec["name_flags"] or reads_shape(module) or reads_input(module, ("initial_lr",)):
        return False    # inputs that differ between parameters beyond lr, wd and t
    if hasattr(module, "GROUP"):
        return False    # group reductions: a partials stage before every step
    if engine.storage is not None:
        return False    # quantized states: a launch's table holds codes and absmax, not kept yet
    if any(m.shape in ("rows", "cols") or m.device_scalar for m in engine.states.values()):
        return False    # device scalars, row and column states: passes or per-tensor values
    if not native.has_kernels(module):
        return False
    return all(v["elementwise"] and not v["noise"] and not v["whole_tensor"] for v in module.VARIANTS.values())


class KeptLaunches:
    """An engine's kept launches, per list of indices (at most KEPT, the oldest dropped
    first; each holds its weights and states alive)."""

    def __init__(self, engine):
        self.engine = engine
        self.launches = {}      # tuple(indices) -> KeptLaunch, or weak references to the last weights
        self.rule_qualifies = None

    def __bool__(self):
        return bool(self.launches)

    def find(self, indices, weights, grads, states):
        """The kept launch of these indices when these arrays fit it (see the module
        docstring), else None (the full path)."""
        try:
            launch = self.launches.get(tuple(indices))
        except TypeError:   # an unhashable index: the full path reports it
            return None
        if not isinstance(launch, KeptLaunch) or not launch.fits(indices, weights, grads, states):
            return None
        return launch

    def keep(self, indices, weights, grads, states, plans):
        """After a native update on the full path: keep its launch when the same weights
        stepped before (so that views made anew for every update never pay for building
        one) and the update qualifies."""
        if self.rule_qualifies is None:
            self.rule_qualifies = qualifies(self.engine)
        if not self.rule_qualifies:
            return
        launches = self.launches
        try:
            key = tuple(indices)
            seen = launches.pop(key, None)
        except TypeError:
            return
        if isinstance(seen, KeptLaunch):
            same = len(seen.weights) == len(weights) and all(map(operator.is_, weights, seen.weights))
        else:
            same = isinstance(seen, list) and len(seen) == len(weights) \
                and all(map(operator.is_, weights, map(operator.call, seen)))
        entry = KeptLaunch.build(self.engine, indices, weights, grads, states, plans) if same else None
        if entry is None:   # an older launch of the same weights stays (each use checks it whole)
            entry = seen if same and isinstance(seen, KeptLaunch) else list(map(weakref.ref, weights))
        launches[key] = entry
        while len(launches) > KEPT:
            del launches[next(iter(launches))]

    def adopt(self, other):
        """Take over another engine's kept launches (they keep arrays only, valid for any
        hyperparameter values: the rule's qualification is asked again)."""
        self.launches = other.launches

    def clear(self):
        self.launches = {}


class KeptLaunch:
    """One update's native launch (see the module docstring)."""

    @classmethod
    def build(cls, engine, indices, weights, grads, states, plans):
        """The launch of an update that has just run the full path, or None when it does not
        qualify (several variants or dtypes, skipped or empty parameters, a state that is not
        None, an array or a tuple of arrays)."""
        from ..backends import native    # imported on the first native update, not with optforge
        if not weights or any(plan is None for plan in plans):
            return None
        dtype = weights[0].dtype
        if dtype not in native.DTYPES or not all(map(operator.eq, map(_DTYPE, weights), itertools.repeat(dtype))):
            return None
        if len({id(plan.variant) for plan in plans}) != 1:
            return None
        if not all(state is None or type(state) is numpy.ndarray
                   or (type(state) is tuple and all(type(s) is numpy.ndarray for s in state)) for state in states):
            return None     # a list may change its arrays under the same identity
        present = tuple(engine.present_states())
        # what Engine.check concludes, shown for these arrays (a launch does not check)
        if not (validation.pairs_fit(indices, weights, grads)
                and states_fit(weights, states, [engine.states[name] for name in present])):
            return None
        module = engine.module
        key = {id(v): k for k, v in module.VARIANTS.items()}[id(plans[0].variant)]
        meta = launch_table.metadata(module)
        variant = meta.VARIANTS[key]
        if variant["passes"] or variant.get("rows") or variant["noise"]:
            return None
        by_name = [dict(zip(present, () if s is None else (s,) if type(s) is numpy.ndarray else s)) for s in states]
        columns = [[own[name] for own in by_name] for name in variant["states"]]
        arrays = list(weights) + [a for column in columns for a in column]
        if not all(map(operator.attrgetter("size"), arrays)):
            return None
        host = [name for name in present if engine.states[name].host_scalar]
        host_columns = {name: [own[name] for own in by_name] for name in host}
        addresses = _writable_addresses(arrays + [a for column in host_columns.values() for a in column])
        grad_addresses = _read_addresses(grads)
        if addresses is None or grad_addresses is None:
            return None
        count = len(weights)
        pointers = numpy.array(addresses[:count] + grad_addresses + addresses[count:len(arrays)], dtype=numpy.uint64)
        pointers = pointers.reshape(2 + len(columns), count).T
        entries = [(row, w.size, plan.scalars, None, None) for row, w, plan in zip(pointers, weights, plans)]
        table = launch_table.table(variant, entries, meta.CHUNK)
        return cls(engine, indices, weights, states, present, arrays, addresses, variant, key, dtype, table,
                   host_columns)

    def __init__(self, engine, indices, weights, states, present, arrays, addresses, variant, key, dtype, table,
                 host_columns):
        count = len(weights)
        self.host_columns = host_columns    # host scalar state name -> its 0-d arrays
        self.kernel_arrays = len(arrays)     # weights and kernel states
        arrays = arrays + [a for column in host_columns.values() for a in column]
        self.engine = engine
        self.module = engine.module
        self.indices = list(indices)
        self.weights = list(weights)
        self.states = list(states)
        self.state_parts = _parts_by_identity(states)
        self.present = present
        self.arrays = arrays
        self.shapes = list(map(_SHAPE, arrays))
        self.weight_shapes = self.shapes[:count]
        self.dtypes = list(map(_DTYPE, arrays))
        self.addresses = addresses
        self.dtype = dtype
        self.variant = variant
        self.module_variant = self.module.VARIANTS[key]
        self.suffix = launch_table.storage(dtype)
        self.table = table
        self.scalars_at = table.words.shape[1] - len(variant["scalars"])
        self.numel = [int(w.size) for w in weights]
        self.nbytes = numpy.array(self.numel, dtype=numpy.uint64) * numpy.uint64(dtype.itemsize)
        self.itemsize = numpy.uint64(dtype.itemsize)
        # (parameters, arrays) first byte and last byte + 1 of each parameter's weight and states
        owned = numpy.array(addresses, dtype=numpy.uint64).reshape(-1, count).T
        sizes = numpy.array(list(map(operator.attrgetter("nbytes"), arrays)), dtype=numpy.uint64).reshape(-1, count).T
        self.owned_lo, self.owned_hi = owned, owned + sizes
        self.grad_addresses = None      # the last gradients' addresses shown not to overlap...
        self.grad_column = None         # ...as the table's column
        self.uses = 0                   # updates served

    def fits(self, indices, weights, grads, states):
        """Whether this update's arrays are this launch's (see the module docstring): then
        everything `Engine.check` and the native backend's checks concluded holds."""
        from ..backends import native    # imported on the first native update, not with optforge
        count = len(self.weights)
        if len(weights) != count or len(grads) != count or len(states) != count or indices != self.indices:
            return False
        if not all(map(operator.is_, weights, self.weights)):
            return False
        if not all(map(operator.is_, states, self.states)):
            if _parts_by_identity(states) != self.state_parts:
                return False
            self.states = list(states)      # new tuples of the same arrays (made anew each update)
        if native.backend() != "native" or tuple(self.engine.present_states()) != self.present:
            return False
        arrays = self.arrays
        if list(map(_SHAPE, arrays)) != self.shapes or list(map(_DTYPE, arrays)) != self.dtypes \
                or _writable_addresses(arrays) != self.addresses:
            return False    # reshaped, retyped, given other memory, made read-only or non-contiguous
        ndarray, dtype = numpy.ndarray, self.dtype
        if not (all(map(operator.is_, map(type, grads), itertools.repeat(ndarray)))
                and all(map(operator.eq, map(_DTYPE, grads), itertools.repeat(dtype)))
                and list(map(_SHAPE, grads)) == self.weight_shapes):
            return False    # sparse, of another type, dtype or shape: the full path reports it
        grad_addresses = _read_addresses(grads)
        if grad_addresses is None:
            return False
        if grad_addresses != self.grad_addresses:
            lo = numpy.array(grad_addresses, dtype=numpy.uint64)
            hi = lo + self.nbytes
            if (lo % self.itemsize).any() or ((lo[:, None] < self.owned_hi) & (self.owned_lo < hi[:, None])).any():
                return False    # unaligned, or sharing memory with its own weight or states
            self.grad_addresses, self.grad_column = grad_addresses, lo
        self.pending = (list(weights), list(states))
        return True

    def plan(self, inputs):
        """Plan the step `fits` accepted for `StepInputs`: True, or False when the plans leave
        this launch (another variant, a skipped parameter, new host scalar states: the
        frontend then restores its counts and takes the full path). Errors planning the
        step raise as on the full path."""
        weights, states = self.pending
        planned = _group_plans(self.engine, self.indices, weights, states, inputs, self.host_columns)
        plans, groups = planned
        if any(plan is None or plan.variant is not self.module_variant or not set(plan.updates) <= set(self.host_columns)
               for plan in plans):
            return False
        if len(self.weights) > 1:
            words = numpy.array([launch_table.scalar_values(self.variant, plan.scalars) for plan in plans],
                                dtype=numpy.float64).view(numpy.uint64)
            self.planned = (plans, groups, words)
        else:
            self.planned = (plans, groups, None)
        return True

    def run(self):
        """The kernel through the kept table, then the new host scalar states."""
        from ..backends import native
        plans, groups, words = self.planned
        variant, count = self.variant, len(self.weights)
        lib = native.library(self.module)
        threads = ctypes.c_int(native.num_threads())
        if count == 1:      # the single-tensor entry point, as the full path calls it
            pointers = [self.addresses[0], self.grad_addresses[0]] + self.addresses[1:self.kernel_arrays]
            native._single(lib, variant, self.suffix, pointers, self.numel[0], plans[0].scalars, None, None, threads)
        else:
            table = self.table.words
            table[:, 1] = self.grad_column
            table[:, self.scalars_at:] = words[0] if groups is None else words[groups]
            getattr(lib, variant["kernels"][self.suffix] + "_multi")(
                ctypes.c_void_p(table.ctypes.data), ctypes.c_int(count),
                ctypes.c_longlong(self.table.chunks), threads)
        for name in plans[0].updates:   # the variant's new host scalar states (every group has the same)
            column = self.host_columns[name]
            if groups is None:
                value = plans[0].updates[name]
                for array in column:
                    array[...] = value
            else:
                for array, group in zip(column, groups.tolist()):
                    array[...] = plans[group].updates[name]
        self.uses += 1


class _Same:
    """An object equal only to itself, as `==` of lists compares it (arrays by identity)."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return type(other) is _Same and other.value is self.value

    __hash__ = None


def _parts_by_identity(states):
    """The arrays of the states (None, arrays or tuples of them) with each state's length,
    comparable with `==` by identity; None when a state is anything else (a list may
    change its arrays under the same identity)."""
    out = []
    for state in states:
        if type(state) is tuple:
            out.append(len(state))
            out.extend(map(_Same, state))
        elif state is None or type(state) is numpy.ndarray:
            out.append(_Same(state))
        else:
            return None
    return out


def _first(values, picked):
    """The entries `picked` of a per-parameter input, or None where it has none."""
    return None if values is None else [values[k] for k in picked]


def _group_plans(engine, indices, weights, states, inputs, host_columns):
    """`Engine.plans` of one parameter per group of equal inputs: lr, wd, t and the bits of
    each host scalar state (the rule reads nothing else that differs between parameters:
    see `qualifies`), and each parameter's group (None: one group)."""
    if len(indices) == 1:
        return engine.plans(indices, weights, states, inputs), None
    ts, lrs, wds = inputs.ts, inputs.lrs, inputs.wds
    bits = [numpy.array(column, dtype=numpy.float64).view(numpy.uint64) for column in host_columns.values()]
    if all(map(operator.is_, lrs, itertools.repeat(lrs[0]))) and all(map(operator.is_, wds, itertools.repeat(wds[0]))) \
            and ts.count(ts[0]) == len(ts) and all((column == column[0]).all() for column in bits):
        one = StepInputs(ts[:1], lrs[:1], wds[:1], inputs.rescale_grad, inputs.clip_gradient,
                         _first(inputs.names, [0]), _first(inputs.initial_lrs, [0]))
        return engine.plans(indices[:1], weights[:1], states[:1], one), None
    first = {}      # (lr, wd, t, host scalar state bits) -> (group, its first parameter)
    groups = [first.setdefault(key, (len(first), k))[0]
              for k, key in enumerate(zip(map(exact, lrs), map(exact, wds), ts, *(c.tolist() for c in bits)))]
    reps = [k for _, k in first.values()]
    some = StepInputs([ts[k] for k in reps], [lrs[k] for k in reps], [wds[k] for k in reps],
                      inputs.rescale_grad, inputs.clip_gradient, _first(inputs.names, reps),
                      _first(inputs.initial_lrs, reps))
    plans = engine.plans([indices[k] for k in reps], [weights[k] for k in reps], [states[k] for k in reps], some)
    return plans, numpy.array(groups, dtype=numpy.intp)
