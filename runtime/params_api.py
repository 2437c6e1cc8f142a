"""The params-style API (PyTorch's torch.optim, MindSpore's experimental.optim) over the
spec-built optimizers.

An optimizer holds parameters in groups (dicts whose keys override the defaults),
is called as `optimizer(grads)` or `optimizer.step(grads)` and saves its state in
torch's layout. It holds no math: each group drives the rule's `Engine` (runtime/engine/)
for the group's values, whose generated kernels update the parameters in place, with its
validation and state layout; the update counts are this optimizer's (torch's `step`).
Argument names follow torch:
`lr`, `weight_decay` (the rule's wd), tuples such as `betas` for the hyperparameters
that share a keyword, `eps` for `epsilon`.
"""
import inspect

from ..conventions.arguments import chosen, default_arguments, keywords, written
from ..conventions.state_storage import KEYWORDS as STORAGE_KEYWORDS, MIN_8BIT_SIZE
from ..conventions import torch_keywords
from . import array_views, validation
from .backends import array_module, quantized
from .docstrings import class_docstring, hyperparameter_lines
from .engine import Engine, StateMeta, StepInputs, state_dtype, state_parts, state_shape
from .engine import group as group_values
from .engine import storage as stored_states
from .backends.quantized import Blockwise8bit

def learning_rate(value, key="lr"):
    """A group's lr (or initial_lr: `key`; a number or a one-element array) as a float;
    ValueError unless >= 0 and finite."""
    try:
        return validation.number(key, array_views.to_float(value), minimum=0.0)
    except ValueError as err:
        raise ValueError(f"Invalid {'learning rate' if key == 'lr' else key}: {err}") from None


def initial_lr(group):
    """A group's initial_lr (rules that read the input), validated; a group without one (from
    a state dict or pickle saved before) takes its lr now, as torch's schedulers do."""
    return learning_rate(group.setdefault("initial_lr", group["lr"]), "initial_lr")


def group_states(engine, group):
    """A param group's group states ({name: float}; rules with group reductions keep them in
    the group's dict, as prodigyopt keeps its d), added with their initial values where the
    group has none yet (a new group, a state dict saved before), each checked to be a number."""
    for name, value in group_values.initial_states(engine).items():
        group.setdefault(name, value)
    return group_values.check_states(engine, group, "the param group's values")


def _but_lr(values):
    """A group's (key, value) pairs without its lr."""
    return tuple(item for item in values if item[0] != "lr")


def build_engine(spec_class, group, storage=None, torch_tensors=False):
    """The rule's Engine for one group's torch-named values (lr and weight_decay validated
    too; ValueError names the argument at fault, and a rule's `requires` over them), with the
    optimizer's state storage (`engine.storage.StateStorage` or None). `torch_tensors`:
    optforge.torch's, whose rules may run their products in a lower precision through torch
    (conventions/torch_keywords.TORCH_PRODUCTS); the other families refuse that."""
    spec = spec_class.SPEC
    lr = learning_rate(group["lr"])
    wd = weight_decay(group["weight_decay"])
    hyperparameters = {}
    metas = {m["name"]: m for m in spec["hyperparameters"]}
    for keyword, names in keywords(spec):
        value = group[keyword]
        if len(names) > 1:
            if not isinstance(value, (tuple, list)) or len(value) != len(names):
                raise ValueError(f"Invalid {keyword}: expected {len(names)} values "
                                 f"({', '.join(written(metas[n]) for n in names)}), got {value!r}")
            items = list(zip(names, value))
        else:
            items = [(names[0], value)]
        for i, (name, item) in enumerate(items):
            meta = next(m for m in spec["hyperparameters"] if m["name"] == name)
            try:
                hyperparameters[name] = validation.hyperparameter(meta, array_views.to_float(item))
            except ValueError as err:
                where = f"{keyword}[{i}]" if len(names) > 1 else keyword
                raise ValueError(f"Invalid {where} value: {err}") from None
    if not torch_tensors:
        torch_keywords.check_products(spec, hyperparameters)
    engine = Engine(spec_class._module, hyperparameters, storage=storage)
    engine.check_settings(dict(hyperparameters, lr=lr, wd=wd))
    return engine


def weight_decay(value):
    """A group's weight_decay as a float; ValueError unless >= 0 and finite."""
    try:
        return validation.number("weight_decay", array_views.to_float(value), minimum=0.0)
    except ValueError as err:
        raise ValueError(f"Invalid weight_decay value: {err}") from None


class Counted:
    """A step of one batch, counted and planned, not run yet: `run()` runs its kernels,
    `cancel()` puts the update counts back."""

    def __init__(self, counts, ids, launch, lr, wd, rescale_grad=1.0, initial_lr=None, group=None):
        """Advance `counts` (param id -> updates so far) for `ids`, then plan `launch` (an
        engine Launch or kept launch); `failed` when the plans leave a kept launch (the
        counts are back then). Planning errors raise with the counts back. `group`: the param
        group's dict of a rule with group states, which `run()` writes their new values into."""
        self.counts, self.before = counts, {pid: counts.get(pid, 0) for pid in ids}
        ts = [self.before[pid] + 1 for pid in ids]
        counts.update(zip(ids, ts))
        n = len(ids)
        try:
            initial = None if initial_lr is None else [initial_lr] * n
            held = group_states(launch.engine, group) if group is not None else None
            planned = launch.plan(StepInputs(ts, [lr] * n, [wd] * n, rescale_grad, initial_lrs=initial, group=held))
        except BaseException:
            self.cancel()
            raise
        self.failed = planned is False
        if self.failed:
            self.cancel()
        self.run = launch.run
        if group is not None:
            def run():
                launch.run()
                group.update(launch.group_updates)
            self.run = run

    def cancel(self):
        for pid, count in self.before.items():
            if count:
                self.counts[pid] = count
            else:
                self.counts.pop(pid, None)


class Optimizer:
    """Base of the params-style optimizers; see `params_class`."""

    spec_class = None     # the spec-built class whose rule (module, SPEC) the engines run

    def __init__(self, params, state_storage=None, min_8bit_size=MIN_8BIT_SIZE, **defaults):
        self.storage = stored_states.state_storage(state_storage, min_8bit_size, type(self).__name__)
        self.defaults = defaults
        self.param_groups = []
        self.state = {}         # param id -> the engine's state (None, an array or a tuple)
        self._engines = []      # per group: (values the engine was built from, engine)
        self._counts = {}       # param id -> its updates so far (torch's `step`)
        self._params = []       # every parameter, in id order
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # -- groups ---------------------------------------------------------------------
    def add_param_group(self, group):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a param group is a dict with a 'params' entry")
        group = dict(group)
        params = group["params"]
        params = [params] if array_views.family(params) is not None else list(params)
        for k, p in enumerate(params):
            if array_views.family(p) is None:
                raise TypeError(f"parameters must be numpy, cupy or torch arrays, got {type(p).__name__}")
            if any(p is q for q in self._params):
                raise ValueError("some parameters appear in more than one parameter group")
            if any(p is q for q in params[:k]):
                raise ValueError(f"parameter {k} of the group appears twice in it (each parameter "
                                 "must appear once: it would be updated twice per step)")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        engine = self._build(group)    # validates before anything is kept
        if engine.reads_initial_lr:    # the rule's `initial_lr`, where torch's schedulers keep it
            initial_lr(group)
        if engine.grouped:      # the group states live in the group (group_values.initial_states)
            group_states(engine, group)
        first = len(self._params)
        for k, p in enumerate(params):   # a rule's `requires` on the shape (Muon: 2-D only)
            engine.check_parameter(first + k, array_views.view(p))
        self._engines.append((self._values(group), engine))
        self._params.extend(params)
        self.param_groups.append(group)

    def _ids(self, group_index):
        start = sum(len(g["params"]) for g in self.param_groups[:group_index])
        return list(range(start, start + len(self.param_groups[group_index]["params"])))

    def _values(self, group):
        return tuple((key, group[key]) for key in self.defaults)

    def _build(self, group):
        """The rule's Engine for one group's values; ValueError names the argument at fault."""
        return build_engine(self.spec_class, group, self.storage)

    def _engine(self, group_index):
        """The group's engine, rebuilt when the group's values other than lr changed (a new
        lr alone, a scheduler's every step, is validated and read at the step)."""
        values, engine = self._engines[group_index]
        group = self.param_groups[group_index]
        now = self._values(group)
        if now != values and _but_lr(now) == _but_lr(values):
            learning_rate(group["lr"])
            self._engines[group_index] = (now, engine)
        elif now != values:
            fresh = self._build(group)
            fresh.kept.adopt(engine.kept)    # they keep arrays only: valid for any values
            self._engines[group_index] = (self._values(group), fresh)
            engine = fresh
        return engine

    # -- stepping -----------------------------------------------------------------------
    def __call__(self, grads):
        """MindSpore's call form: `optimizer(grads)` with one gradient per parameter."""
        return self.step(grads)

    def step(self, grads=None, closure=None):
        """One update of every parameter that has a gradient (None skips a parameter).

        `grads` lists the gradients in parameter order; without it, torch tensors' `.grad`
        are used. Every array is checked before any state is created or changed."""
        loss = closure() if closure is not None else None
        if grads is None:
            if any(array_views.family(p) != "torch" for p in self._params):
                raise TypeError("step() needs the gradients (one per parameter) unless every "
                                "parameter is a torch tensor with .grad")
            grads = [p.grad for p in self._params]
        grads = list(grads)
        if len(grads) != len(self._params):
            raise ValueError(f"got {len(grads)} gradients for {len(self._params)} parameters")
        plan, kept = [], []
        try:
            for group_index, group in enumerate(self.param_groups):
                engine = self._engine(group_index)
                ids, weights, gradients = self._numpy_group(group_index, grads)
                if ids is None:
                    ids, weights, gradients = self._group_arrays(group_index, grads)
                states = list(map(self.state.get, ids))
                if not ids:
                    continue
                lr, wd = learning_rate(group["lr"]), weight_decay(group["weight_decay"])
                if engine.kept and all(state is not None for state in states):
                    # the arrays of an earlier update: its kept launch shows what check would
                    launch = engine.kept.find(ids, weights, gradients, states)
                    if launch is not None:
                        step = Counted(self._counts, ids, launch, lr, wd)
                        if not step.failed:
                            kept.append(step)
                            continue
                existing = [k for k, pid in enumerate(ids) if pid in self.state]
                engine.check([ids[k] for k in existing], [weights[k] for k in existing],
                             [gradients[k] for k in existing], [states[k] for k in existing])
                initial = initial_lr(group) if engine.reads_initial_lr else None
                plan.append((engine, ids, weights, gradients, states, lr, wd, initial, group))
        except BaseException:
            for step in reversed(kept):
                step.cancel()
            raise
        # every group is counted and planned before any kernel runs: a group that cannot step
        # (FTML with lr = 0) leaves every group's weights, states and counts as they were
        prepared, created = kept, {}
        try:
            for engine, ids, weights, gradients, states, lr, wd, initial, group in plan:
                for k, pid in enumerate(ids):
                    if states[k] is None and pid not in self.state:
                        states[k] = created[pid] = engine.create_state(pid, weights[k])
                launch = engine.launch(ids, weights, gradients, states, fused=True)
                prepared.append(Counted(self._counts, ids, launch, lr, wd, initial_lr=initial,
                                        group=group if engine.grouped else None))
        except BaseException:
            for step in reversed(prepared):
                step.cancel()
            raise
        self.state.update(created)
        for step in prepared:
            step.run()
        return loss

    def _numpy_group(self, group_index, grads):
        """(ids, weights, gradients) of a group's parameters that have a gradient, when all of
        them and their gradients are NumPy arrays whose pairs `validation.pairs_fit` shows
        (checked as maps over the group); (None, None, None) otherwise."""
        pids = self._ids(group_index)
        ids = [pid for pid in pids if grads[pid] is not None]
        weights = list(map(self._params.__getitem__, ids))
        gradients = list(map(grads.__getitem__, ids))
        if validation.pairs_fit(ids, weights, gradients):     # plain NumPy arrays only
            return ids, weights, gradients
        return None, None, None

    def _group_arrays(self, group_index, grads):
        """(ids, weights, gradients) of a group's parameters that have a gradient, as views,
        each pair checked (the errors name the parameter)."""
        ids, weights, gradients = [], [], []
        for pid in self._ids(group_index):
            param, grad = self._params[pid], grads[pid]
            if grad is None:
                continue
            if array_views.family(grad) != array_views.family(param):
                raise TypeError(f"parameter {pid} is a {array_views.family(param)} array but its gradient "
                                f"is {array_views.family(grad) or type(grad).__name__}")
            weight, gradient = array_views.view(param), array_views.view(grad)
            validation.check_pair(pid, weight, gradient)
            ids.append(pid)
            weights.append(weight)
            gradients.append(gradient)
        return ids, weights, gradients

    def zero_grad(self, set_to_none=True):
        """Clear torch tensors' gradients (NumPy and CuPy parameters carry none)."""
        for p in self._params:
            if array_views.family(p) == "torch" and p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    # -- saving in torch's layout ------------------------------------------------------------
    def _state_names(self, engine, pid=None):
        weight = array_views.view(self._params[pid]) if pid is not None else None
        return list(engine.present_states(weight))

    def state_dict(self):
        """{'state': {param id: {'step': ..., <state name>: array}}, 'param_groups': [...]},
        torch's layout; the arrays are the live states, as the parameters' kind of array (but
        a bfloat16 state of CuPy parameters: a bfloat16 NumPy copy, storage.saved)."""
        state = {}
        groups = []
        for group_index, group in enumerate(self.param_groups):
            engine = self._engine(group_index)
            ids = self._ids(group_index)
            for pid in ids:
                if pid not in self.state:
                    continue
                names = self._state_names(engine, pid)
                param = self._params[pid]
                entry = {"step": array_views.scalar_like(self._counts.get(pid, 0), param)}
                for name, part in zip(names, state_parts(self.state[pid], len(names))):
                    for key, array in stored_states.items(name, part):    # 8-bit: codes and absmax
                        entry[key] = stored_states.saved(array, param)
                state[pid] = entry
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = ids
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state_dict() (this optimizer's or torch's layout): checked whole first, so a
        state dict of another optimizer or with wrong entries changes nothing."""
        name = type(self).__name__
        validation.entries("the loaded state dict", state_dict, ("state", "param_groups"))
        groups, saved_states = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or not isinstance(saved_states, dict):
            raise ValueError("a state dict has 'state' (a dict) and 'param_groups' (a list)")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, this optimizer "
                             f"{len(self.param_groups)}")
        new_groups, engines = [], []
        for group_index, (saved, group) in enumerate(zip(groups, self.param_groups)):
            keys = ("params", *self.defaults)
            missing = [key for key in keys if key not in saved] if isinstance(saved, dict) else keys
            if missing:   # extra keys are fine: torch's groups carry foreach, maximize, ...
                raise ValueError(f"parameter group {group_index} of the loaded state dict lacks "
                                 f"{', '.join(map(repr, missing))}: {name} expects {', '.join(map(repr, keys))} "
                                 "(is it the state dict of another optimizer?)")
            if not isinstance(saved["params"], (list, tuple)):
                raise ValueError(f"parameter group {group_index} of the loaded state dict lists its "
                                 f"parameters as {type(saved['params']).__name__}, not a list of ids")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {group_index} has {len(saved['params'])} parameters "
                                 f"in the loaded state dict, {len(group['params'])} here")
            merged = dict(saved, params=group["params"])
            engine = self._build(merged)
            if engine.reads_initial_lr:     # checked with the rest; a group without one takes its lr
                initial_lr(merged)
            engines.append((self._values(merged), engine))
            new_groups.append(merged)
        old_to_new = {}
        for saved, group_index in zip(groups, range(len(groups))):
            old_to_new.update(zip(saved["params"], self._ids(group_index)))
        states, counts = {}, {}
        metas = {m["name"]: m for m in self.spec_class.SPEC["states"]}
        for old_id, entry in saved_states.items():
            if old_id not in old_to_new:
                raise ValueError(f"loaded state dict has a state for unknown parameter id {old_id!r}")
            pid = old_to_new[old_id]
            group_index = next(i for i in range(len(new_groups)) if pid in self._ids(i))
            engine = engines[group_index][1]
            names = self._state_names(engine, pid)
            expected = {"step", *names}
            absmax = {state + stored_states.ABSMAX for state in names if metas[state].get("quantize")}
            if not isinstance(entry, dict) or not expected <= set(entry) <= expected | absmax:
                got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise ValueError(f"state of parameter {pid} has keys {got}, {name} expects {sorted(expected)} "
                                 "(and <state>_absmax beside each 8-bit state)")
            weight = array_views.view(self._params[pid])
            parts = [engine.convert(pid, state, self._load_array(pid, state, entry, metas[state], weight,
                                                                   self.spec_class.SPEC), weight)
                     for state in names]
            states[pid] = None if not parts else parts[0] if len(parts) == 1 else tuple(parts)
            step = array_views.to_float(entry["step"])
            counts[pid] = validation.count(f"step of parameter {pid}",
                                           int(step) if isinstance(step, float) and step.is_integer() else step)
        self.param_groups = new_groups
        self._engines = engines
        self.state = states
        self._counts = counts

    @staticmethod
    def _load_array(pid, name, entry, meta, weight, spec=None):
        """One saved state (`entry[name]`, with `entry[name + "_absmax"]` for an 8-bit one) as
        a copy on the weight's device: the array the engine keeps (its shape and dtype), or the
        state as saved (bfloat16, 8-bit) for the engine to convert."""
        import numpy
        value = entry[name]
        if name + stored_states.ABSMAX in entry:
            return _load_8bit(pid, name, value, entry[name + stored_states.ABSMAX], meta, weight)
        if StateMeta.of(meta).host_scalar:
            value = array_views.to_float(value)
            return numpy.array(validation.number(f"state '{name}' of parameter {pid}", value),
                               dtype=numpy.float64)
        array = array_views.view(value) if array_views.family(value) is not None else numpy.asarray(value)
        if array_views.family(value) == "torch" and str(value.dtype) == "torch.bfloat16" and not value.is_cpu:
            array = array_views.bits(value)      # a bfloat16 CUDA tensor: its bits (CuPy has no bfloat16)
        shape = state_shape(meta, weight, pid, spec)
        if tuple(array.shape) != shape:
            raise ValueError(f"state '{name}' of parameter {pid} has shape {tuple(array.shape)}, "
                             f"expected {shape}")
        xp = array_module(weight)
        if meta.get("quantize") and quantized.is_bfloat16(array):
            # a bfloat16 state (on CuPy arrays its bits), copied into the weight's array module's
            # form: the engine converts it if it keeps another form
            if xp is numpy:
                copy = quantized.bfloat16_as(array, numpy)
                return copy.copy() if copy is array else copy
            with weight.device:
                return xp.array(quantized.bfloat16_as(array, xp), copy=True)
        if array.dtype.kind not in "fiu":
            raise ValueError(f"state '{name}' of parameter {pid} has dtype {array.dtype}, not a number")
        dtype = state_dtype(meta, weight.dtype)
        if xp is numpy:
            array = array.get() if hasattr(array, "get") else array
            return numpy.array(array, dtype=dtype, copy=True)
        with weight.device:
            return xp.array(array, dtype=dtype, copy=True)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {value}" for key, value in sorted(group.items()) if key != "params"]
        return "\n".join(lines + [")"])


def _load_8bit(pid, name, codes, absmax, meta, weight):
    """A saved 8-bit state (uint8 codes of the weight's shape, float32 absmax per block), copied."""
    import numpy

    from .backends.quantized import blocks

    def host(value):
        array = array_views.view(value) if array_views.family(value) is not None else numpy.asarray(value)
        return array.get() if hasattr(array, "get") else array

    codes, absmax = host(codes), host(absmax)
    if tuple(codes.shape) != tuple(weight.shape) or codes.dtype != numpy.uint8:
        raise ValueError(f"state '{name}' of parameter {pid}: 8-bit codes of shape {tuple(codes.shape)} and "
                         f"dtype {codes.dtype}, expected {tuple(weight.shape)} and uint8")
    if tuple(absmax.shape) != (blocks(weight.size),) or absmax.dtype.kind != "f":
        raise ValueError(f"state '{name}' of parameter {pid}: absmax of shape {tuple(absmax.shape)} and dtype "
                         f"{absmax.dtype}, expected ({blocks(weight.size)},) floats")
    state = Blockwise8bit(numpy.array(codes, copy=True), numpy.array(absmax, dtype=numpy.float32, copy=True),
                          meta.get("quantize") != "unsigned")
    xp = array_module(weight)
    if xp is not numpy:
        with weight.device:
            state = Blockwise8bit(xp.asarray(state.codes), xp.asarray(state.absmax), state.signed)
    return state


def parameter_docs(spec):
    """The Parameters section of a params-style class: its own argument names (lr, betas,
    eps, weight_decay), each with the rule's hyperparameter it sets."""
    by_name = {m["name"]: m for m in spec["hyperparameters"]}
    defaults = default_arguments(spec)
    lines = ["params : iterable of arrays, or of dicts (param groups)",
             "    NumPy or CuPy arrays or PyTorch tensors; a group's other keys override the defaults.",
             f"lr : float, default {defaults['lr']!r}", "    Learning rate (the rule's lr)."]
    for keyword, names in keywords(spec):
        if len(names) == 1:
            lines += hyperparameter_lines(by_name[names[0]], name=keyword)
            if keyword != names[0]:
                lines.append(f"    The rule's {names[0]}.")
            continue
        lines += [f"{keyword} : tuple of {len(names)}, default {defaults[keyword]!r}",
                  f"    ({', '.join(written(by_name[n]) for n in names)}) of the rule:"]
        for i, name in enumerate(names):
            shown = f"{keyword}[{i}]" + ("" if written(by_name[name]) == f"{keyword}[{i}]" else f" ({name})")
            lines += hyperparameter_lines(by_name[name], name=shown, indent="    ")
    lines += [f"weight_decay : float, default {defaults['weight_decay']!r}", "    Weight decay (the rule's wd).",
              "state_storage : None, '8bit', 'bfloat16' or 'bfloat16_stochastic', default None",
              "    How the states the spec allows are stored for float32 weights: 8-bit block-wise",
              "    (bitsandbytes' scheme) or bfloat16, computed in float32 (fixed at construction).",
              f"min_8bit_size : int, default {MIN_8BIT_SIZE}",
              "    With state_storage='8bit', tensors with fewer elements keep float32 states."]
    return lines


def params_class(spec_class):
    """The params-style class for a spec-built class, with a real signature:
    (params, lr=<default>, *, <keywords>, weight_decay=<default>)."""
    spec = spec_class.SPEC
    defaults = default_arguments(spec)
    P = inspect.Parameter
    parameters = [P("self", P.POSITIONAL_OR_KEYWORD), P("params", P.POSITIONAL_OR_KEYWORD),
                  P("lr", P.POSITIONAL_OR_KEYWORD, default=defaults["lr"])]
    parameters += [P(k, P.KEYWORD_ONLY, default=v) for k, v in defaults.items() if k != "lr"]
    parameters += [P(k, P.KEYWORD_ONLY, default=v) for k, v in STORAGE_KEYWORDS]
    signature = inspect.Signature(parameters)

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        params = values.pop("params")
        Optimizer.__init__(self, params, **values)

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{spec['name']}.__init__"
    arguments = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    doc = (f"{spec['name']}(params, {arguments}): params-style optimizer "
           f"({spec['flavor']} rule, generated from {spec['spec']}).\n\n"
           "Call as optimizer(grads) or optimizer.step(grads); state_dict() uses torch's layout.\n\n"
           + class_docstring(spec, parameters=parameter_docs(spec)))
    bases = (Optimizer,)
    if getattr(spec_class._module, "MODES", None) is not None:   # train()/eval() (runtime/modes.py)
        from .modes import ParamsModes
        bases = (ParamsModes, Optimizer)
    return type(spec["name"], bases, {"spec_class": spec_class, "__init__": __init__,
                                      "__doc__": doc, "__module__": "optforge.optim"})


_CLASSES = {}


def classes():
    """{class name: params-style class}: the torch flavor where a spec has one, else MXNet 2.0."""
    from . import registry
    table = chosen(registry.registered().items())
    out = {}
    for key, engine in sorted(table.items()):
        if engine not in _CLASSES:
            _CLASSES[engine] = params_class(engine)
        out[engine.SPEC["name"]] = _CLASSES[engine]
    return out


def create(name, params, flavor=None, **kwargs):
    """`create('lion', params, lr=1e-4)`: any registered optimizer, params-style."""
    from . import registry
    if flavor is None:
        flavor = "torch" if name.lower() in registry.names("torch") else registry.DEFAULT_FLAVOR
    engine = registry.lookup(name, flavor)
    if engine not in _CLASSES:
        _CLASSES[engine] = params_class(engine)
    return _CLASSES[engine](params, **kwargs)
