"""Optimizer classes built from generated modules.

A class is made from a module's `SPEC` (signature, validated hyperparameter
properties, docstring, state layout) and its generated functions (the update).
It holds no formula of its own: `_apply` only looks up the variant, computes the
host scalars and calls the generated kernel.
"""
import inspect
import itertools
import math
import operator
import os
import weakref

import numpy

from . import validation
from .backends import array_module, cpu, cuda_launch, kept_launch, quiet
from .docstrings import class_docstring
from .flavors import decay_suffixes
from .noise import Noise
from .optimizer import (Optimizer, PreparedStep, _as_lists, _low_precision, decode_keys, encode_keys,
                        master_state, round_into)
from .sparse import RowSparse, lazy_update


class PreconditionError(ValueError):
    """A step breaks the rule's `requires` condition."""


class SpecOptimizer(Optimizer):
    """Base of the optimizers generated from specs; see `optimizer_class`."""

    SPEC = None         # the generated module's metadata
    flavor = "mxnet2"
    _module = None      # the generated NumPy module

    def __init__(self, *, learning_rate, hyperparameters, options, **kwargs):
        spec = self.SPEC
        checked = {}
        for meta in spec["hyperparameters"]:
            checked[meta["name"]] = validation.hyperparameter(meta, hyperparameters[meta["name"]])
        self._hyperparameters = checked
        self.lazy_update = options.pop("lazy_update", spec["sparse_update"] == "lazy")
        if "aggregate_num" in options and options["aggregate_num"] is None:
            options["aggregate_num"] = _aggregate_from_environment(spec["options"]["aggregate_num"])
        for name, value in options.items():
            kwargs[name] = value
        super().__init__(learning_rate=learning_rate, **kwargs)

    @property
    def hyperparameters(self):
        """Current hyperparameter values by name (a copy)."""
        return dict(self._hyperparameters)

    def config(self):
        """Everything needed to rebuild this optimizer mid-training, JSON-safe (no pickle)."""
        arguments = dict(self._hyperparameters)
        arguments.update({name: getattr(self, name) for name in _SAVED_ATTRIBUTES})
        arguments.update(
            learning_rate=self.lr,
            aggregate_num="inf" if self.aggregate_num == numpy.inf else self.aggregate_num,
            param_idx2name=encode_keys(self.idx2name),
        )
        if "lazy_update" in self.SPEC["options"]:
            arguments["lazy_update"] = self.lazy_update
        return {"name": self.SPEC["key"], "flavor": self.flavor, "arguments": arguments,
                "counters": self._counters()}

    @staticmethod
    def from_config(config):
        """The optimizer `config()` describes; everything is checked (the constructor checks
        the arguments, `_restore_counters` the counters) before the optimizer is returned."""
        from .registry import lookup
        validation.entries("saved optimizer", config, ("name", "flavor", "arguments", "counters"),
                           optional=("modes",))
        if not isinstance(config["name"], str) or not isinstance(config["flavor"], str):
            raise ValueError("saved optimizer name and flavor must be strings")
        cls = lookup(config["name"], config["flavor"])
        if not isinstance(config["arguments"], dict):
            raise ValueError("saved optimizer arguments must be a dict")
        arguments = dict(config["arguments"])
        if arguments.get("aggregate_num") == "inf":
            arguments["aggregate_num"] = numpy.inf
        validation.entries("saved optimizer arguments", arguments, ("learning_rate", "param_idx2name"),
                           optional=tuple(m["name"] for m in cls.SPEC["hyperparameters"])
                           + _SAVED_ATTRIBUTES + ("aggregate_num", "lazy_update"))
        arguments["param_idx2name"] = decode_keys(arguments["param_idx2name"], "saved param_idx2name")
        if not all(isinstance(name, str) for name in arguments["param_idx2name"].values()):
            raise ValueError("saved param_idx2name must map indices to names (str)")
        learning_rate = arguments.pop("learning_rate")
        optimizer = cls(learning_rate=learning_rate if learning_rate is not None else 0.0, **arguments)
        optimizer._restore_counters(config["counters"])
        if "modes" in config:
            if not hasattr(optimizer, "_restore_modes"):
                raise ValueError(f"saved optimizer has modes, but {cls.__name__} has no train/eval modes")
            optimizer._restore_modes(config["modes"])
        return optimizer

    # -- states ------------------------------------------------------------------
    def _present_states(self, weight=None):
        """The states that exist for this parameter (a state's `when` may read its shape:
        without a weight, the states of a 2-D one)."""
        shape = shape_inputs(self.SPEC, weight) if weight is not None else _MATRIX_INPUTS
        return self._module.states_present(**self._hyperparameters, **shape)

    def check_parameter(self, index, weight):
        """Raise ValueError if the rule's `requires` refuses this parameter for what is known
        before a step (its shape and the hyperparameters): the params-style API calls it
        when a parameter group is added, as torch's Muon does in its constructor."""
        module = self._module
        if not hasattr(module, "requires"):
            return
        inputs = dict(self._hyperparameters, **shape_inputs(self.SPEC, weight))
        names = [p for p in inspect.signature(module.requires).parameters if p != "_"]
        if all(n in inputs for n in names) and not module.requires(**inputs):
            got = ", ".join(f"{n}={inputs[n]!r}" for n in names)
            raise PreconditionError(f"{type(self).__name__} requires {self.SPEC['requires']}; "
                                    f"parameter {index!r} of shape {tuple(weight.shape)} has {got}")

    def create_state(self, index, weight):
        xp = validation.float_weight(index, weight)
        self.check_parameter(index, weight)
        present = self._present_states(weight)
        arrays = []
        for meta in self.SPEC["states"]:
            if meta["name"] not in present:
                continue
            dtype = _state_dtype(meta, weight.dtype)
            if meta["shape"] == "scalar" and meta.get("device"):
                arrays.append(xp.full((), meta["init"], dtype=dtype))
            elif meta["shape"] == "scalar":
                arrays.append(numpy.array(meta["init"], dtype=numpy.float64))
            elif meta["shape"] in ("rows", "cols"):
                arrays.append(xp.zeros(state_shape(meta, weight, index, self.SPEC), dtype=dtype))
            elif meta["init"] == "weight":
                arrays.append(weight.astype(dtype, copy=True))
            elif meta["init"] != "zeros":    # a hyperparameter's name: filled with its value now
                arrays.append(xp.full(weight.shape, self._hyperparameters[meta["init"]], dtype=dtype))
            else:
                arrays.append(xp.zeros(weight.shape, dtype=dtype))
        if not arrays:
            return None
        return arrays[0] if len(arrays) == 1 else tuple(arrays)

    def _check(self, indices, weights, grads, states):
        super()._check(indices, weights, grads, states)
        metas = {m["name"]: m for m in self.SPEC["states"]}
        if not reads_shape(self._module):     # one state layout for every parameter
            layout = [(name, metas[name]) for name in self._present_states()]
            if _states_fit(weights, states, layout):
                return      # every check below holds (tested over the whole update at once)
        dtypes = {}     # (state name, weight dtype) -> the state's dtype, looked up once per call
        for index, weight, state in zip(indices, weights, states):
            present = self._present_states(weight)
            layout = [(name, metas[name]) for name in present]
            parts = _state_parts(state, len(present))
            if parts is None:
                layout_text = "None" if not present else present[0] if len(present) == 1 \
                    else "(" + ", ".join(present) + ")"
                raise ValueError(f"state of parameter {index!r} does not match {type(self).__name__}"
                                 f"'s state layout {layout_text} for these hyperparameters; "
                                 "create it with create_state")
            on_host = type(weight) is numpy.ndarray
            xp = numpy if on_host else array_module(weight)
            for (name, meta), part in zip(layout, parts):
                if meta["shape"] == "scalar" and not meta.get("device"):
                    if not (isinstance(part, numpy.ndarray) and part.shape == ()):
                        raise ValueError(f"state '{name}' of parameter {index!r} must be a 0-d "
                                         f"numpy array, got {type(part).__name__}")
                    validation.state_array_writable(index, name, part)
                    continue
                if on_host and type(part) is numpy.ndarray:
                    pxp = numpy     # the common case, without array_module's dispatch
                else:
                    try:
                        pxp = array_module(part)
                    except TypeError as err:
                        raise TypeError(f"state '{name}' of parameter {index!r}: {err}") from None
                if pxp is not xp:
                    raise TypeError(f"state '{name}' of parameter {index!r} is a {pxp.__name__} array "
                                    f"but the weight is a {xp.__name__} array")
                shape = weight.shape if meta["shape"] not in ("rows", "cols", "scalar") \
                    else state_shape(meta, weight, index, self.SPEC)
                if tuple(part.shape) != tuple(shape):
                    raise ValueError(f"state '{name}' of parameter {index!r} has shape "
                                     f"{tuple(part.shape)}, expected {tuple(shape)}")
                dtype = dtypes.get((name, weight.dtype))
                if dtype is None:
                    dtype = dtypes[(name, weight.dtype)] = numpy.dtype(_state_dtype(meta, weight.dtype))
                if part.dtype != dtype:
                    raise ValueError(f"state '{name}' of parameter {index!r} has dtype {part.dtype}, "
                                     f"expected {dtype}")
                if xp is not numpy and part.device != weight.device:
                    raise ValueError(f"state '{name}' of parameter {index!r} is on {part.device}, "
                                     f"the weight on {weight.device}")
                validation.state_array_writable(index, name, part)

    # -- the update ------------------------------------------------------------------
    def step(self, indices, weights, grads, states):
        """The generated NumPy reference code (on NumPy or CuPy arrays)."""
        self._run(indices, weights, grads, states, fused=False)

    def fused_step(self, indices, weights, grads, states):
        """The generated kernels for the arrays' device; on the CPU, the generated code."""
        self._run(indices, weights, grads, states, fused=True)

    def update_multi_precision(self, indices, weights, grads, states):
        """MXNet's multi-precision update. On CuPy arrays with use_fused_step, float16/bfloat16
        weights run the master-copy kernels: one pass reads the low-precision gradient,
        updates the float32 master copy and states, and writes the rounded weight."""
        self._prepare_update(indices, weights, grads, states).run()

    def _prepare_update(self, indices, weights, grads, states):
        """Check, count and plan an `update_multi_precision` (see `Optimizer._prepare_update`)."""
        cls = type(self)
        if (cls.update, cls.step, cls.fused_step) != (SpecOptimizer.update, SpecOptimizer.step,
                                                      SpecOptimizer.fused_step):
            return Optimizer._prepare_update(self, indices, weights, grads, states)   # a subclass's own
        idx, ws, gs, ss = _as_lists(indices, weights, grads, states)
        if self._kept_launches and self.use_fused_step \
                and not (self.multi_precision and any(map(_low_precision, ws))):
            prepared = self._kept_step(idx, ws, gs, ss)     # the checks below shown by the kept launch
            if prepared is not None:
                return prepared
        if self.use_fused_step and self.multi_precision and ws and all(map(_low_precision, ws)) \
                and self._master_kernels(idx, ws, gs, ss):
            for index, weight, grad in zip(idx, ws, gs):
                validation.check_pair(index, weight, grad)
            split = [master_state(index, weight, state) for index, weight, state in zip(idx, ws, ss)]
            masters, inner = [m for m, _ in split], [s for _, s in split]
            self._check(idx, masters, masters, inner)    # the states must fit the master copies
            return self._prepare(idx, ws, gs, inner, fused=True, masters=masters)
        masters, grads32, inner, low = self._master_arrays(idx, ws, gs, ss)
        self._check(idx, masters, grads32, inner)
        prepared = self._prepare(idx, masters, grads32, inner, fused=self.use_fused_step)
        kernels = prepared.kernels

        def run():
            kernels()
            round_into(ws, masters, low)
        prepared.kernels = run
        return prepared

    update_multi_precision.plans_ahead = True

    def _master_kernels(self, idx, ws, gs, ss):
        """Whether master-copy kernels run these 16-bit weights in one pass: the CUDA ones on
        CuPy arrays, the native CPU ones on NumPy arrays where they apply."""
        if _cuda_kernels(self, ws, gs):
            return True
        try:
            split = [master_state(index, weight, state) for index, weight, state in zip(idx, ws, ss)]
        except ValueError:
            return False
        return cpu.native(self._module, ws, gs, [s for _, s in split], [m for m, _ in split]) is not None

    def _run(self, indices, weights, grads, states, fused, masters=None):
        """Prepare the step (`_prepare`), then run its kernels."""
        self._prepare(indices, weights, grads, states, fused, masters).run()

    def _prepare(self, indices, weights, grads, states, fused, masters=None):
        """Count, then compute every parameter's host scalars: a `PreparedStep` whose `run()`
        calls the kernels and whose `cancel()` restores the update counts.

        Host arithmetic that fails (e.g. FTML with lr = 0 divides by lr) raises
        ValueError before any array changes, with the update counts restored. On CuPy
        arrays fused=True runs the generated CUDA kernels (backends/cupy_backend.py), on NumPy
        arrays the native CPU kernels where they apply (backends/cpu.py, backends/native.py).
        The params-style API prepares every group's step before it runs any. An update with
        the arrays of an earlier native one reuses its kept launch (`_kept_step`)."""
        if fused and masters is None and self._kept_launches:
            prepared = self._kept_step(indices, weights, grads, states)
            if prepared is not None:
                return prepared
        gpu = fused and _cuda_kernels(self, weights, grads)
        if gpu:
            from .backends import cupy_backend
            cupy_backend.check(indices, weights, grads, states, masters)
        native = fused and not gpu and cpu.native(self._module, weights, grads, states, masters)
        if not native:      # (the native kernels apply only to arrays that share no memory)
            unaliased = _unaliased(weights, grads, states, masters)
            if unaliased is not grads:
                grads = unaliased
                native = fused and not gpu and cpu.native(self._module, weights, grads, states, masters)
        write_back = None
        if fused and not gpu and not native and masters is None and cpu.draws_noise(self._module):
            # the noise of the native kernels, whatever the arrays' layout (cpu.native_on_copies)
            staged = cpu.native_on_copies(self._module, weights, grads, states)
            if staged is not None:
                weights, grads, states, native, write_back = staged
        if native:
            from .backends import native as native_backend

        def plan(lrs, wds):
            plans = self._plans(indices, masters or weights, states, lrs, wds)
            if native:      # the step's kernels compiled (or loaded): a failure restores the counts
                native_backend.build(self._module, weights, plans, masters)
            return plans
        prepared = self._count_and_plan(indices, plan)
        plans = prepared.plans
        if gpu:
            prepared.kernels = lambda: cupy_backend.execute(self, indices, weights, grads, plans, masters)
        elif native:
            def kernels():
                native_backend.execute(self, indices, weights, grads, plans, native, masters)
                if write_back is not None:
                    write_back()
                elif masters is None:
                    self._keep_launch(indices, weights, grads, states, plans)
            prepared.kernels = kernels
        else:
            def kernels():
                for weight, grad, plan in zip(weights, grads, plans):
                    if plan is not None:
                        self._execute(weight, grad, *plan, fused=fused)
            prepared.kernels = kernels
        return prepared

    def _count_and_plan(self, indices, plan):
        """Count the update, read its learning rates and weight decays, and call
        `plan(lrs, wds)`: a `PreparedStep` holding the result as `plans`. Host arithmetic that
        fails raises ValueError (a PreconditionError as itself) with the counts restored."""
        prepared = PreparedStep(self)
        if self.SPEC["lr_before_count"]:   # MXNet 1.x LBSGD reads lr, then counts
            lrs, wds = self._get_lrs(indices), self._get_wds(indices)
        self._update_count(indices)
        try:
            if not self.SPEC["lr_before_count"]:
                lrs, wds = self._get_lrs(indices), self._get_wds(indices)
            prepared.plans = plan(lrs, wds)
        except (ArithmeticError, ValueError) as err:
            prepared.cancel()
            if isinstance(err, PreconditionError):
                raise
            raise ValueError(f"{type(self).__name__}: cannot compute this step's scalars: {err}") from err
        except BaseException:
            prepared.cancel()
            raise
        return prepared

    # -- kept launches (backends/kept_launch.py) ----------------------------------------
    _kept_launches = None   # tuple(indices) -> KeptLaunch, or weak references to the last weights

    def __getstate__(self):
        """Copies and pickles leave the kept launches out: they stand for these very arrays."""
        state = self.__dict__.copy()
        state.pop("_kept_launches", None)
        return state

    def update(self, indices, weights, grads, states):
        """Update weights and states in place; lists (2.0) or one index (1.x) are accepted.

        Gradients are never modified. Everything is checked before anything changes (an
        update with the arrays of an earlier native one through its kept launch, whose
        checks show what `_check` would)."""
        if self._kept_launches and self.use_fused_step and type(self)._check is SpecOptimizer._check \
                and type(self).fused_step is SpecOptimizer.fused_step:
            lists = _as_lists(indices, weights, grads, states)
            prepared = self._kept_step(*lists)
            if prepared is not None:
                prepared.run()
                return
            indices, weights, grads, states = lists
        Optimizer.update(self, indices, weights, grads, states)

    def _kept_step(self, indices, weights, grads, states):
        """The prepared step of the kept launch of these indices, or None (the full path)."""
        try:
            launch = self._kept_launches.get(tuple(indices))
        except TypeError:   # an unhashable index: the full path reports it
            return None
        if not isinstance(launch, kept_launch.KeptLaunch):
            return None
        return launch.prepare(self, indices, weights, grads, states)

    def _keep_launch(self, indices, weights, grads, states, plans):
        """After a native update on the full path: keep its launch when the same weights
        stepped before (so that views made anew for every update never pay for building
        one) and the update qualifies. At most `kept_launch.KEPT` per optimizer, the oldest
        dropped first; a kept launch holds its weights and states alive."""
        cls = type(self)
        if cls.__dict__.get("_keeps") is None:
            cls._keeps = kept_launch.qualifies(self)
        if not cls._keeps:
            return
        launches = self._kept_launches
        if launches is None:
            launches = self._kept_launches = {}
        try:
            key = tuple(indices)
            seen = launches.pop(key, None)
        except TypeError:
            return
        if isinstance(seen, kept_launch.KeptLaunch):
            same = len(seen.weights) == len(weights) and all(map(operator.is_, weights, seen.weights))
        else:
            same = isinstance(seen, list) and len(seen) == len(weights) \
                and all(map(operator.is_, weights, map(operator.call, seen)))
        entry = kept_launch.KeptLaunch.build(self, indices, weights, grads, states, plans) if same else None
        if entry is None:   # an older launch of the same weights stays (each use checks it whole)
            entry = seen if same and isinstance(seen, kept_launch.KeptLaunch) else list(map(weakref.ref, weights))
        launches[key] = entry
        while len(launches) > kept_launch.KEPT:
            del launches[next(iter(launches))]

    def _plan(self, index, weight, state, lr, wd):
        """The variant, the host scalars and the new scalar states of one parameter's step
        (None when the rule's skip_if holds)."""
        return self._plans([index], [weight], [state], [lr], [wd])[0]

    def _plans(self, indices, weights, states, lrs, wds):
        """`_plan` of every parameter. The generated host functions are pure functions of their
        inputs, so parameters with equal inputs (lr, wd, t, name flags, and the shape inputs
        where the rule reads them; no scalar states, no noise) share one evaluation: one per
        (variant, lr, wd, t) group instead of one per parameter. Keys compare floats by value
        and by the sign of zero, so a shared result is the one each parameter would have got."""
        module, spec = self._module, self.SPEC
        by_shape = reads_shape(module)
        base = self._base_inputs()
        flags = spec["name_flags"]
        namespace = vars(module)    # a dict lookup: a missing module attribute costs an exception
        requires = namespace.get("requires")
        skip = namespace.get("skip")
        counts = self._index_update_count
        layouts = {}    # shape key -> (shape inputs, present states, scalar states)
        shared = {}
        plans = []
        for index, weight, state, lr, wd in zip(indices, weights, states, lrs, wds):
            shape_key = (tuple(weight.shape), weight.dtype) if by_shape else None
            layout = layouts.get(shape_key)
            if layout is None:
                shape = shape_inputs(spec, weight) if by_shape else {}
                present = module.states_present(**self._hyperparameters, **(shape or _MATRIX_INPUTS))
                scalar_states = [m["name"] for m in spec["states"]
                                 if m["shape"] == "scalar" and not m.get("device") and m["name"] in present]
                layout = layouts[shape_key] = (shape, present, scalar_states)
            shape, present, scalar_states = layout
            parts = _state_parts(state, len(present))
            t = counts[index]
            names = ()
            if flags:
                name = self.idx2name.get(index, str(index))
                names = tuple(name.endswith(tuple(suffixes)) for suffixes in flags.values())
            key = None
            if not scalar_states:
                key = (_exact(lr), _exact(wd), t, names, shape_key)
                known = shared.get(key)
                if known is not None:
                    plans.append(_bind(known, parts, present, scalar_states, index, t, self))
                    continue
            inputs = dict(base, lr=lr, wd=wd, t=t, **shape)
            inputs.update(zip(flags, names))
            parts_by_name = dict(zip(present, parts))
            for name in scalar_states:
                inputs[name] = float(parts_by_name[name])
            result = self._host_result(inputs, index, requires, skip)
            if key is not None:
                shared[key] = result
            plans.append(_bind(result, parts, present, scalar_states, index, t, self))
        return plans

    def _base_inputs(self):
        """The host functions' inputs every parameter shares: hyperparameters, rescale_grad,
        clip_gradient (lr, wd, t and the per-parameter inputs are added to a copy)."""
        return dict(self._hyperparameters, rescale_grad=self.rescale_grad, clip_gradient=self.clip_gradient)

    def _host_result(self, inputs, index, requires, skip):
        """(variant, host scalars, new scalar states) of one parameter's inputs, (None,) when
        the rule's skip_if holds; PreconditionError when its `requires` does not hold.
        `requires` and `skip` are the module's functions (None where the rule has none)."""
        module = self._module
        if requires is not None and not requires(**inputs):
            arguments = [p for p in inspect.signature(requires).parameters if p != "_"]
            got = ", ".join(f"{n}={inputs[n]!r}" for n in arguments)
            raise PreconditionError(f"{type(self).__name__} requires {self.SPEC['requires']}; "
                                    f"parameter {index!r} has {got}")
        if skip is not None and skip(**inputs):
            return (None,)
        variant = module.VARIANTS[module.conditions(**inputs)]
        scalars = variant["host"](**inputs)
        updates = {name: scalars[key] for name, key in variant["updates"].items()}
        for host_only in variant["host_only"]:
            del scalars[host_only]
        return variant, scalars, updates

    def _execute(self, weight, grad, variant, arrays, scalars, updates, scalar_arrays, fused):
        xp = array_module(weight)
        kernel = variant["kernel"]
        with quiet(xp):
            if isinstance(grad, RowSparse) and self.lazy_update:
                lazy_update(xp, kernel, weight, grad, arrays, scalars, variant["whole_tensor"])
            else:
                if isinstance(grad, RowSparse):
                    grad = grad.todense()      # standard update: zero gradient in the other rows
                if weight.ndim == 0:
                    # NumPy turns 0-d temporaries into scalars, which out= cannot take: run the
                    # kernel on 1-element views (the same memory, so the update is in place);
                    # per-tensor scalar states (NovoGrad's) stay 0-d as for any weight
                    metas = {m["name"]: m for m in self.SPEC["states"]}
                    names = [n for n in variant["states"]    # the states _plan passes as arrays
                             if metas[n]["shape"] != "scalar" or metas[n].get("device")]
                    arrays = [a if metas[n]["shape"] == "scalar" else a.reshape(1)
                              for n, a in zip(names, arrays)]
                    weight, grad = weight.reshape(1), grad.reshape(1)
                if fused and xp is numpy and variant["elementwise"] and cpu.blockable(weight, grad, arrays):
                    cpu.run_blocked(kernel, weight, grad, arrays, scalars)
                elif fused and xp is numpy and "stages" in variant \
                        and cpu.run_stages(self._module, variant, weight, grad, arrays, scalars):
                    pass        # a matrix rule's stage kernels between NumPy products
                elif fused and xp is not numpy and "stages" in variant \
                        and _cuda_stages(self._module, variant, weight, grad, arrays, scalars):
                    pass        # its CUDA stage kernels between cuBLAS products
                else:
                    kernel(xp, weight, grad, *arrays, **scalars)
        for name, value in updates.items():
            scalar_arrays[name][...] = value


def _cuda_stages(module, variant, weight, grad, arrays, scalars):
    """A matrix rule's CUDA stage kernels (backends/cupy_matrix.py, imported only here:
    `import optforge` loads no backend module it does not need)."""
    from .backends import cupy_matrix
    return cupy_matrix.run(module, variant, weight, grad, arrays, scalars)


_DTYPE = operator.attrgetter("dtype")
_SHAPE = operator.attrgetter("shape")
_WRITEABLE = operator.attrgetter("flags.writeable")


def _states_fit(weights, states, layout):
    """Whether `SpecOptimizer._check`'s state checks hold for every parameter, tested as maps
    over the whole update (loops in C) when every weight is a NumPy array of one dtype and
    every state weight-shaped or a host scalar; False means "not shown": the caller then
    checks one parameter at a time, which names what is wrong."""
    ndarray = numpy.ndarray
    if not weights or not all(map(operator.is_, map(type, weights), itertools.repeat(ndarray))):
        return False
    dtype = weights[0].dtype
    if not all(map(operator.eq, map(_DTYPE, weights), itertools.repeat(dtype))):
        return False
    parts = [_state_parts(state, len(layout)) for state in states]
    if None in parts:
        return False
    shapes = None
    for j, (name, meta) in enumerate(layout):
        column = [own[j] for own in parts]
        if not (all(map(operator.is_, map(type, column), itertools.repeat(ndarray)))
                and all(map(_WRITEABLE, column))):
            return False
        if meta["shape"] == "scalar" and not meta.get("device"):
            if not all(map(operator.eq, map(_SHAPE, column), itertools.repeat(()))):
                return False
            continue
        if meta["shape"] in ("scalar", "rows", "cols"):
            return False
        shapes = list(map(_SHAPE, weights)) if shapes is None else shapes
        expected = numpy.dtype(_state_dtype(meta, dtype))
        if list(map(_SHAPE, column)) != shapes \
                or not all(map(operator.eq, map(_DTYPE, column), itertools.repeat(expected))):
            return False
    return True


def _exact(value):
    """A float as a dict key that tells 0.0 from -0.0 (equal, but not the same input)."""
    return (value, math.copysign(1.0, value)) if value == 0 else value


def _bind(result, parts, present, scalar_states, index, t, optimizer):
    """One parameter's plan from a (shared) host result: its own state arrays and scalar
    state targets, and a noise stream of its own."""
    if result[0] is None:
        return None
    variant, scalars, updates = result
    by_name = dict(zip(present, parts))
    arrays = [by_name[name] for name in variant["states"] if name not in scalar_states]
    if variant["noise"]:
        scalars = dict(scalars, rng=Noise(optimizer._hyperparameters["seed"], index, t))
    scalar_arrays = {name: by_name[name] for name in updates}
    return variant, arrays, scalars, updates, scalar_arrays


def _unaliased(weights, grads, states, masters=None):
    """The gradients, each one that may share memory with its weight, master copy or a state
    replaced by a copy: a step computes from the values its arrays hold when it is called,
    and the kernels write the weight and states while they still read the gradient
    (`update(0, w, w, state)` is the step of `update(0, w, w.copy(), state)`). The same
    list when no gradient needed a copy."""
    copied = None
    for k, (weight, grad, state) in enumerate(zip(weights, grads, states)):
        if isinstance(grad, RowSparse) or not hasattr(grad, "shape"):
            continue    # a row-sparse gradient's rows are gathered into new arrays first
        xp = numpy if type(grad) is numpy.ndarray else array_module(grad)
        written = [weight] + ([masters[k]] if masters is not None else []) + cuda_launch.flat_parts(state)
        if any(array_module(a) is xp and xp.may_share_memory(grad, a) for a in written
               if hasattr(a, "shape")):
            if copied is None:
                copied = list(grads)
            copied[k] = grad.copy()
    return grads if copied is None else copied


def _cuda_kernels(optimizer, weights, grads):
    """Whether this step runs generated CUDA kernels: CuPy arrays (never mixed with NumPy
    arrays in one update), dense gradients and a rule with generated kernels."""
    modules = {array_module(w).__name__ for w in weights}
    if len(modules) > 1:
        raise TypeError("one update mixes numpy and cupy weights; update each backend's parameters "
                        "in its own call")
    if modules != {"cupy"} or any(isinstance(g, RowSparse) for g in grads):
        return False
    from .backends import cupy_backend
    return cupy_backend.has_kernels(optimizer._module)


def _aggregate_from_environment(rule):
    """aggregate_num's default where MXNet reads MXNET_OPTIMIZER_AGGREGATION_SIZE."""
    raw = os.environ.get(rule["env"], "")
    try:
        value = int(raw) if raw.strip() else rule["default"]
    except ValueError:
        raise ValueError(f"{rule['env']}={raw!r} is not an integer") from None
    if "max" in rule:
        value = min(value, rule["max"])
    return max(1, value)


def _state_dtype(meta, weight_dtype):
    if meta["dtype"] == "float32" or meta.get("device"):  # "at least float32": float64 weights keep float64 states
        return numpy.promote_types(weight_dtype, numpy.float32) \
            if str(weight_dtype) != "bfloat16" else numpy.dtype(numpy.float32)
    return weight_dtype


# Shape inputs of a 2-D parameter: what states_present sees without a parameter
_MATRIX_INPUTS = {"ndim": 2, "numel": 1, "rows": 1, "cols": 1, "machine_epsilon": float(numpy.finfo(numpy.float32).eps)}


SHAPE_INPUTS = ("ndim", "numel", "rows", "cols", "machine_epsilon")
_READS_SHAPE = {}


def reads_shape(module):
    """Whether a rule reads its parameter's shape inputs (SHAPE_INPUTS) anywhere: a state's
    `when`, a condition, `requires`, `skip_if` or a host value. If not, every parameter of an
    update has the same states, and the same host scalars for the same (lr, wd, t)."""
    known = _READS_SHAPE.get(module.__name__)
    if known is None:
        functions = [module.states_present, module.conditions] \
            + [getattr(module, name) for name in ("requires", "skip") if hasattr(module, name)] \
            + [variant["host"] for variant in module.VARIANTS.values()]
        known = _READS_SHAPE[module.__name__] = module.SPEC.get("matrix") is not None or any(
            name in inspect.signature(function).parameters for function in functions for name in SHAPE_INPUTS)
    return known


def shape_inputs(spec, weight):
    """The built-in inputs that depend on the parameter's shape and dtype: ndim, numel, and
    rows and cols of its matrix view (spec's `matrix`: "last_two" sees the last two axes,
    anything else the first axis against the rest; a vector is a column, a scalar 1 x 1)."""
    shape = tuple(int(n) for n in weight.shape)
    numel = math.prod(shape)
    if spec.get("matrix") == "last_two" and len(shape) >= 2:
        rows, cols = shape[-2], shape[-1]
    elif shape:
        rows, cols = shape[0], math.prod(shape[1:])
    else:
        rows, cols = 1, 1
    try:
        eps = float(numpy.finfo(weight.dtype).eps)
    except (TypeError, ValueError):   # ml_dtypes' bfloat16
        import ml_dtypes
        eps = float(ml_dtypes.finfo(weight.dtype).eps)
    return {"ndim": len(shape), "numel": numel, "rows": rows, "cols": cols, "machine_epsilon": eps}


def state_shape(meta, weight, index, spec=None):
    """The shape a state of this metadata has for this weight: the weight's, () for scalars,
    or one value per row or column of the matrix view: (rows, 1, ...) and (1, ...) with the
    other axes, or for `matrix = "last_two"` (..., rows, 1) and (..., 1, cols). Row and
    column states need an axis: a 0-d weight is refused."""
    if meta["shape"] == "scalar":
        return ()
    if meta["shape"] not in ("rows", "cols"):
        return tuple(weight.shape)
    if weight.ndim == 0:
        raise ValueError(f"weight of parameter {index!r} is 0-d, but state '{meta['name']}' keeps one "
                         f"value per {meta['shape'][:-1]}: give the weight at least one dimension")
    shape = tuple(weight.shape)
    if (spec or {}).get("matrix") == "last_two" and len(shape) >= 2:
        return shape[:-1] + (1,) if meta["shape"] == "rows" else shape[:-2] + (1, shape[-1])
    if meta["shape"] == "rows":
        return (shape[0],) + (1,) * (len(shape) - 1)
    return (1,) + shape[1:]


# constructor arguments that config() saves as the attributes of the same names
_SAVED_ATTRIBUTES = ("rescale_grad", "wd", "clip_gradient", "begin_num_update", "multi_precision",
                     "use_fused_step")


def _state_parts(state, count):
    """The state's arrays as a tuple, or None if the layout is wrong."""
    if count == 0:
        return () if state is None else None
    if count == 1:
        return (state,) if state is not None and not isinstance(state, (tuple, list)) else None
    if isinstance(state, (tuple, list)) and len(state) == count and all(s is not None for s in state):
        return tuple(state)
    return None


def optimizer_class(module):
    """Build the Optimizer subclass for one generated module."""
    spec = module.SPEC
    hyper = [m["name"] for m in spec["hyperparameters"]]
    options = dict(spec["options"])
    options.setdefault("use_fused_step", True)
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                  inspect.Parameter("learning_rate", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=spec["learning_rate"])]
    for meta in spec["hyperparameters"]:
        parameters.append(inspect.Parameter(meta["name"], inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=meta["default"]))
    for name, default in options.items():
        if isinstance(default, dict):   # read from the environment when the optimizer is made
            default = None
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    parameters.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    signature = inspect.Signature(parameters)

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        explicit_lr = "learning_rate" in bound.arguments
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        extra = values.pop("kwargs")
        learning_rate = values.pop("learning_rate")
        if not explicit_lr and extra.get("lr_scheduler") is not None:
            learning_rate = None   # the scheduler's base_lr rules, not the class default
        hyperparameters = {name: values.pop(name) for name in hyper}
        SpecOptimizer.__init__(self, learning_rate=learning_rate, hyperparameters=hyperparameters,
                               options=values, **extra)

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{spec['name']}.__init__"
    namespace = {
        "SPEC": spec,
        "flavor": spec["flavor"],
        "_decay_suffixes": decay_suffixes(spec),
        "_skips_bad_rescale_grad": hasattr(module, "skip")
        and "rescale_grad" in inspect.signature(module.skip).parameters,
        "_module": module,
        "__init__": __init__,
        "__doc__": class_docstring(spec),
        "__module__": "optforge",
    }
    for meta in spec["hyperparameters"]:
        namespace[meta["name"]] = _hyperparameter_property(meta)
    bases = (SpecOptimizer,)
    if getattr(module, "MODES", None) is not None:   # train()/eval() (runtime/modes.py)
        from .modes import MXNetModes
        bases = (MXNetModes, SpecOptimizer)
    cls = type(spec["name"], bases, namespace)
    return cls


def _hyperparameter_property(meta):
    name = meta["name"]

    def get(self):
        return self._hyperparameters[name]

    def set_(self, value):
        self._hyperparameters[name] = validation.hyperparameter(meta, value)

    return property(get, set_, doc=meta["doc"])
