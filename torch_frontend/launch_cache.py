"""A parameter group's native CPU launch, kept from one step to the next.

After a step of a group has run the full path (every array and state checked, the native
kernels applied), the group's multi-tensor table (pointers of parameters and states,
sizes, first chunks) is kept. A later step reuses it only when everything the table and
the checks depend on is as it was:

- the group holds the same parameter objects, each with the data pointer, shape, dtype and
  contiguity it had (`param.data = ...` falls back);
- each state is the same tensor object with the data pointer and shape it had (a loaded
  state dict or a replaced state falls back), every `step` has the count the optimizer
  wrote (`ViewCache.count`: version counter and data pointer), the same for all;
- every gradient is a plain, dense, C-contiguous CPU tensor of the parameter's dtype and
  shape, aligned, overlapping none of its parameter's arrays (checked every step: backward
  makes new gradients);
- the engine plans the same variant and keeps the same states.

Then the host scalars are computed once (`SpecOptimizer._plans` for one parameter: every
parameter of the group has the same inputs, since the group has no per-parameter
multipliers or name flags), written into the table with the gradients' pointers, and the
kernel runs: the call the full path makes for these tensors, with the same table. Anything
else (and any error) takes the full path, which checks and reports as always.
"""
import ctypes
import operator

import numpy
import torch

from ..runtime.backends import cuda_launch, native
from ..runtime.spec_optimizer import _state_dtype
from . import tensors

_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
           torch.bfloat16: "bfloat16"}


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
        states, rows = [], []
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
            if type(step) not in tensors._PLAIN:
                return None
            states.append(tuple(own))
            rows.append((param.data_ptr(), param.shape, [v.data_ptr() for v in own]))
        return cls(params, names, states, rows, engine, meta_module, dtype, first_index)

    def __init__(self, params, names, states, rows, engine, meta_module, dtype, first_index):
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
        self.itemsize = torch.empty((), dtype=dtype).element_size()
        numel = numpy.array([p.numel() for p in params], dtype=numpy.int64)
        self.nbytes = (numel * self.itemsize).astype(numpy.uint64)
        self.numel = numel.astype(numpy.uint64)
        chunks = -(-numel // self.meta.CHUNK)
        self.first_chunk = (numpy.cumsum(chunks) - chunks).astype(numpy.uint64)
        self.chunks = int(chunks.sum())
        self.written = [t for param, own in zip(params, states) for t in (param, *own)]

    def prepare(self, optimizer, group, engine, rescale_grad):
        """A callable running this step's update of the group, or None (take the full path).
        Nothing has changed when None is returned."""
        params = group["params"]
        if len(params) != len(self.params) or not all(map(operator.is_, params, self.params)):
            return None
        if tuple(engine._present_states()) != self.names:
            return None
        dtype = self.dtype
        strided = torch.strided
        grads, steps, counts = [], [], set()
        state_of = optimizer.state
        count_of = optimizer._views.count
        from .optimizer import _count     # (optimizer.py imports this module)
        for param, pointer, shape, own, own_pointers in zip(params, self.pointers, self.shapes, self.states,
                                                            self.state_pointers):
            grad = param.grad
            if grad is None or type(grad) is not torch.Tensor or grad.dtype is not dtype \
                    or grad.layout is not strided or not grad.is_cpu or not grad.is_contiguous() \
                    or grad.shape != shape or grad.requires_grad:
                return None
            if param.data_ptr() != pointer or param.dtype is not dtype or param.shape != shape \
                    or not param.is_contiguous():
                return None
            state = state_of.get(param)
            if state is None:
                return None
            for name, value, value_pointer in zip(self.names, own, own_pointers):
                if state.get(name) is not value or value.data_ptr() != value_pointer or value.shape != shape:
                    return None
            step = state.get("step")
            if step is None:
                return None
            counts.add(count_of(state, _count))
            grads.append(grad.data_ptr())
            steps.append(step)
        if len(counts) != 1:
            return None
        grad_pointers = numpy.array(grads, dtype=numpy.uint64)
        if numpy.any(grad_pointers % numpy.uint64(self.itemsize)):
            return None     # unaligned
        grad_ends = grad_pointers + self.nbytes
        for column in [numpy.array(self.pointers, dtype=numpy.uint64)] + \
                [numpy.array([own[j] for own in self.state_pointers], dtype=numpy.uint64)
                 for j in range(len(self.names))]:
            if numpy.any((grad_pointers < column + self.nbytes) & (column < grad_ends)):
                return None     # a gradient shares memory with its parameter's arrays
        count = counts.pop()
        plan = self._plan(engine, rescale_grad, count, group)
        if plan is False:
            return None
        return lambda: self._run(optimizer, engine, plan, grad_pointers, steps, count + 1)

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
            present = engine._present_states()
            first = tensors.view(self.states[0][0]) if self.names else None
            state = None if not self.names else first if len(self.names) == 1 else \
                tuple(tensors.view(t) for t in self.states[0])
            plan, = engine._plans([self.first_index], [None], [state], [lr], [wd], present)
        except Exception:
            prepared.cancel()
            return False
        if plan is None:
            return None
        keys = {id(v): k for k, v in engine._module.VARIANTS.items()}
        key = keys[id(plan[0])]
        variant = self.meta.VARIANTS[key]
        if plan[3] or variant.get("passes") or variant.get("rows"):
            prepared.cancel()
            return False
        return variant, plan[2]

    def _run(self, optimizer, engine, plan, grad_pointers, steps, count):
        if plan is not None:
            variant, scalars = plan
            columns = [numpy.array(self.pointers, dtype=numpy.uint64), grad_pointers]
            columns += [numpy.array([own[name_index] for own in self.state_pointers], dtype=numpy.uint64)
                        for name_index in range(len(self.names))]
            order = {name: j for j, name in enumerate(self.names)}
            pointers = columns[:2] + [columns[2 + order[name]] for name in variant["states"]]
            words = numpy.array(cuda_launch.scalar_values(variant, scalars), numpy.float64).view(numpy.uint64)
            table = numpy.empty((len(self.params), len(pointers) + 2 + words.size), dtype=numpy.uint64)
            for j, column in enumerate(pointers):
                table[:, j] = column
            table[:, len(pointers)] = self.numel
            table[:, len(pointers) + 1] = self.first_chunk
            table[:, len(pointers) + 2:] = words
            lib = native.library(engine._module)
            getattr(lib, variant["kernels"][self.suffix] + "_multi")(
                ctypes.c_void_p(table.ctypes.data), ctypes.c_int(len(self.params)),
                ctypes.c_longlong(self.chunks), ctypes.c_int(native.num_threads()))
        # `step.fill_(count)` of every step tensor, through NumPy views of them (a foreach fill
        # costs microseconds per 0-d tensor); the views are checked as any other
        # (ViewCache.view) and the version counters bumped below, as after torch's own fill_
        value = float(count)
        view = optimizer._views.view
        for step in steps:
            view(step)[...] = value
        tensors.bump_versions(self.written + steps)
        optimizer._views.counted(steps, [count] * len(steps))
