"""`Engine`: one rule's states, checks, plans and launches (see the package docstring)."""
import inspect

import numpy

from .. import validation
from ..backends import array_module, cpu, launch_table, quantized, quiet
from ..sparse import RowSparse, lazy_update
from . import plans as planning
from . import storage as stored_states
from .kept import KeptLaunches
from .layout import (MATRIX_INPUTS, SQUARE, PreconditionError, StateMeta, StepError, low_precision, master_state,
                     reads_input, reads_shape, round_into, shape_inputs, state_dtype, state_parts, state_shape, states_fit)


class Engine:
    """A rule's step over lists of arrays.

    module: the generated NumPy module; hyperparameters: {name: value} of every one the
    spec declares, checked against their ranges here (ValueError names the rule broken).
    `lazy_update`: row-sparse gradients update only their rows (the frontend's option).
    `storage`: a `storage.StateStorage` (quantized states, see engine/storage.py) or None."""

    def __init__(self, module, hyperparameters, lazy_update=None, storage=None):
        spec = module.SPEC
        self.module, self.spec, self.name = module, spec, spec["name"]
        self.hyperparameters = {meta["name"]: validation.hyperparameter(meta, hyperparameters[meta["name"]])
                                for meta in spec["hyperparameters"]}
        self.lazy_update = spec["sparse_update"] == "lazy" if lazy_update is None else lazy_update
        self.states = {meta["name"]: StateMeta.of(meta) for meta in spec["states"] if meta["shape"] != "group"}
        self.grouped = hasattr(module, "GROUP")     # group reductions and group states (engine/group.py)
        self._group_engine = None
        self.storage = storage
        self.kept = KeptLaunches(self)
        # whether the frontend must give each step its parameters' initial learning rates
        self.reads_initial_lr = reads_input(module, ("initial_lr",))

    def set_hyperparameter(self, name, value):
        """Set one hyperparameter, checked against its range."""
        meta = next(m for m in self.spec["hyperparameters"] if m["name"] == name)
        self.hyperparameters[name] = validation.hyperparameter(meta, value)
        if self._group_engine is not None:
            self._group_engine.hyperparameters[name] = self.hyperparameters[name]

    def group_engine(self):
        """The Engine of this rule's partials stage (rules with group reductions): the same
        hyperparameters, lazy_update and state storage."""
        if self._group_engine is None:
            from . import group
            self._group_engine = Engine(group.partials_module(self.module), self.hyperparameters,
                                        self.lazy_update, self.storage)
        return self._group_engine

    # -- states ------------------------------------------------------------------
    def present_states(self, weight=None):
        """The states that exist for this parameter (a state's `when` may read its shape:
        without a weight, the states of a 2-D one)."""
        shape = shape_inputs(self.spec, weight) if weight is not None else MATRIX_INPUTS
        return self.module.states_present(**self.hyperparameters, **shape)

    def stored(self, name, weight):
        """"8bit", "bfloat16" or None: how state `name` of this weight is stored (see
        engine/storage.py: the spec's `quantize`, the storage chosen, the weight's dtype and size)."""
        return stored_states.stored(self.storage, self.states[name], weight)

    def convert(self, index, name, value, weight):
        """A loaded state (a float array of any float dtype, a bfloat16 array or an 8-bit state,
        on the weight's device) in the form this engine keeps for the weight: converted when it
        was saved in another form (see storage.convert), else the same object."""
        meta = self.states[name]
        if meta.host_scalar or meta.shape != "weight":
            return value
        dtype = state_dtype(meta.meta, weight.dtype)
        return stored_states.convert(self.stored(name, weight), meta, value, weight, dtype)

    def check_parameter(self, index, weight):
        """Raise PreconditionError if the rule's `requires` refuses this parameter for what is
        known before a step (its shape and the hyperparameters)."""
        module = self.module
        if not hasattr(module, "requires"):
            return
        inputs = dict(self.hyperparameters, **shape_inputs(self.spec, weight))
        names = [p for p in inspect.signature(module.requires).parameters if p != "_"]
        if all(n in inputs for n in names) and not module.requires(**inputs):
            got = ", ".join(f"{n}={inputs[n]!r}" for n in names)
            raise PreconditionError(f"{self.name} requires {self.spec['requires']}; "
                                    f"parameter {index!r} of shape {tuple(weight.shape)} has {got}")

    def check_settings(self, values):
        """A rule's `requires` over settings alone ({name: value}: hyperparameters, lr, wd);
        ValueError when they break it (one that reads per-step inputs is checked by steps)."""
        requires = getattr(self.module, "requires", None)
        if requires is None:
            return
        names = [p for p in inspect.signature(requires).parameters if p != "_"]
        if set(names) <= set(values) and not requires(**values):
            settings = ", ".join(f"{n}={values[n]!r}" for n in names)
            raise ValueError(f"{self.name} requires {self.spec['requires']}; got {settings}")

    def create_state(self, index, weight):
        """The states of a new parameter: None, one array, or a tuple in declaration order."""
        xp = validation.float_weight(index, weight)
        self.check_parameter(index, weight)
        present = self.present_states(weight)
        arrays = []
        for name in present:
            state = self.states[name]
            meta = state.meta
            dtype = state_dtype(meta, weight.dtype)
            if state.device_scalar:
                arrays.append(xp.full((), self._scalar_init(meta), dtype=dtype))
            elif state.host_scalar:
                arrays.append(numpy.array(self._scalar_init(meta), dtype=numpy.float64))
            elif meta["shape"] in ("rows", "cols"):
                arrays.append(xp.zeros(state_shape(meta, weight, index, self.spec), dtype=dtype))
            elif meta["shape"] in SQUARE:
                arrays.append(self._square_init(meta, state_shape(meta, weight, index, self.spec), dtype, xp))
            elif meta["init"] == "weight":
                arrays.append(weight.astype(dtype, copy=True))
            elif meta["init"] != "zeros":    # a hyperparameter's name: filled with its value now
                arrays.append(xp.full(weight.shape, self.hyperparameters[meta["init"]], dtype=dtype))
            else:
                arrays.append(xp.zeros(weight.shape, dtype=dtype))
            kind = self.stored(name, weight) if self.storage is not None else None
            if kind is not None:
                arrays[-1] = stored_states.create(kind, state, arrays[-1])
        if not arrays:
            return None
        return arrays[0] if len(arrays) == 1 else tuple(arrays)

    def _square_init(self, meta, shape, dtype, xp):
        """A square state's first value: zeros, or a multiple of the identity in every matrix
        ("identity", a number, or the hyperparameter it names: Shampoo's epsilon * I)."""
        array = xp.zeros(shape, dtype=dtype)
        if meta["init"] != "zeros":
            scale = 1.0 if meta["init"] == "identity" else self._scalar_init(meta)
            diagonal = xp.arange(shape[-1])
            array[..., diagonal, diagonal] = scale
        return array

    def _scalar_init(self, meta):
        """A scalar state's first value: its number, or the hyperparameter it names."""
        init = meta["init"]
        return self.hyperparameters[init] if isinstance(init, str) else init

    def check(self, indices, weights, grads, states):
        """Raise before anything changes if the arrays or states do not fit (ValueError or
        TypeError naming the parameter and what is wrong)."""
        validation.check_pairs(indices, weights, grads)
        if self.storage is None and not reads_shape(self.module):     # one state layout for every parameter
            if states_fit(weights, states, [self.states[name] for name in self.present_states()]):
                return      # every check below holds (tested over the whole update at once)
        dtypes = {}     # (state name, weight dtype) -> the state's dtype, looked up once per call
        for index, weight, state in zip(indices, weights, states):
            present = self.present_states(weight)
            parts = state_parts(state, len(present))
            if parts is None:
                layout_text = "None" if not present else present[0] if len(present) == 1 \
                    else "(" + ", ".join(present) + ")"
                raise ValueError(f"state of parameter {index!r} does not match {self.name}'s state layout "
                                 f"{layout_text} for these hyperparameters; create it with create_state")
            on_host = type(weight) is numpy.ndarray
            xp = numpy if on_host else array_module(weight)
            for name, part in zip(present, parts):
                meta = self.states[name]
                if meta.host_scalar:
                    if not (isinstance(part, numpy.ndarray) and part.shape == ()):
                        raise ValueError(f"state '{name}' of parameter {index!r} must be a 0-d "
                                         f"numpy array, got {type(part).__name__}")
                    validation.state_array_writable(index, name, part)
                    continue
                kind = self.stored(name, weight) if self.storage is not None else None
                if kind is not None:
                    stored_states.check(index, meta, kind, part, weight, xp)
                    continue
                if isinstance(part, quantized.Blockwise8bit):
                    raise ValueError(f"state '{name}' of parameter {index!r} is an 8-bit state, but this "
                                     f"optimizer keeps it unquantized for this weight (state_storage="
                                     f"{self.storage.kind if self.storage else None!r}); load it through "
                                     "load_state_dict / set_states, which convert it")
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
                shape = weight.shape if meta.shape == "weight" else state_shape(meta.meta, weight, index, self.spec)
                if tuple(part.shape) != tuple(shape):
                    raise ValueError(f"state '{name}' of parameter {index!r} has shape "
                                     f"{tuple(part.shape)}, expected {tuple(shape)}")
                dtype = dtypes.get((name, weight.dtype))
                if dtype is None:
                    dtype = dtypes[(name, weight.dtype)] = numpy.dtype(state_dtype(meta.meta, weight.dtype))
                if part.dtype != dtype:
                    raise ValueError(f"state '{name}' of parameter {index!r} has dtype {part.dtype}, "
                                     f"expected {dtype}")
                if xp is not numpy and part.device != weight.device:
                    raise ValueError(f"state '{name}' of parameter {index!r} is on {part.device}, "
                                     f"the weight on {weight.device}")
                validation.state_array_writable(index, name, part)

    # -- plans -------------------------------------------------------------------
    def plans(self, indices, weights, states, inputs):
        """Each parameter's `Plan` (None where the rule's skip_if holds) for `StepInputs`;
        StepError when the host arithmetic fails (FTML with lr = 0 divides by lr),
        PreconditionError when a step breaks the rule's `requires`."""
        try:
            return planning.plans(self, indices, weights, states, inputs)
        except PreconditionError:
            raise
        except (ArithmeticError, ValueError) as err:
            raise StepError(f"{self.name}: cannot compute this step's scalars: {err}") from err

    def host_inputs(self, rescale_grad=1.0, clip_gradient=None):
        """The host functions' inputs every parameter shares: hyperparameters, rescale_grad,
        clip_gradient (lr, wd, t and the per-parameter inputs are added to a copy)."""
        return dict(self.hyperparameters, rescale_grad=rescale_grad, clip_gradient=clip_gradient)

    def host_result(self, inputs, index=None):
        """The `plans.HostResult` of one parameter's complete host inputs (a dict of every
        input the module's functions read), None when skip_if holds."""
        namespace = vars(self.module)
        return planning.host_result(self, inputs, index, namespace.get("requires"), namespace.get("skip"))

    # -- steps -------------------------------------------------------------------
    def launch(self, indices, weights, grads, states, fused=True, masters=None):
        """A `Launch` of these arrays: the backend chosen and the arrays it needs checked (CuPy
        arrays: one device, contiguous; NumPy arrays: whether the native kernels apply). The
        checks of `check` are the caller's (done once per call, or shown by a kept launch).
        With `masters` (float32 master copies of float16/bfloat16 weights) the master-copy
        kernels update the masters and states and round into the weights in one pass."""
        return Launch(self, indices, weights, grads, states, fused, masters)

    def multi_precision(self, indices, weights, grads, states, fused=True):
        """The Launch of an update whose float16/bfloat16 weights step through float32 master
        copies (their states (master copy, inner state) pairs; other weights' states plain):
        the master-copy kernels in one pass where they apply (CuPy arrays, or NumPy arrays the
        native kernels take, every weight 16-bit), else the rule on the masters and float32
        gradients, each master rounded into its weight after the rule ran. Arrays checked."""
        low = list(map(low_precision, weights))
        if fused and weights and all(low) and not self._stored_inner(indices, weights, states) \
                and self._master_kernels(indices, weights, grads, states):
            for index, weight, grad in zip(indices, weights, grads):
                validation.check_pair(index, weight, grad)
            split = [master_state(index, weight, state) for index, weight, state in zip(indices, weights, states)]
            masters, inner = [m for m, _ in split], [s for _, s in split]
            self.check(indices, masters, masters, inner)    # the states must fit the master copies
            return Launch(self, indices, weights, grads, inner, True, masters)
        masters, grads32, inner = [], [], []
        for index, weight, grad, state, is_low in zip(indices, weights, grads, states, low):
            if is_low:
                validation.check_pair(index, weight, grad)
                master, inner_state = master_state(index, weight, state)
                masters.append(master)
                grads32.append(grad.astype(numpy.float32))
                inner.append(inner_state)
            else:
                masters.append(weight)
                grads32.append(grad)
                inner.append(state)
        self.check(indices, masters, grads32, inner)
        launch = Launch(self, indices, masters, grads32, inner, fused)
        launch.rounded = (weights, masters, low)
        return launch

    def _stored_inner(self, indices, weights, states):
        """Whether the inner states of multi-precision states hold quantized ones."""
        if self.storage is None:
            return False
        try:
            split = [master_state(index, weight, state) for index, weight, state in zip(indices, weights, states)]
        except ValueError:
            return False
        return self.has_stored([m for m, _ in split], [s for _, s in split])

    def _master_kernels(self, indices, weights, grads, states):
        """Whether master-copy kernels run these 16-bit weights in one pass: the CUDA ones on
        CuPy arrays, the native CPU ones on NumPy arrays where they apply."""
        if _cuda_kernels(self, weights, grads):
            return True
        try:
            split = [master_state(index, weight, state) for index, weight, state in zip(indices, weights, states)]
        except ValueError:
            return False
        return cpu.native(self.module, weights, grads, [s for _, s in split], [m for m, _ in split]) is not None

    def switch(self, mode, indices, weights, states, multi_precision=False):
        """A rule with [modes]: every array checked, then a function rewriting each weight to
        `mode` ("train" or "eval"); see engine/mode_switch.py."""
        from . import mode_switch
        return mode_switch.prepare(self, mode, indices, weights, states, multi_precision)

    def execute(self, weight, grad, plan, fused):
        """One parameter's planned step through the generated NumPy code (NumPy or CuPy
        arrays), or its native or CUDA stage kernels for matrix rules."""
        variant, arrays, scalars, updates, scalar_arrays, t, index = plan[:7]
        xp = array_module(weight)
        kernel = variant["kernel"]
        stored = [k for k, a in enumerate(arrays) if quantized.is_stored(weight, a)] if self.storage else ()
        if stored:
            # quantized states: loaded into float32 arrays, the rule run on them, stored back
            held = arrays
            arrays = list(arrays)
            for k in stored:
                arrays[k] = quantized.load(held[k])
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
                    names = [n for n in variant["states"] if not self.states[n].host_scalar]
                    arrays = [a if self.states[n].shape == "scalar" else a.reshape(1)
                              for n, a in zip(names, arrays)]
                    weight, grad = weight.reshape(1), grad.reshape(1)
                module = self.module
                if fused and xp is numpy and variant["elementwise"] and cpu.blockable(weight, grad, arrays):
                    cpu.run_blocked(kernel, weight, grad, arrays, scalars)
                elif fused and xp is numpy and variant.get("stages") \
                        and cpu.run_stages(module, variant, weight, grad, arrays, scalars):
                    pass        # a matrix rule's stage kernels between NumPy products
                elif fused and xp is not numpy and variant.get("stages") \
                        and _cuda_stages(module, variant, weight, grad, arrays, scalars):
                    pass        # its CUDA stage kernels between cuBLAS products
                else:
                    kernel(xp, weight, grad, *arrays, **scalars)
        for k in stored:
            quantized.store(held[k], arrays[k].reshape(held[k].shape),
                            self.rounding_key(index, t, k))
        for name, value in updates.items():
            scalar_arrays[name][...] = value

    def rounding_key(self, index, t, slot):
        """The stochastic rounding key of one state's store in one step (None: to nearest);
        `slot`: the state's position among the plan's arrays. The native kernels take the
        same keys (backends/launch_table.rounding_keys)."""
        if self.storage is None or not self.storage.stochastic:
            return None
        from ..noise import philox_key
        return quantized.rounding_key(philox_key(0, index), t, slot)

    def has_stored(self, weights, states):
        """Whether any of these states is stored quantized (the kernels that take them are
        chosen by backends/native.py; every other path loads and stores them around the rule)."""
        if self.storage is None:
            return False
        return any(quantized.is_stored(weight, part) for weight, state in zip(weights, states)
                   for part in _parts(state))


class Launch:
    """A step of one list of arrays on its backend: `plan(inputs)` (host scalars; the native
    kernels compiled or loaded; raises with nothing changed), then `run()`."""

    rounded = None      # (low-precision weights, master copies) to round after the rule ran

    def __init__(self, engine, indices, weights, grads, states, fused, masters=None):
        module = engine.module
        if fused and engine.has_stored(masters or weights, states) and not _quantized_kernels(engine, weights, masters):
            fused = "stored"    # quantized states: the NumPy code around load and store
        gpu = fused is True and _cuda_kernels(engine, weights, grads)
        if gpu:
            from ..backends import cupy_backend
            cupy_backend.check(indices, weights, grads, states, masters)
        native = fused is True and not gpu and cpu.native(module, weights, grads, states, masters)
        if not native:      # (the native kernels apply only to arrays that share no memory)
            unaliased = _unaliased(weights, grads, states, masters)
            if unaliased is not grads:
                grads = unaliased
                native = fused is True and not gpu and cpu.native(module, weights, grads, states, masters)
        self.write_back = None
        if fused is True and not gpu and not native and masters is None and cpu.draws_noise(module):
            # the noise of the native kernels, whatever the arrays' layout (cpu.native_on_copies)
            staged = cpu.native_on_copies(module, weights, grads, states)
            if staged is not None:
                weights, grads, states, native, self.write_back = staged
        self.engine, self.indices, self.weights, self.grads, self.states = engine, indices, weights, grads, states
        self.fused, self.masters, self.gpu, self.native = fused, masters, gpu, native
        self.planned = None

    group_updates = None    # rules with group reductions: the group states' new values after run()

    def plan(self, inputs):
        """Every parameter's Plan for `StepInputs`, and the native kernels they run built. A
        rule with group reductions runs its partials stage over these parameters first (they
        are the group; `inputs.group` holds the group states; a frontend that split the group
        into several launches gives the values it combined in `inputs.group` instead) and sets
        `group_updates`."""
        engine = self.engine
        if engine.grouped:
            from . import group
            held = group.check_states(engine, inputs.group or {})
            found = {name: value for name, value in (inputs.group or {}).items() if name.startswith("_group")}
            if not found:   # (a frontend that split the group into batches gives the values it combined)
                found = group.values(engine, self.indices, self.masters or self.weights, self.grads, self.states,
                                     inputs, held, bool(self.fused))
            inputs = inputs._replace(group={**held, **found})
        planned = engine.plans(self.indices, self.masters or self.weights, self.states, inputs)
        if engine.grouped:
            self.group_updates = group.updates(engine, planned)
        if self.native:
            from ..backends import native as native_backend
            native_backend.build(engine.module, self.weights, planned, self.masters, engine.storage)
        self.planned = planned
        return planned

    def run(self):
        engine, planned = self.engine, self.planned
        if self.gpu:
            from ..backends import cupy_backend
            cupy_backend.execute(engine, self.indices, self.weights, self.grads, planned, self.masters)
        elif self.native:
            from ..backends import native as native_backend
            native_backend.execute(engine, self.indices, self.weights, self.grads, planned, self.native,
                                   self.masters)
            if self.write_back is not None:
                self.write_back()
            elif self.masters is None:
                engine.kept.keep(self.indices, self.weights, self.grads, self.states, planned)
        else:
            for weight, grad, plan in zip(self.weights, self.grads, planned):
                if plan is not None:
                    engine.execute(weight, grad, plan, self.fused)
        if self.rounded is not None:
            round_into(*self.rounded)


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
        written = [weight] + ([masters[k]] if masters is not None else []) + launch_table.flat_parts(state)
        if any(array_module(a) is xp and xp.may_share_memory(grad, a) for a in written
               if hasattr(a, "shape")):
            if copied is None:
                copied = list(grads)
            copied[k] = grad.copy()
    return grads if copied is None else copied


def _parts(state):
    """A state's parts (None, an array, an 8-bit state, or tuples of them), an 8-bit state whole."""
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _parts(s)]
    return [] if state is None else [state]


def _quantized_kernels(engine, weights, masters):
    """Whether stored states may run the kernels that load and store them in the rule's pass:
    without master copies, NumPy arrays and a rule with native kernels for them
    (codegen/emitters/cpu_quantized.py; whether the arrays qualify is then `cpu.native`'s
    check as for any update), or CuPy arrays and a rule with CUDA kernels for them
    (codegen/emitters/cuda_quantized.py; then `_cuda_kernels` as for any update). Under
    OPTFORGE_CPU_BACKEND=native a rule without native ones raises (nothing has changed yet)."""
    if masters is not None:
        return False
    if all(type(w) is numpy.ndarray for w in weights):
        from ..backends import native
        return native.quantized_kernels(engine.module)
    if weights and all(array_module(w).__name__ == "cupy" for w in weights):
        from ..backends import cupy_backend
        return cupy_backend.quantized_kernels(engine.module)
    return False


def _cuda_kernels(engine, weights, grads):
    """Whether this step runs generated CUDA kernels: CuPy arrays (never mixed with NumPy
    arrays in one update), dense gradients and a rule with generated kernels."""
    modules = {array_module(w).__name__ for w in weights}
    if len(modules) > 1:
        raise TypeError("one update mixes numpy and cupy weights; update each backend's parameters "
                        "in its own call")
    if modules != {"cupy"} or any(isinstance(g, RowSparse) for g in grads):
        return False
    from ..backends import cupy_backend
    return cupy_backend.has_kernels(engine.module)


def _cuda_stages(module, variant, weight, grad, arrays, scalars):
    """A matrix rule's CUDA stage kernels (backends/cupy_matrix.py, imported only here:
    `import optforge` loads no backend module it does not need)."""
    from ..backends import cupy_matrix
    return cupy_matrix.run(module, variant, weight, grad, arrays, scalars)
