"""A native CPU launch kept from one update to the next, for the same NumPy arrays.

After an update has run the full path (`SpecOptimizer._check`, `native.applies`, a plan
per parameter, the table built by `cuda_launch.table`) and ran as one multi-tensor (or
single-tensor) launch, its table is kept. A later update with the same indices reuses it
when everything the table and the full path's checks concluded still holds:

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

Nothing but the arrays is kept: the step is counted (`Optimizer._update_count`), its
learning rates and weight decays read (`_get_lrs`, `_get_wds`: scheduler, multipliers) and
its host scalars planned (`SpecOptimizer._plans`) as on the full path, but once per group of
parameters with equal inputs (lr, wd, t and the bits of the host scalar states, as NAdam's
mu_product) instead of once per parameter, and written into the table's scalar columns;
new host scalar states are written after the kernel, as the full path writes them. A plan
choosing another variant or skipping part of the update takes the full path (the counts
restored first). Rules whose host scalars read more than that (shape inputs, name flags,
noise), rules with passes, device scalar states or row values, and master-copy updates
never keep a launch.
"""
import ctypes
import itertools
import operator

import numpy

from . import cuda_launch

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


def qualifies(optimizer):
    """Whether this optimizer's rule can keep launches at all (a property of the rule)."""
    from . import native    # imported on the first native update, not with optforge
    from ..spec_optimizer import reads_shape
    module, spec = optimizer._module, optimizer.SPEC
    if spec["name_flags"] or spec["lr_before_count"] or reads_shape(module):
        return False
    if any(m["shape"] in ("rows", "cols") or m["shape"] == "scalar" and m.get("device") for m in spec["states"]):
        return False    # device scalars, row and column states: passes or per-tensor values
    if not native.has_kernels(module):
        return False
    return all(v["elementwise"] and not v["noise"] and not v["whole_tensor"] for v in module.VARIANTS.values())


class KeptLaunch:
    """One update's native launch (see the module docstring)."""

    @classmethod
    def build(cls, optimizer, indices, weights, grads, states, plans):
        """The launch of an update that has just run the full path, or None when it does not
        qualify (several variants or dtypes, skipped or empty parameters, a state that is not
        None, an array or a tuple of arrays)."""
        from . import native    # imported on the first native update, not with optforge
        from ..spec_optimizer import _states_fit
        from .. import validation
        if not weights or any(plan is None for plan in plans):
            return None
        dtype = weights[0].dtype
        if dtype not in native.DTYPES or not all(map(operator.eq, map(_DTYPE, weights), itertools.repeat(dtype))):
            return None
        if len({id(plan[0]) for plan in plans}) != 1:
            return None
        if not all(state is None or type(state) is numpy.ndarray
                   or (type(state) is tuple and all(type(s) is numpy.ndarray for s in state)) for state in states):
            return None     # a list may change its arrays under the same identity
        present = tuple(optimizer._present_states())
        metas = {m["name"]: m for m in optimizer.SPEC["states"]}
        # what SpecOptimizer._check concludes, shown for these arrays (fused_step does not check)
        if not (validation.pairs_fit(indices, weights, grads)
                and _states_fit(weights, states, [(name, metas[name]) for name in present])):
            return None
        module = optimizer._module
        key = {id(v): k for k, v in module.VARIANTS.items()}[id(plans[0][0])]
        meta = cuda_launch.metadata(module)
        variant = meta.VARIANTS[key]
        if variant["passes"] or variant.get("rows") or variant["noise"]:
            return None
        by_name = [dict(zip(present, () if s is None else (s,) if type(s) is numpy.ndarray else s)) for s in states]
        columns = [[own[name] for own in by_name] for name in variant["states"]]
        arrays = list(weights) + [a for column in columns for a in column]
        if not all(map(operator.attrgetter("size"), arrays)):
            return None
        host = [m["name"] for m in optimizer.SPEC["states"] if m["shape"] == "scalar" and m["name"] in present]
        host_columns = {name: [own[name] for own in by_name] for name in host}
        addresses = _writable_addresses(arrays + [a for column in host_columns.values() for a in column])
        grad_addresses = _read_addresses(grads)
        if addresses is None or grad_addresses is None:
            return None
        count = len(weights)
        pointers = numpy.array(addresses[:count] + grad_addresses + addresses[count:len(arrays)], dtype=numpy.uint64)
        pointers = pointers.reshape(2 + len(columns), count).T
        entries = [(row, w.size, plan[2], None, None) for row, w, plan in zip(pointers, weights, plans)]
        table = cuda_launch.table(variant, entries, meta.CHUNK)
        return cls(optimizer, indices, weights, states, present, arrays, addresses, variant, key, dtype, table,
                   host_columns)

    def __init__(self, optimizer, indices, weights, states, present, arrays, addresses, variant, key, dtype, table,
                 host_columns):
        count = len(weights)
        self.host_columns = host_columns    # host scalar state name -> its 0-d arrays
        self.kernel_arrays = len(arrays)     # weights and kernel states
        arrays = arrays + [a for column in host_columns.values() for a in column]
        self.module = optimizer._module
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
        self.suffix = cuda_launch.storage(dtype)
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

    def prepare(self, optimizer, indices, weights, grads, states):
        """A `PreparedStep` of this update through the kept table, or None: take the full path
        (then nothing has changed). Errors planning the step raise as on the full path."""
        from . import native    # imported on the first native update, not with optforge
        count = len(self.weights)
        if len(weights) != count or len(grads) != count or len(states) != count or indices != self.indices:
            return None
        if not all(map(operator.is_, weights, self.weights)):
            return None
        if not all(map(operator.is_, states, self.states)):
            if _parts_by_identity(states) != self.state_parts:
                return None
            self.states = list(states)      # new tuples of the same arrays (made anew each update)
        if native.backend() != "native" or tuple(optimizer._present_states()) != self.present:
            return None
        arrays = self.arrays
        if list(map(_SHAPE, arrays)) != self.shapes or list(map(_DTYPE, arrays)) != self.dtypes \
                or _writable_addresses(arrays) != self.addresses:
            return None     # reshaped, retyped, given other memory, made read-only or non-contiguous
        ndarray, dtype = numpy.ndarray, self.dtype
        if not (all(map(operator.is_, map(type, grads), itertools.repeat(ndarray)))
                and all(map(operator.eq, map(_DTYPE, grads), itertools.repeat(dtype)))
                and list(map(_SHAPE, grads)) == self.weight_shapes):
            return None     # sparse, of another type, dtype or shape: the full path reports it
        grad_addresses = _read_addresses(grads)
        if grad_addresses is None:
            return None
        if grad_addresses != self.grad_addresses:
            lo = numpy.array(grad_addresses, dtype=numpy.uint64)
            hi = lo + self.nbytes
            if (lo % self.itemsize).any() or ((lo[:, None] < self.owned_hi) & (self.owned_lo < hi[:, None])).any():
                return None     # unaligned, or sharing memory with its own weight or states
            self.grad_addresses, self.grad_column = grad_addresses, lo
        grad_column = self.grad_column
        lib = native.library(self.module)
        planned = _plan(optimizer, indices, weights, states, self.module_variant, self.host_columns)
        if planned is None:
            return None
        prepared, plans, groups = planned
        variant = self.variant
        if count > 1:
            words = numpy.array([cuda_launch.scalar_values(variant, plan[2]) for plan in plans],
                                dtype=numpy.float64).view(numpy.uint64)

        def run():
            threads = ctypes.c_int(native.num_threads())
            if count == 1:      # the single-tensor entry point, as the full path calls it
                pointers = [self.addresses[0], grad_addresses[0]] + self.addresses[1:self.kernel_arrays]
                native._single(lib, variant, self.suffix, pointers, self.numel[0], plans[0][2], None, None, threads)
            else:
                table = self.table.words
                table[:, 1] = grad_column
                table[:, self.scalars_at:] = words[0] if groups is None else words[groups]
                getattr(lib, variant["kernels"][self.suffix] + "_multi")(
                    ctypes.c_void_p(table.ctypes.data), ctypes.c_int(count),
                    ctypes.c_longlong(self.table.chunks), threads)
            for name in plans[0][3]:   # the variant's new host scalar states (every group has the same)
                column = self.host_columns[name]
                if groups is None:
                    value = plans[0][3][name]
                    for array in column:
                        array[...] = value
                else:
                    for array, group in zip(column, groups.tolist()):
                        array[...] = plans[group][3][name]
            self.uses += 1

        prepared.kernels = run
        return prepared


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


def _plan(optimizer, indices, weights, states, module_variant, host_columns):
    """Count the update and plan its host scalars once per (lr, wd, t) group: (prepared step,
    the plan of each group, each parameter's group or None when there is one group), or None
    when the plans leave the kept launch (another variant, a skipped parameter, new scalar
    states: the counts are restored). Planning errors raise as `SpecOptimizer._prepare`
    raises them."""
    prepared = optimizer._count_and_plan(indices, lambda lrs, wds: _group_plans(
        optimizer, indices, weights, states, lrs, wds, host_columns))
    plans, groups = prepared.plans
    if any(plan is None or plan[0] is not module_variant or not set(plan[3]) <= set(host_columns) for plan in plans):
        prepared.cancel()
        return None
    return prepared, plans, groups


def _group_plans(optimizer, indices, weights, states, lrs, wds, host_columns):
    """`SpecOptimizer._plans` of one parameter per group of equal inputs: lr, wd, t and the
    bits of each host scalar state (the rule reads nothing else that differs between
    parameters: see `qualifies`), and each parameter's group (None: one group)."""
    from ..spec_optimizer import _exact
    if len(indices) == 1:
        return optimizer._plans(indices, weights, states, lrs, wds), None
    ts = list(map(optimizer._index_update_count.__getitem__, indices))
    bits = [numpy.array(column, dtype=numpy.float64).view(numpy.uint64) for column in host_columns.values()]
    if all(map(operator.is_, lrs, itertools.repeat(lrs[0]))) and all(map(operator.is_, wds, itertools.repeat(wds[0]))) \
            and ts.count(ts[0]) == len(ts) and all((column == column[0]).all() for column in bits):
        return optimizer._plans(indices[:1], weights[:1], states[:1], lrs[:1], wds[:1]), None
    first = {}      # (lr, wd, t, host scalar state bits) -> (group, its first parameter)
    groups = [first.setdefault(key, (len(first), k))[0]
              for k, key in enumerate(zip(map(_exact, lrs), map(_exact, wds), ts, *(c.tolist() for c in bits)))]
    reps = [k for _, k in first.values()]
    plans = optimizer._plans([indices[k] for k in reps], [weights[k] for k in reps], [states[k] for k in reps],
                             [lrs[k] for k in reps], [wds[k] for k in reps])
    return plans, numpy.array(groups, dtype=numpy.intp)
