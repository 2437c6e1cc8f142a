"""A parameter group's native CPU launch, kept from one step to the next.

After a step of a group has run the full path (every array and state checked, the native
kernels applied), the group's multi-tensor table (pointers of parameters and states,
sizes, first chunks) is kept. A later step reuses it only when everything the table and
the checks depend on is as it was:

- the group holds the same parameter objects, each with the data pointer, shape, dtype and
  contiguity it had (`param.data = ...` falls back);
- each state is the same tensor object with the data pointer and shape it had (a loaded
  state dict or a replaced state falls back), and every `step` is the tensor this launch
  last wrote, with the version counter, data pointer and dtype it had then (a step
  written by anyone else falls back, and the full path reads it);
- every gradient is a plain, dense, C-contiguous CPU tensor of the parameter's dtype and
  shape, aligned, overlapping none of its parameter's arrays (checked every step: backward
  makes new gradients);
- the engine keeps the same states for the group's current values.

Then the host scalars are computed once (`SpecOptimizer._plans` for one parameter: every
parameter of the group has the same inputs, since the group has no per-parameter
multipliers or name flags, and all have the same count), the variant they choose picks
its table (weight, gradient, states in kernel order, sizes, first chunks, scalars: the
layout of `cuda_launch.table`), the gradients' pointers and the scalars are written into
it, and the multi-tensor kernel runs: the call the full path makes for these tensors.
Anything else (and any error while planning) takes the full path, which checks and
reports as always.
"""
import ctypes
import itertools
import operator

import numpy
import torch

from ..runtime.backends import cuda_launch, native
from ..runtime.spec_optimizer import _state_dtype
from . import tensors

_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
           torch.bfloat16: "bfloat16"}


_GRAD = operator.attrgetter("grad")
_DTYPE = operator.attrgetter("dtype")
_LAYOUT = operator.attrgetter("layout")
_IS_CPU = operator.attrgetter("is_cpu")
_REQUIRES_GRAD = operator.attrgetter("requires_grad")
_SHAPE = operator.attrgetter("shape")
_VERSION = operator.attrgetter("_version")
_CONTIGUOUS = operator.methodcaller("is_contiguous")
_DATA_PTR = operator.methodcaller("data_ptr")


def _all_are(values, expected):
    """Whether every value is `expected` (an identity test, as `x is dtype`)."""
    return all(map(operator.is_, values, itertools.repeat(expected)))


class GroupLaunch:
    """The kept launch of one parameter group (see the module docstring)."""

    @classmethod
    def build(cls, optimizer, group, engine, first_index):
        """The launch of a group that has just stepped on the full path; None when the group does
        not qualify now (tried again after the next step), False when its rule never does."""
        params = list(group["params"])
        module = engine._module
        spec = engine.SPEC
        if len(params) < 2 or group.get("master_weights") and params[0].dtype in (torch.float16, torch.bfloat16):
            return None
        if engine.lr_mult or engine.wd_mult or engine.param_dict or spec["name_flags"] or spec["lr_before_count"]:
            return False    # per-parameter lr or wd: the full path plans each parameter
        dtype = params[0].dtype
        if not native.has_kernels(module):
            return False
        if dtype not in _DTYPES or native.backend() != "native":
            return None
        names = tuple(engine._present_states())
        metas = {m["name"]: m for m in spec["states"]}
        if any(metas[name]["shape"] in ("scalar", "rows") for name in names):
            return False    # host scalars and row states: always the full path
        if any(not v["elementwise"] or v["noise"] or v["whole_tensor"] for v in module.VARIANTS.values()):
            return False    # norms, row means, noise: always the full path
        meta_module = cuda_launch.metadata(module)
        state_dtypes = {name: _state_dtype(metas[name], _DTYPES[dtype]) for name in names}
        states, steps, rows = [], [], []
        step_dtypes = set()
        for param in params:
            state = optimizer.state.get(param)
            if type(param) not in tensors._PLAIN or not param.is_cpu or param.dtype is not dtype \
                    or not param.is_contiguous() or param.numel() == 0 or state is None:
                return None
            own = []
            for name in names:
                value = state.get(name)
                if type(value) not in tensors._PLAIN or not value.is_cpu or not value.is_contiguous() \
                        or value.shape != param.shape or _DTYPES.get(value.dtype) != str(state_dtypes[name]):
                    return None
                own.append(value)
            step = state.get("step")
            if type(step) not in tensors._PLAIN or not step.is_cpu or step.dim() != 0:
                return None
            step_dtypes.add(step.dtype)
            states.append(tuple(own))
            steps.append(step)
            rows.append((param.data_ptr(), param.shape, [v.data_ptr() for v in own]))
        if len(step_dtypes) != 1:
            return None
        from .optimizer import _count     # (optimizer.py imports this module)
        counts = {optimizer._views.count(optimizer.state[param], _count) for param in params}
        if len(counts) != 1:
            return None
        return cls(params, names, states, steps, counts.pop(), rows, meta_module, dtype, first_index)

    def __init__(self, params, names, states, steps, count, rows, meta_module, dtype, first_index):
        self.params = params
        self.names = names
        self.states = states
        self.dtype = dtype
        self.meta = meta_module
        self.suffix = cuda_launch.storage(_DTYPES[dtype])
        self.first_index = first_index
        self.indices = list(range(first_index, first_index + len(params)))
        self.pointers = [ptr for ptr, _, _ in rows]
        self.shapes = [shape for _, shape, _ in rows]
        self.state_pointers = [own for _, _, own in rows]
        itemsize = torch.empty((), dtype=dtype).element_size()
        numel = numpy.array([p.numel() for p in params], dtype=numpy.int64)
        chunks = -(-numel // self.meta.CHUNK)
        self.chunks = int(chunks.sum())
        # (tensors, 1 + states) uint64: the parameter's and its states' first and last byte + 1
        self.columns = {name: numpy.array([own[j] for own in self.state_pointers], dtype=numpy.uint64)
                        for j, name in enumerate(names)}
        self.columns["weight"] = numpy.array(self.pointers, dtype=numpy.uint64)
        owned = numpy.stack([self.columns["weight"]] + [self.columns[name] for name in names], axis=1)
        self.nbytes = (numel * itemsize).astype(numpy.uint64)
        self.owned_lo, self.owned_hi = owned, owned + self.nbytes[:, None]
        self.itemsize = numpy.uint64(itemsize)
        self.fixed = (numel.astype(numpy.uint64), (numpy.cumsum(chunks) - chunks).astype(numpy.uint64))
        self.tables = {}    # variant name -> its table, filled with the fixed columns
        self.written = [t for param, own in zip(params, states) for t in (param, *own)] + steps
        # the step tensors, their NumPy views and the (version, data pointer, dtype) each had
        # after this launch (or the full path) last wrote `count` into it
        self.steps = steps
        self.step_dtype = steps[0].dtype     # one dtype for all (build checks)
        self.step_views = [tensors.view(step) for step in steps]
        self.state_columns = [[own[j] for own in states] for j in range(len(names))]
        self.state_pointer_columns = [[own[j] for own in self.state_pointers] for j in range(len(names))]
        self.count = count
        self._mark()

    def _mark(self):
        self.versions = list(map(_VERSION, self.steps))
        self.step_pointers = list(map(_DATA_PTR, self.steps))

    def prepare(self, optimizer, group, engine, rescale_grad):
        """A callable running this step's update of the group, or None (take the full path).
        Nothing has changed when None is returned."""
        params = group["params"]
        if len(params) != len(self.params) or not all(map(operator.is_, params, self.params)):
            return None
        if tuple(engine._present_states()) != self.names:
            return None
        # each check runs over the whole group as a map (a loop in C), not per tensor in Python
        grads = list(map(_GRAD, params))
        if not (_all_are(map(type, grads), torch.Tensor)
                and _all_are(map(_DTYPE, grads), self.dtype) and _all_are(map(_LAYOUT, grads), torch.strided)
                and all(map(_IS_CPU, grads)) and all(map(_CONTIGUOUS, grads))
                and not any(map(_REQUIRES_GRAD, grads)) and list(map(_SHAPE, grads)) == self.shapes):
            return None     # (a missing gradient: None's type is not torch.Tensor)
        if not (list(map(_DATA_PTR, params)) == self.pointers and _all_are(map(_DTYPE, params), self.dtype)
                and list(map(_SHAPE, params)) == self.shapes and all(map(_CONTIGUOUS, params))):
            return None     # param.data = ... (or an in-place reshape, transpose, dtype change)
        states = list(map(optimizer.state.get, params))
        if None in states:
            return None
        steps = list(map(operator.methodcaller("get", "step"), states))
        if not (all(map(operator.is_, steps, self.steps)) and list(map(_VERSION, steps)) == self.versions
                and list(map(_DATA_PTR, steps)) == self.step_pointers
                and _all_are(map(_DTYPE, steps), self.step_dtype)):
            return None     # a step count written or replaced since: the full path reads it
        for name, own, own_pointers in zip(self.names, self.state_columns, self.state_pointer_columns):
            if not (all(map(operator.is_, map(operator.methodcaller("get", name), states), own))
                    and list(map(_DATA_PTR, own)) == own_pointers and list(map(_SHAPE, own)) == self.shapes):
                return None     # a state replaced, loaded or given new memory
        grads = list(map(_DATA_PTR, grads))
        grad_lo = numpy.array(grads, dtype=numpy.uint64)
        grad_hi = grad_lo + self.nbytes
        if (grad_lo % self.itemsize).any() or \
                ((grad_lo[:, None] < self.owned_hi) & (self.owned_lo < grad_hi[:, None])).any():
            return None     # unaligned, or sharing memory with its parameter's arrays
        plan = self._plan(engine, rescale_grad, self.count, group)
        if plan is False:
            return None
        return lambda: self._run(optimizer, engine, plan, grad_lo)

    def _plan(self, engine, rescale_grad, count, group):
        """The engine's plan of the first parameter (every parameter has the same inputs), the
        update counts advanced as the full path advances them; False: take the full path
        (the counts restored)."""
        from ..runtime.optimizer import PreparedStep
        engine.rescale_grad = rescale_grad
        counts = engine._index_update_count
        for index in self.indices:
            counts[index] = count
        prepared = PreparedStep(engine)
        engine._update_count(self.indices)
        try:
            lr, = engine._get_lrs([self.first_index])
            wd, = engine._get_wds([self.first_index])
            views = [tensors.view(t) for t in self.states[0]]
            state = None if not views else views[0] if len(views) == 1 else tuple(views)
            plan, = engine._plans([self.first_index], [None], [state], [lr], [wd])
        except Exception:
            prepared.cancel()
            return False
        if plan is None:
            return None     # the rule's skip_if holds: counted, nothing updated
        keys = {id(v): k for k, v in engine._module.VARIANTS.items()}
        variant = self.meta.VARIANTS[keys[id(plan[0])]]
        if plan[3] or variant.get("passes") or variant.get("rows") or variant["noise"]:
            prepared.cancel()
            return False
        return variant, plan[2]

    def _table(self, variant):
        """The variant's table: weight, gradient, states in kernel order, numel, first chunk,
        scalars (as cuda_launch.table lays it out); the gradient and scalar columns are
        written every step."""
        kept = self.tables.get(variant["name"])
        if kept is None:
            order = ["weight", None] + list(variant["states"])
            table = numpy.zeros((len(self.params), len(order) + 2 + len(variant["scalars"])), dtype=numpy.uint64)
            for j, name in enumerate(order):
                if name is not None:
                    table[:, j] = self.columns[name]
            table[:, len(order)], table[:, len(order) + 1] = self.fixed
            kept = self.tables[variant["name"]] = (table, len(order) + 2)
        return kept

    def _run(self, optimizer, engine, plan, grad_pointers):
        if plan is not None:
            variant, scalars = plan
            table, scalars_at = self._table(variant)
            table[:, 1] = grad_pointers
            table[:, scalars_at:] = \
                numpy.array(cuda_launch.scalar_values(variant, scalars), numpy.float64).view(numpy.uint64)
            lib = native.library(engine._module)
            getattr(lib, variant["kernels"][self.suffix] + "_multi")(
                ctypes.c_void_p(table.ctypes.data), ctypes.c_int(len(self.params)),
                ctypes.c_longlong(self.chunks), ctypes.c_int(native.num_threads()))
        # `step.fill_(count)` of every step tensor through its NumPy view (a foreach fill costs
        # microseconds per 0-d tensor): prepare checked that each is the tensor, memory and
        # dtype the view was made of; the version counters are bumped below, as fill_ would
        self.count += 1
        value = float(self.count)
        for view in self.step_views:
            view[...] = value
        tensors.bump_versions(self.written)
        self._mark()
