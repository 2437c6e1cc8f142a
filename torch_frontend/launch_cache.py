"""A parameter group's native CPU launch, kept from one step to the next.

After a step of a group has run the full path (every array and state checked, the native
kernels applied), the group's multi-tensor table (pointers of parameters and states,
sizes, first chunks) is kept, and the group's `step` tensors become 0-d views of one
buffer (same values and dtype): their shared version counter shows a write to any of them,
and one `fill_` writes them all. A later step reuses the table only when everything it and
the checks depend on is as it was:

- the group holds the same parameter objects, each with the data pointer, exact type,
  dtype, device, requires_grad, sizes and strides it had (`param.data = ...` falls back);
- the optimizer's state maps the same parameters to the same dicts (in the same order), and
  each state is the same tensor object with the data pointer, sizes, strides and dtype it
  had (a loaded state dict or a replaced state falls back); every `step` is the view this
  launch made, with its data pointer, and the buffer's version counter is the one this
  launch left (a step written by anyone else falls back, and the full path reads it);
- every gradient is a plain CPU tensor, not requiring grad, with its parameter's dtype,
  sizes and (contiguous) strides, aligned, overlapping none of its parameter's arrays
  (checked every step: backward makes new gradients; the overlap test is skipped when
  the gradients' pointers are those last found fit);
- the engine keeps the same states for the group's current values.

Each check is one call over the whole group: `map` over the tensors, and torch's C++
tensor guards (`TensorGuards`, what compiled graphs test their inputs with) for type,
dtype, device, layout, requires_grad, sizes and strides; the memory behind every pointer
compared is kept alive, so an equal pointer is the same memory.

Whether a rule may keep launches at all is the engine's one rule (`engine.kept.qualifies`,
as for every API family); a group adds what its tensors need (2 parameters or more, no
master weights, no host scalar states: their float64 tensors would need writing back).
Then the host scalars are computed once for the group (`Engine.host_result`: every
parameter has the same inputs, since the group has no name flags or shape inputs, and
all have the same count; a plan whose functions do not
read t is kept for later steps of the same engine, lr and rescale_grad, see `_plan`),
the variant they choose picks its table (weight, gradient, states in kernel order, sizes, first chunks, scalars: the
layout of `launch_table.table`), the gradients' pointers and the scalars are written into
it, and the multi-tensor kernel runs: the call the full path makes for these tensors
(on the calling thread alone below SERIAL_BELOW elements, where waking the thread pool
costs more than the work; element-wise kernels give the same bits on any thread count).
Anything else (and any error while planning) takes the full path, which checks and
reports as always.
"""
import ctypes
import functools
import inspect
import itertools
import operator

import numpy
import torch

from ..runtime.backends import launch_table, native
from ..runtime.engine import state_dtype
from ..runtime.engine.kept import qualifies
from ..runtime.engine.plans import exact
from . import tensors

_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
           torch.bfloat16: "bfloat16"}


# getters mapped over a whole group (a loop in C, no per-tensor Python frame)
_GRAD = operator.attrgetter("grad")
_DATA_PTR = torch.Tensor.data_ptr

# below this many elements in a group the kernel runs on the calling thread: waking the
# OpenMP pool costs more than the work (Adam, 16 tensors on 2 threads: 1 thread is faster
# up to 16 k elements, 2 threads from 128 k on)
SERIAL_BELOW = 1 << 15


try:
    from torch._C._dynamo.guards import TensorGuards
    _HAS_GUARDS = True
except ImportError:     # a torch without it: every step takes the full path
    _HAS_GUARDS = False


_FEW = 16   # up to this many parameters the overlap test is a Python loop


def _guard(examples):
    """A check that tensors are, one for one, like `examples` (exact type, dtype, device,
    dispatch keys and so layout, requires_grad, sizes, strides): torch's C++ tensor check,
    the one compiled graphs use to test their inputs, one call for a whole list."""
    return TensorGuards(*examples, dynamic_dims_sizes=[list(t.size()) for t in examples],
                        dynamic_dims_strides=[list(t.stride()) for t in examples])


def _gather(names, steps=True):
    """A function of the group's state dicts: each one's step (unless the rule keeps none)
    and `names` states, in one list."""
    keys = ("step",) * steps + tuple(names)
    if not keys:
        return lambda states: []
    if len(keys) == 1:     # (itemgetter of one key gives the value, not a tuple)
        return lambda states: list(map(operator.itemgetter(keys[0]), states))
    getter = operator.itemgetter(*keys)
    return lambda states: list(itertools.chain.from_iterable(map(getter, states)))


class GroupLaunch:
    """The kept launch of one parameter group (see the module docstring)."""

    @classmethod
    def build(cls, optimizer, group, engine, first_index):
        """The launch of a group that has just stepped on the full path; None when the group does
        not qualify now (tried again after the next step), False when its rule never does.
        The group's `step` tensors become views of one buffer (same values and dtype)."""
        params = list(group["params"])
        module = engine.module
        if len(params) < 2 or group.get("master_weights") and params[0].dtype in (torch.float16, torch.bfloat16):
            return None
        if not qualifies(engine) or not _HAS_GUARDS:
            return False    # the rule never keeps a launch (engine/kept.py), or no tensor guards
        dtype = params[0].dtype
        if dtype not in _DTYPES or native.backend() != "native":
            return None
        names = tuple(engine.present_states())
        if any(engine.states[name].host_scalar for name in names):
            return False    # host scalar states (float64 tensors written back): the full path
        meta_module = launch_table.metadata(module)
        state_dtypes = {name: state_dtype(engine.states[name].meta, _DTYPES[dtype]) for name in names}
        counting = optimizer._step_kind is not None     # False: torch keeps no step for this rule (SGD)
        states, steps = [], []
        step_dtypes = set()
        for param in params:
            state = optimizer.state.get(param)
            if state is None and (names or counting):
                return None
            if type(param) not in tensors._PLAIN or not param.is_cpu or param.dtype is not dtype \
                    or not param.is_contiguous() or param.numel() == 0:
                return None
            own = []
            for name in names:
                value = state.get(name)
                if type(value) not in tensors._PLAIN or not value.is_cpu or not value.is_contiguous() \
                        or value.shape != param.shape or _DTYPES.get(value.dtype) != str(state_dtypes[name]):
                    return None
                own.append(value)
            step = state.get("step") if counting else None
            if counting and (type(step) not in tensors._PLAIN or not step.is_cpu or step.dim() != 0):
                return None
            grad = param.grad     # this step's gradient: the example later ones must match
            if type(grad) is not torch.Tensor or not grad.is_cpu or grad.dtype is not dtype \
                    or grad.requires_grad or grad.size() != param.size() or grad.stride() != param.stride():
                return None
            states.append(tuple(own))
            if counting:
                step_dtypes.add(step.dtype)
                steps.append(step)
        if counting and len(step_dtypes) != 1:
            return None
        counts = {optimizer._views.count(optimizer.state.get(param), tensors.step_count) for param in params}
        if len(counts) != 1:
            return None
        count = counts.pop()
        buffer = None
        if counting:
            # one buffer holds the group's step counts: its views share one version counter, so a
            # write to any of them is seen by one test, and one fill_ writes them all
            buffer = torch.tensor([float(step) for step in steps], dtype=step_dtypes.pop())
            steps = list(buffer.unbind())
            for param, step in zip(params, steps):
                optimizer.state[param]["step"] = step
        return cls(params, names, states, steps, buffer, count, module, meta_module, dtype, first_index,
                   optimizer.state)

    def __init__(self, params, names, states, steps, buffer, count, module, meta_module, dtype, first_index,
                 optimizer_state):
        self.params = params
        # the optimizer's state as it is now (keys and values, every group's): while it is the
        # same, each parameter's state dict is the one kept here, found without hashing a tensor
        self.state_keys, self.state_values = list(optimizer_state), list(optimizer_state.values())
        self.state_dicts = [optimizer_state.get(param) for param in params]
        self.names = names
        self.meta = meta_module
        self.suffix = launch_table.storage(_DTYPES[dtype])
        self.first_index = first_index
        self.pointers = list(map(_DATA_PTR, params))
        # per parameter: its step, then its states in `names` order (identity and pointer
        # checked each step; the states' layout by state_guard)
        self.gather = _gather(names, buffer is not None)
        self.held = [t for step, own in zip(steps, states) for t in (step, *own)] if buffer is not None \
            else [t for own in states for t in own]
        self.held_pointers = list(map(_DATA_PTR, self.held))
        self.param_guard = _guard(params)
        self.grad_guard = _guard([p.grad for p in params])     # (checked in build)
        self.state_guard = _guard([t for own in states for t in own])
        # the memory of every pointer compared is kept alive, so an equal pointer is that memory
        self.storages = [t.untyped_storage() for t in params + self.held]
        itemsize = torch.empty((), dtype=dtype).element_size()
        numel = numpy.array([p.numel() for p in params], dtype=numpy.int64)
        self.threads = 1 if int(numel.sum()) < SERIAL_BELOW else None
        chunks = -(-numel // self.meta.CHUNK)
        self.chunks = int(chunks.sum())
        self.columns = {name: numpy.array([own[j].data_ptr() for own in states], dtype=numpy.uint64)
                        for j, name in enumerate(names)}
        self.columns["weight"] = numpy.array(self.pointers, dtype=numpy.uint64)
        # a gradient [g, g + n) overlaps an array [a, a + m) of its parameter when
        # a - n < g < a + m: both bounds per parameter (rows) and array (columns)
        owned = numpy.stack([self.columns["weight"]] + [self.columns[name] for name in names], axis=1)
        sizes = numpy.stack([numel * itemsize] + [numel * numpy.array([own[j].element_size() for own in states])
                                                  for j in range(len(names))], axis=1)
        self.after = owned.astype(numpy.int64) - (numel * itemsize)[:, None]
        self.before = owned.astype(numpy.int64) + sizes
        self.bounds = [tuple(zip(after, before)) for after, before in zip(self.after.tolist(), self.before.tolist())]
        self.misaligned = itemsize - 1     # element sizes are powers of two
        self.grad_pointers = self.grad_column = None    # the last gradients found fit
        self.fixed = (numel.astype(numpy.uint64), (numpy.cumsum(chunks) - chunks).astype(numpy.uint64))
        self.tables = {}    # variant name -> its table, filled with the fixed columns
        self.engine = None      # the engine whose states were last found to be `names`
        self.inputs_key = self.inputs = None     # (engine, lr, rescale_grad) and their host inputs
        self.kept_plans = {}    # condition -> plan, for those inputs (see _plan)
        self.variants = {id(v): self.meta.VARIANTS[k] for k, v in module.VARIANTS.items()}
        # every tensor a step writes, the step buffer first: one version bump for them all
        self.written = [buffer] * (buffer is not None) + [t for param, own in zip(params, states)
                                                          for t in (param, *own)]
        self.buffer = buffer    # None: the rule keeps no step (its count is 1 once states exist)
        # the counts written through NumPy (a torch fill_ right after backward costs 4 us);
        # the buffer's version is bumped with the other tensors'
        self.counts = buffer.numpy() if buffer is not None and buffer.dtype is not torch.bfloat16 else None
        # as this launch (or build) last wrote the counts
        self.version = buffer._version if buffer is not None else None
        self.count = count

    def prepare(self, optimizer, group, engine, lr, wd, rescale_grad):
        """A callable running this step's update of the group, or None (take the full path).
        Nothing has changed when None is returned."""
        params = group["params"]
        if len(params) != len(self.params) or not all(map(operator.is_, params, self.params)):
            return None
        if self.buffer is not None and self.buffer._version != self.version:
            return None     # a step count written since: the full path reads it
        if engine is not self.engine:   # (an engine's hyperparameters never change)
            if tuple(engine.present_states()) != self.names:
                return None     # other states
            self.engine = engine
        # each check is one call over the whole group (a loop in C), not per tensor in Python;
        # a guard checks each tensor's exact type, dtype, device, layout, requires_grad, sizes
        # and strides: a gradient as the parameter's (contiguous) ones with requires_grad
        # False (None, a subclass or a sparse gradient fails it)
        grads = list(map(_GRAD, params))
        if not self.grad_guard.check(*grads):
            return None
        if not (self.param_guard.check(*params) and list(map(_DATA_PTR, params)) == self.pointers):
            return None     # param.data = ... (or an in-place reshape, transpose, dtype change)
        state = optimizer.state
        if not (len(state) == len(self.state_keys) and all(map(operator.is_, state, self.state_keys))
                and all(map(operator.is_, state.values(), self.state_values))):
            return None     # a parameter's state dict added, removed or replaced (load_state_dict)
        try:
            held = self.gather(self.state_dicts)
        except KeyError:
            return None     # a state or a step removed
        if not (all(map(operator.is_, held, self.held)) and list(map(_DATA_PTR, held)) == self.held_pointers):
            return None     # a state or step replaced, loaded or given new memory
        if self.names and self.buffer is not None:
            del held[::len(self.names) + 1]     # the steps: the states remain
        if self.names:
            if not self.state_guard.check(*held):
                return None     # a state reshaped, transposed or retyped in place
        pointers = list(map(_DATA_PTR, grads))
        if pointers != self.grad_pointers:   # (the allocator may give the same memory again)
            if self._misplaced(pointers):
                return None     # unaligned, or sharing memory with its parameter's arrays
            self.grad_pointers, self.grad_column = pointers, numpy.array(pointers, dtype=numpy.uint64)
        grad_column = self.grad_column
        plan = self._plan(engine, lr, wd, rescale_grad)
        if plan is False:
            return None
        return lambda: self._run(plan, grad_column)

    def _misplaced(self, pointers):
        """Whether a gradient (at `pointers`, one per parameter) is unaligned or overlaps one of
        its parameter's arrays. A loop over few parameters costs less than NumPy's calls."""
        if len(pointers) <= _FEW:
            misaligned = self.misaligned
            for pointer, bounds in zip(pointers, self.bounds):
                if pointer & misaligned:
                    return True
                for after, before in bounds:     # (plain loops: a generator per parameter costs 3x)
                    if after < pointer < before:
                        return True
            return False
        grad_lo = numpy.array(pointers, dtype=numpy.int64)
        column = grad_lo[:, None]
        return bool((grad_lo & self.misaligned).any() or ((self.after < column) & (column < self.before)).any())

    def _plan(self, engine, lr, wd, rescale_grad):
        """This step's (variant's launch, scalar row) for every parameter of the group (all have
        the same inputs: lr, wd, t, rescale_grad and the engine's hyperparameters), None when
        the rule's skip_if holds (counted, nothing updated), False: take the full path (which
        raises what planning raised).

        The host functions are pure functions of their inputs, so a plan is kept for the next
        steps when the functions it came from do not read t: only the rule's conditions are
        evaluated each step then (SGD plans once; Adam's bias corrections are computed each
        step). The kept plans are those of one (engine, lr, wd, rescale_grad)."""
        key = (engine, exact(lr), exact(wd), exact(rescale_grad))
        if key != self.inputs_key:
            inputs = engine.host_inputs(rescale_grad)
            inputs["lr"], inputs["wd"] = lr, wd
            self.inputs_key, self.inputs, self.kept_plans = key, inputs, {}
        inputs = self.inputs
        inputs["t"] = self.count + 1
        module = engine.module
        try:
            condition = module.conditions(**inputs)
        except Exception:
            return False
        plan = self.kept_plans.get(condition, _NOT_KEPT)
        if plan is _NOT_KEPT:
            functions = _functions(module)
            try:
                result = engine.host_result(inputs, self.first_index)
                if result is None:
                    plan = None
                else:
                    variant = self.variants[id(result.variant)]
                    if result.updates or variant.get("passes") or variant.get("rows") or variant["noise"]:
                        return False    # scalar states, norms, rows, noise: the full path
                    row = numpy.array(launch_table.scalar_values(variant, result.scalars), numpy.float64)
                    # its kernel compiled or loaded now, while nothing has changed
                    plan = (self._table(engine, variant), row.view(numpy.uint64))
            except Exception:
                return False
            if condition not in functions.read_t:
                self.kept_plans[condition] = plan
        return plan

    def _table(self, engine, variant):
        """The variant's launch: [table, first scalar column, kernel, its first arguments, the
        gradient column and the scalar row last written]. The table holds weight, gradient,
        states in kernel order, numel, first chunk, scalars (as launch_table.table lays it out);
        the gradient column is written when the gradients move, the scalars when they change."""
        kept = self.tables.get(variant["name"])
        if kept is None:
            order = ["weight", None] + list(variant["states"])
            table = numpy.zeros((len(self.params), len(order) + 2 + len(variant["scalars"])), dtype=numpy.uint64)
            for j, name in enumerate(order):
                if name is not None:
                    table[:, j] = self.columns[name]
            table[:, len(order)], table[:, len(order) + 1] = self.fixed
            kernel = getattr(native.library(engine.module), variant["kernels"][self.suffix] + "_multi")
            arguments = (ctypes.c_void_p(table.ctypes.data), ctypes.c_int(len(self.params)),
                         ctypes.c_longlong(self.chunks))
            kept = self.tables[variant["name"]] = [table, len(order) + 2, kernel, arguments, None, None]
        return kept

    def _run(self, plan, grad_column):
        if plan is not None:
            launch, row = plan
            table, scalars_at, kernel, arguments, grads_written, row_written = launch
            if grads_written is not grad_column:
                table[:, 1] = launch[4] = grad_column
            if row_written is not row:
                table[:, scalars_at:] = launch[5] = row
            kernel(*arguments, ctypes.c_int(self.threads or native.num_threads()))
        if self.buffer is not None:
            # `step.fill_(count)` of every step tensor: one write of their buffer, whose version
            # counter they share, bumped with the parameters' and states' (all plain tensors)
            self.count += 1
            if self.counts is not None:
                self.counts.fill(self.count)
            else:
                self.buffer.fill_(float(self.count))
        torch.autograd.graph.increment_version(self.written)
        if self.buffer is not None:
            self.version = self.buffer._version


_NOT_KEPT = object()


@functools.cache
def _functions(module):
    """`_Functions` of a generated module, made once."""
    return _Functions(module)


class _Functions:
    """A generated module's requires and skip functions (None where the rule has none) and the
    conditions (keys of VARIANTS) whose plan reads t: requires, skip or the variant's host
    takes it."""

    def __init__(self, module):
        namespace = vars(module)
        self.requires, self.skip = namespace.get("requires"), namespace.get("skip")
        always = any("t" in _arguments(f) for f in (self.requires, self.skip) if f is not None)
        self.read_t = {key for key, variant in module.VARIANTS.items()
                       if always or "t" in _arguments(variant["host"])}


def _arguments(function):
    return inspect.signature(function).parameters
