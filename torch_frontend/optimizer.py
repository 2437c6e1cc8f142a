"""`torch.optim.Optimizer` subclasses that drive the spec-built optimizers.

Each class (built in `classes.py`) is a real torch optimizer: torch's own
`__init__`, `add_param_group` (tensors, groups or `named_parameters()`, duplicates
refused), `zero_grad`, `state_dict`/`load_state_dict` and every hook come from
`torch.optim.Optimizer`. Only `step` is ours: it views the tensors as NumPy (CPU) or
CuPy (CUDA) arrays and runs the rule's `Engine` (runtime/engine/) for the group's values
on them through its public interface (`check`, `create_state`, `launch` or
`multi_precision`, `plan`, `run`), one launch per (device, dtype), with the update counts
kept in `state['step']`, so the same generated kernels (the native CPU kernels on CPU
tensors) update torch's memory in place. There is no optimizer math here.

`self.state[param]`, torch tensors (safe for `torch.load(weights_only=True)`), laid out
as the torch.optim class of the same name lays out its state (tests/test_torch_suite.py):

    'step'            0-d tensor (torch's scalar dtype, float32 by default), the
                      number of updates so far, as torch.optim keeps it (in a group
                      with a kept launch, a view of the group's one step buffer); a
                      Python int for SparseAdam, and none for SGD and Muon, whose rules
                      read t at most as t == 1: their count is 0 before the parameter's
                      states exist, 1 after (conventions/torch_keywords.STEP_KINDS)
    <state name>      the spec's states under the spec's names, which for the
                      torch-flavor specs are torch.optim's (`exp_avg`, `exp_avg_sq`,
                      `momentum_buffer`, ...), so state dicts load into torch.optim
                      and back; dtype as the spec gives it for the weight's dtype;
                      host scalar states (NAdam's `mu_product`, ASGD's `eta` and `mu`)
                      are 0-d CPU tensors of torch's scalar dtype, as torch's, in a
                      class named as torch's, float64 in the others; with
                      state_storage="8bit" a quantized state is its uint8 codes here and
                      its float32 absmax under <state name>_absmax, with "bfloat16" a
                      bfloat16 tensor
    'master_weight'   only with master_weights=True and a float16/bfloat16 parameter:
                      the float32 master copy; the states are then float32 too and the
                      update runs on the master copy, rounded once into the parameter

A parameter with nothing to keep (SGD without momentum) gets no entry, as in torch.
"""
import math
import numbers

import torch

from ..conventions import torch_keywords
from ..runtime import array_views, params_api, validation
from ..runtime.backends import array_module
from ..runtime.backends.quantized import Blockwise8bit
from ..runtime.sparse import RowSparse
from ..runtime.engine import StateMeta, StepInputs, reads_shape, state_dtype, state_parts
from ..runtime.engine import group as group_values
from ..runtime.engine import storage as stored_states
from . import compiled, shards, tensors, torch_checks, torch_matrix, torch_native
from .launch_cache import GroupLaunch

MASTER = "master_weight"
GROUP_ALL_REDUCE = torch_keywords.GROUP_ALL_REDUCE
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                 "float64": torch.float64}
_PLAIN_VALUES = (float, int, bool, str, type(None), tuple)
_PLAIN_TYPES = frozenset(_PLAIN_VALUES)
_ENGINE_CACHE = 64   # engines kept per optimizer (one per set of group values seen)


class Optimizer(torch.optim.Optimizer):
    """Base of the optforge.torch optimizers; see `classes.torch_class`."""

    spec_class = None     # the spec-built class whose rule (module, SPEC) the engines run
    torch_name = None     # the torch.optim class it is named as (its checks, torch_checks.py), or None

    def __init__(self, params, defaults, implied=None):
        """`implied`: {keyword: value} of keywords left out of the param groups (not given, and
        not in torch.optim's class of the same name: classes.py), read with these values."""
        defaults = dict(defaults)
        # the state storage is the optimizer's, not a group value: a loaded state dict converts
        # into it instead of overriding it
        self.storage = stored_states.state_storage(defaults.pop("state_storage", None),
                                                   defaults.pop("min_8bit_size", stored_states.MIN_8BIT_SIZE),
                                                   type(self).__name__)
        self._engines = {}
        self._implied = dict(implied or {})
        self._engine_keys = _engine_keys(defaults, self._implied)
        self._views = tensors.ViewCache()
        self._launches = {}   # id(group) -> (group, GroupLaunch, or False: never)
        self._step_kind = torch_keywords.step_kind(self.spec_class.SPEC)   # "tensor", "int" or None
        self.defaults = defaults
        compiled.register(self)
        self._check_group({})     # the arguments before the parameters, as torch checks them
        super().__init__(params, defaults)
        if defaults.get("fused"):
            # torch's contract for fused=True: torch.amp.GradScaler then leaves the gradients
            # scaled and sets `grad_scale` and `found_inf`, which the step consumes (the kernels
            # take 1 / grad_scale as the rule's rescale_grad). Without fused=True GradScaler
            # unscales the gradients itself, and Lightning lets gradients be clipped first.
            self._step_supports_amp_scaling = True

    # -- groups ---------------------------------------------------------------------
    def add_param_group(self, param_group):
        """torch's add_param_group, after the group's values are validated (ValueError names
        the argument at fault; nothing is added then)."""
        engine = None
        if isinstance(param_group, dict):
            engine = self._check_group(param_group)
            if engine.reads_initial_lr and "initial_lr" in param_group:
                params_api.learning_rate(param_group["initial_lr"], "initial_lr")
            params = param_group.get("params")
            if params is not None and not torch.is_tensor(params):
                params = param_group["params"] = list(params)   # an iterator is read once
            listed = [params] if torch.is_tensor(params) else params or ()
            # the tensors, named ones too ((name, tensor) pairs); anything else is torch's to refuse
            listed = [p[1] if isinstance(p, tuple) and len(p) == 2 else p for p in listed]
            listed = [p for p in listed if torch.is_tensor(p)]
            if self.torch_name is not None:   # torch's own checks of the parameters (torch_checks.py)
                torch_checks.check_parameters(self.torch_name, len(self.param_groups), listed)
            for k, param in enumerate(listed):   # a rule's `requires` on the shape (Muon: 2-D only)
                # (a complex parameter by its own shape: .real, not the view_as_real a step uses)
                engine.check_parameter(k, tensors.view(param.detach().real if param.is_complex() else param.detach()))
        super().add_param_group(param_group)
        if engine is not None and engine.reads_initial_lr:   # the rule's `initial_lr`, where torch's
            params_api.initial_lr(self.param_groups[-1])       # schedulers keep it
        if engine is not None and engine.grouped:     # group states live in the group, as prodigyopt's d
            params_api.group_states(engine, self.param_groups[-1])

    def _check_group(self, group):
        """A group's values over the defaults: torch keywords this class refuses
        (runtime/torch_keywords.py), then every rule setting (ValueError names the one at fault);
        the group's engine."""
        values = dict(self.defaults)
        values.update((k, v) for k, v in group.items() if k not in ("params", "param_names"))
        torch_keywords.check(self.spec_class.SPEC, type(self).__name__, dict(self._implied, **values))
        engine = self._engine(values)
        if values.get("differentiable") and not (_elementwise(engine) and not engine.module.__dict__.get("MODES")):
            raise ValueError(f"optforge.torch.{type(self).__name__} does not support differentiable=True: "
                             f"its rule is not element-wise or has train/eval modes (only element-wise "
                             f"rules without noise or modes run as torch operations)")
        if values.get("differentiable") and engine.grouped:
            raise ValueError(f"optforge.torch.{type(self).__name__} does not support differentiable=True: "
                             f"its rule reduces over the whole param group (group_sum), which the torch-native "
                             f"path does not run yet")
        _check_all_reduce(type(self).__name__, engine, values.get(GROUP_ALL_REDUCE, False))
        if values.get("differentiable") and values.get("master_weights"):
            raise ValueError(f"optforge.torch.{type(self).__name__} does not support differentiable=True "
                             f"with master_weights=True")
        return engine

    def _engine(self, group):
        """The rule's Engine for a group's current values (its lr validated: the lr, which a
        scheduler changes every step, is read from the group at each step). Engines are kept
        per set of the other values (built again when the user changes one; update counts
        live in the state, not in the engine)."""
        key = tuple(map(group.get, self._engine_keys))     # (the defaults' names are fixed)
        if not _PLAIN_TYPES.issuperset(map(type, key)):
            key = tuple(map(_frozen, key))
        engine = self._engines.get(key)
        if engine is not None:
            _lr(group)
        else:
            values = dict(self._implied, **group)
            master = values.get("master_weights", False)
            if not isinstance(master, bool):
                raise ValueError(f"Invalid master_weights: expected True or False, got {master!r}")
            engine = params_api.build_engine(self.spec_class, values, self.storage, torch_tensors=True)
            products = torch_keywords.products_dtype(engine.spec, engine.hyperparameters)
            if products is not None and master:
                raise ValueError(f"optforge.torch.{type(self).__name__}: master_weights=True does not take "
                                 f"{torch_keywords.TORCH_PRODUCTS[(engine.spec['flavor'], engine.spec['key'])]}"
                                 f"={products!r} (its products run on the parameters' own dtype, as torch's)")
            if len(self._engines) >= _ENGINE_CACHE:
                self._engines.clear()
            self._engines[key] = engine
        return engine

    def _wd(self, group):
        return _wd(group, self._implied)

    def _host_scalar_dtype(self):
        """The dtype of host scalar states (0-d CPU tensors the host code updates): torch's
        scalar dtype for a class named as torch's (NAdam's mu_product, ASGD's eta and mu are
        float32 there), float64 for rules torch lacks (their host code computes in float64)."""
        return _scalar_dtype() if self.torch_name is not None else torch.float64

    # -- stepping -------------------------------------------------------------------
    def step(self, closure=None):
        """One update of every parameter with a gradient; `closure` re-evaluates the model
        (with gradients enabled) and its loss is returned. Everything is checked before any
        state is created or any tensor changes."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        update = self._update
        if torch.compiler.is_compiling():
            if getattr(self, "grad_scale", None) is None and getattr(self, "found_inf", None) is None \
                    and not any(group.get("differentiable") for group in self.param_groups):
                compiled.traced_step(self)    # one custom op in the graph, the eager step at run time
                return loss
            # GradScaler's fused contract (grad_scale, found_inf), or a differentiable group
            # (autograd does not see into the op): the graph breaks here and the step runs
            # eagerly (dynamo must not trace into the engine)
            update = _eager(self._update)
        # set by GradScaler.step when fused=True (_step_supports_amp_scaling): a step with
        # inf/NaN gradients is skipped (reading found_inf is a host synchronisation on CUDA);
        # grad_scale divides the still-scaled gradients, and they are left unscaled after the
        # step, as torch's fused kernels leave them
        found_inf = getattr(self, "found_inf", None)
        if found_inf is not None and float(found_inf) > 0:
            return loss
        grad_scale = getattr(self, "grad_scale", None)
        if grad_scale is None:
            update(1.0)
            return loss
        scale = float(grad_scale)
        update(1.0 / scale)
        with torch.no_grad():
            grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
            dense = [g for g in grads if g.layout == torch.strided]
            if dense:
                torch._foreach_div_(dense, scale)
            for g in grads:
                if g.layout != torch.strided:
                    g.div_(scale)
        return loss

    def _update(self, rescale_grad):
        """Groups whose kept native launch still applies (launch_cache.py) are checked and
        planned by it; every other parameter is checked (`_collect`) before anything runs."""
        launches = self._launches
        fast, skip, first = [], set(), 0
        for group in self.param_groups:    # groups whose kept native launch still applies
            kept = launches.get(id(group))
            if kept is not None and kept[0] is group and kept[1] and kept[1].first_index == first:
                engine = self._engine(group)
                run = kept[1].prepare(self, group, engine, _lr(group), self._wd(group), rescale_grad)
                if run is not None:
                    fast.append(run)
                    skip.add(id(group))
            first += len(group["params"])
        if len(fast) == len(self.param_groups):   # every group on its kept launch: no tensor is made
            for run in fast:
                run()
            return
        with torch.no_grad():
            self._full_update(fast, skip, rescale_grad)

    def _full_update(self, fast, skip, rescale_grad):
        """The groups not in `skip` on the full path, then the kept launches `fast` (after every
        batch has been planned: a batch that cannot step changes nothing)."""
        work = self._collect(skip)
        batches = {}
        for item in work:
            engine, master, param, gathered = item[0], item[1], item[2], item[6]
            # groups differing in lr alone share an engine, not a batch: the engine plans with one lr
            key = (id(engine), _frozen(item[9]["lr"]), _frozen(item[9].get("initial_lr")), master, gathered,
                   param.device, param.dtype, id(item[9]) if engine.grouped else None)
            batches.setdefault(key, []).append(item)
        # every batch is planned (its engine launch's plan) before any kernel runs: a batch that
        # cannot step leaves every batch's tensors, states and counts as they were (the counts
        # are written into the states after the kernels ran; groups on a kept launch were only
        # planned so far)
        prepared, created = [], []
        try:
            for batch in batches.values():
                prepared.append(self._prepare(batch, rescale_grad, created))
            settle = self._plan_groups(prepared)
        except BaseException:
            for param, name in created:
                self.state[param].pop(name, None)
                if not self.state[param]:
                    del self.state[param]
            raise
        for run in fast:
            run()
        for step, finish in prepared:
            with tensors.on_current_stream(finish.device):
                step.run()
            finish()
        for write in settle:
            write()
        self._views.trim(len(work) + sum(len(g["params"]) for g in self.param_groups if id(g) in skip))
        self._keep_launches(work)

    def _plan_groups(self, prepared):
        """Plan the batches of rules with group reductions (`_prepare` leaves them unplanned):
        a param group's partials from every batch it was split into (by dtype, device, master
        weights), combined in float64, then each batch planned with the group's values; each
        launch's run writes the group states' new values into the group.

        A group with `group_all_reduce=True` (ZeroRedundancyOptimizer: this rank holds a
        partition of the parameters) takes its values over every rank of the default process
        group, and so joins the all-reduce even with no parameter (or no gradient) here: an
        empty partition contributes nothing (a sum of 0, a max of -inf, a min of +inf). Its
        group states' new values are then taken from the first rank that computed them
        (`_settled_states`), so every rank holds the same. Returns what to run after the
        launches ran: those writes for the groups with no launch on this rank."""
        by_group = {}
        for launch, finish in prepared:
            if getattr(finish, "grouped", None):
                by_group.setdefault(id(finish.grouped[1]), []).append((launch, finish))
        for group in self.param_groups:     # (before any collective: every rank refuses alike)
            if group.get(GROUP_ALL_REDUCE, False) and any(tensors.is_sharded(p) for p in group["params"]):
                raise ValueError(f"{type(self).__name__}: {GROUP_ALL_REDUCE}=True is for parameters partitioned "
                                 "whole over the ranks (ZeroRedundancyOptimizer); the group values of FSDP2-sharded "
                                 "parameters are all-reduced over their shard groups without it")
        settle = []
        for group in self.param_groups:     # (in order: every rank joins the same collectives)
            members = by_group.get(id(group), [])
            everywhere = group.get(GROUP_ALL_REDUCE, False) and _world()
            if not members and not everywhere:
                continue
            engine = members[0][0].engine if members else self._engine(group)
            held = params_api.group_states(engine, group)
            found = {}
            for launch, finish in members:
                inputs = finish.grouped[0]
                for name, partial in group_values.partials(engine, launch.indices, launch.masters or launch.weights,
                                                           launch.grads, launch.states, inputs, held,
                                                           bool(launch.fused)).items():
                    found.setdefault(name, []).extend(partial)
            combined = group_values.combined(engine, found)
            mesh = everywhere or _group_shards(group)
            if mesh:    # FSDP2: each rank summed its shards; ZeRO: its partition. The values are over every rank
                ops = {value: op for op, value, _ in engine.module.GROUP["reductions"]}
                combined = shards.all_reduced_group(combined, ops, mesh)
            for launch, finish in members:
                launch.plan(finish.grouped[0]._replace(group={**held, **combined}))
            launches = [launch for launch, _ in members]
            if everywhere:
                new = {}
                for launch in launches:
                    new.update(launch.group_updates)
                new = _settled_states(engine, new, mesh)

                def write(group=group, new=new):
                    group.update(new)
            else:
                def write(group=group, launches=launches):
                    for launch in launches:
                        group.update(launch.group_updates)
            if members:
                members[-1][1].after = write
            else:
                settle.append(write)
        return settle

    def _keep_launches(self, work):
        """Keep the native launch of every group that took the full path with a gradient for
        each parameter (see launch_cache.py); a group whose rule never qualifies is marked."""
        stepped = {}
        for item in work:
            stepped.setdefault(id(item[9]), []).append(item)
        first = 0
        for group in self.param_groups:
            items = stepped.get(id(group), ())
            kept = self._launches.get(id(group))
            if items and len(items) == len(group["params"]) and not (kept and kept[0] is group and kept[1] is False) \
                    and not any(item[1] or item[6] for item in items) and not group.get("differentiable"):
                launch = GroupLaunch.build(self, group, items[0][0], first)
                if launch is None:
                    self._launches.pop(id(group), None)
                else:
                    self._launches[id(group)] = (group, launch)
            first += len(group["params"])

    def _collect(self, skip=()):
        """[(engine, master, param, index, weight, grad, gathered, inner, count, group)] for every
        parameter with a gradient (groups in `skip` left out: they step by their kept launch),
        checked (arrays and existing states) before anything changes. `gathered`, for a sharded
        DTensor whose rule cannot run on the local shard alone: "reduce" (the rule's norms are
        all-reduced over the shards) or "gather" (the whole tensors are gathered), see
        `_prepare`; None otherwise. `inner`: the existing state's arrays as the engine takes them (None when
        the state is still to be made); `count`: the updates so far. The arrays of one group
        are checked by one engine call."""
        work = []
        index = -1
        view = self._views.view
        refuse_complex = torch_checks.STEP_COMPLEX.get(self.torch_name)
        for group in self.param_groups:
            if id(group) in skip:      # stepping by its kept launch
                index += len(group["params"])
                continue
            engine = self._engine(group)
            by_shape = reads_shape(engine.module)    # a state's `when` may read the shape
            by_element = _by_element(engine)
            names = list(engine.present_states())
            checked = ([], [], [], [])     # the engine's _check arguments of this group
            for param in group["params"]:
                index += 1
                if param.grad is None:
                    continue
                if param.is_complex():
                    if refuse_complex is not None:
                        raise RuntimeError(refuse_complex)    # as torch's step (torch_checks.py)
                    if not _elementwise(engine):
                        raise TypeError(f"parameter {index}: complex parameters step as their view_as_real, "
                                        f"which only element-wise rules allow; {type(self).__name__}'s "
                                        f"rule has reductions")
                if by_shape:
                    names = list(engine.present_states(view(param)))
                master = group.get("master_weights", False) and param.dtype in _LOW_PRECISION
                gathered = _shard_mode(engine, param, master) if tensors.is_sharded(param) else None
                try:
                    grad = tensors.gradient(tensors.local(param), tensors.local(param.grad), by_element)
                    weight = _flat(view(param), grad)
                except (TypeError, ValueError) as err:
                    raise type(err)(f"parameter {index}: {err}") from None
                state = self.state.get(param)
                inner = None
                if self.storage is not None and tensors.is_sharded(param):
                    raise ValueError(f"parameter {index}: state_storage={self.storage.kind!r} does not take "
                                     "sharded (FSDP2) parameters yet: quantize whole tensors only")
                if state and all(name in state for name in names) and (not master or MASTER in state):
                    bits = _bfloat16_bits(engine, param, master)
                    inner = _engine_state([_part(engine, state, name, view, grad, bits) for name in names])
                    if master:
                        validation.check_pair(index, weight, grad)
                        copy = _flat(view(state[MASTER]), grad)
                        if copy.dtype != "float32" or copy.shape != weight.shape:
                            raise ValueError(f"state '{MASTER}' of parameter {index} must be a float32 "
                                             f"tensor of shape {tuple(weight.shape)}")
                        for column, value in zip(checked, (index, copy, copy, inner)):
                            column.append(value)
                    else:   # the pair and the states
                        for column, value in zip(checked, (index, weight, grad, inner)):
                            column.append(value)
                else:
                    validation.check_pair(index, weight, grad)
                work.append((engine, master, param, index, weight, grad, gathered, inner,
                             self._views.count(state, tensors.step_count), group))
            if checked[0]:
                engine.check(*checked)
        return work

    def _prepare(self, batch, rescale_grad, created):
        """The engine's planned launch for a batch of one (engine, master, gathered, device,
        dtype), and what to do after it ran; states it creates are listed in `created`.

        A "reduce" batch holds sharded CPU DTensors whose rule reads whole-tensor norms: the
        rule's NumPy kernels run on each rank's shards, their norms summed over the shard
        groups (shards.py). A "gather" batch holds sharded DTensors whose rule draws noise by
        element position, reads row or column means across shards, multiplies matrices, or
        keeps a float32 master copy: every rank gathers the full parameter, gradient and
        states, runs the rule on them (the same on every rank), and keeps its own shard of
        the results, so sharded and unsharded runs agree; it costs the full tensors' memory
        for the step."""
        engine, master, mode, group = batch[0][0], batch[0][1], batch[0][6], batch[0][9]
        gathered, reduced = mode == "gather", mode == "reduce"
        by_shape = reads_shape(engine.module)
        names = list(engine.present_states())
        ids, weights, grads, states, written, scatter, steps, ts = [], [], [], [], [], [], [], []
        counted = []    # states whose step is a Python int
        differentiable = bool(group.get("differentiable"))
        # the torch-native path (torch_native.py): differentiable groups, and meta parameters
        # (shapes only: the generated code on meta tensors computes nothing); a matrix rule's
        # products in a lower precision (Muon's ns_dtype) run there too (torch_matrix.py)
        products = torch_keywords.products_dtype(engine.spec, engine.hyperparameters)
        on_torch = differentiable or batch[0][2].is_meta or products is not None
        if products is not None and gathered:
            raise ValueError(f"{type(self).__name__}: products in {products} do not take sharded (FSDP2) "
                             f"parameters yet")
        if engine.grouped and (batch[0][2].is_meta or mode is not None):
            raise TypeError(f"{type(self).__name__}: its rule reduces over the whole param group (group_sum), "
                            "which meta parameters, and sharded (FSDP2) ones whose rule is not element-wise "
                            "after its group reductions, do not step with yet")
        if batch[0][2].is_meta and not _elementwise(engine):
            raise TypeError(f"{type(self).__name__}: meta parameters step on torch operations, which only "
                            f"element-wise rules allow; this rule has reductions")
        items = []      # (param, grad, state) for the torch-native path
        view = self._views.view

        def array(tensor):
            if gathered and tensors.is_distributed(tensor):
                full = tensor.full_tensor()
                scatter.append((full, tensor))
                return tensors.view(full)
            return view(tensor)

        for _, _, param, index, weight, grad, _, inner, count, _ in batch:
            if by_shape:
                names = list(engine.present_states(weight))
            before = set(self.state.get(param) or ())
            # (a sparse gradient seen by element has its weight seen flat: states take the shape)
            state = self._ensure_state(engine, names, master, param, index,
                                       weight if weight.shape == tuple(param.shape) else view(param), count)
            created.extend((param, name) for name in state if name not in before)
            if gathered:
                weight = array(param)
                grad = tensors.gradient(scatter[-1][0], param.grad.full_tensor())
            if inner is None or gathered:
                bits = _bfloat16_bits(engine, param, master)
                inner = _engine_state([_part(engine, state, name, array, grad, bits) for name in names])
            if reduced:
                groups, shape = shards.shard_groups(param), weight.shape
                weight, grad = shards.wrap(weight, shape, groups), shards.wrap(grad, shape, groups)
                inner = tuple(shards.wrap(a, shape, groups) for a in inner) if isinstance(inner, tuple) \
                    else shards.wrap(inner, shape, groups)
            ts.append(count + 1)
            ids.append(index)
            weights.append(weight)
            grads.append(grad)
            states.append((_flat(array(state[MASTER]), grad), inner) if master else inner)
            if on_torch:
                if isinstance(grad, RowSparse):
                    raise TypeError(f"parameter {index}: differentiable=True and meta parameters take "
                                    f"dense gradients only")
                items.append((param, param.grad, state))
            else:   # (torch's copy_ counts the torch-native path's writes itself)
                written.append(param)
                written.extend(value for value in state.values() if torch.is_tensor(value))
            if self._step_kind == "tensor":
                steps.append(state["step"])
            elif self._step_kind == "int":
                counted.append(state)
        device = batch[0][2].device
        n = len(ids)
        initial = [params_api.initial_lr(group)] * n if engine.reads_initial_lr else None
        inputs = StepInputs(ts, [_lr(group)] * n, [self._wd(group)] * n, rescale_grad, initial_lrs=initial)
        with tensors.on_current_stream(device):    # planning may fill new device scalars
            if master:
                launch = engine.multi_precision(ids, weights, grads, states)
            else:   # checked in _collect (new states come from the engine): no second check;
                # a "reduce" batch runs the NumPy kernels, whose norms shards.py all-reduces
                launch = engine.launch(ids, weights, grads, states, fused=not (reduced or on_torch))
            if not engine.grouped:
                launch.plan(inputs)     # (group reductions: planned by _plan_groups)
        if products is not None:    # the same plan, its products in bfloat16 through torch
            launch = torch_matrix.Launch(engine, launch, items, products)
        elif on_torch:      # the same plan, run by torch operations (under autograd if differentiable)
            launch = torch_native.Launch(engine, launch, items, differentiable)

        def finish():
            for full, target in scatter:
                tensors.keep_shard(full, target)
            _set_steps(steps, ts)
            for state, t in zip(counted, ts):
                state["step"] = t
            tensors.bump_versions(written)
            self._views.counted(steps, ts)
            if finish.after is not None:
                finish.after()
        finish.device = device
        finish.after = None
        finish.grouped = (inputs, group) if engine.grouped else None
        return launch, finish

    def _ensure_state(self, engine, names, master, param, index, weight, count):
        """The parameter's state with `step` (unless the rule's torch class keeps none) and
        every state of the group's current values (new ones made by the engine's create_state,
        as torch tensors). A parameter with nothing to keep gets no entry, as in torch."""
        state = self.state.get(param)
        if state is None:
            if not (names or master or self._step_kind):
                return {}
            state = self.state[param]
        if "step" not in state and self._step_kind:
            state["step"] = torch.tensor(float(count), dtype=_scalar_dtype()) if self._step_kind == "tensor" \
                else int(count)
        if master and MASTER not in state:
            state[MASTER] = tensors.like_param(weight.astype("float32"), param)
        missing = [name for name in names if name not in state]
        if missing and param.is_meta:
            state.update(_meta_states(engine, missing, index, param, self._host_scalar_dtype()))
            missing = []
        if missing:
            base = tensors.view(state[MASTER]) if master else weight
            fresh = dict(zip(names, state_parts(engine.create_state(index, base), len(names))))
            for name in missing:
                if engine.states[name].host_scalar:
                    state[name] = torch.tensor(float(fresh[name]), dtype=self._host_scalar_dtype())
                    continue
                for key, array in stored_states.items(name, fresh[name]):
                    state[key] = _tensor(array, param)
        return state

    # -- loading --------------------------------------------------------------------
    def __getstate__(self):
        """torch's (defaults, state, param_groups), with the state storage (not a group value)."""
        state = super().__getstate__()
        state["storage"] = self.storage
        return state

    def __setstate__(self, state):
        """torch's, then every group gets the defaults it lacks (torch.optim's state dicts have
        no `master_weights`), as torch.optim's own classes fill in keywords added later."""
        super().__setstate__(state)
        self.__dict__.setdefault("storage", None)
        compiled.register(self)     # (a copy steps itself, not the original)
        self.__dict__.setdefault("_engines", {})
        self.__dict__.setdefault("_implied", {})
        self.__dict__.setdefault("_step_kind", torch_keywords.step_kind(self.spec_class.SPEC))
        self.__dict__.setdefault("_engine_keys", _engine_keys(self.defaults, self._implied))
        self.__dict__.setdefault("_views", tensors.ViewCache())
        self.__dict__.setdefault("_launches", {})
        for group in self.param_groups:
            for name, value in self.defaults.items():
                # (torch's base adds differentiable=False to the defaults here: a keyword
                # torch's class of the name lacks stays out of the groups, as in torch's)
                if name not in self._implied:
                    group.setdefault(name, value)
            for param in group["params"]:
                own = self.state.get(param)
                if own and "step" in own:      # the count as torch's class keeps it
                    if self._step_kind is None:      # (an older checkpoint's): torch's layout has none
                        del own["step"]
                    elif self._step_kind == "int":
                        own["step"] = int(float(own["step"]))
                    elif not torch.is_tensor(own["step"]):
                        # torch before 1.12 saved plain numbers: a tensor as torch.optim makes one now
                        own["step"] = torch.tensor(float(own["step"]), dtype=_scalar_dtype())

    def _convert_loaded(self, group, param, pid, original, state, metas, master):
        """The quantizable states of one loaded parameter in this optimizer's storage for it
        (engine.convert), taken from the state dict as saved (torch's loader casts floating
        tensors, an absmax or a bfloat16 state among them, to the parameter's dtype): an
        8-bit state (codes and absmax), a bfloat16 or a float one, each converted where it
        was saved in another form. Returns the names it set."""
        names = [name for name in metas if metas[name].get("quantize") and torch.is_tensor(original.get(name))]
        if not names:
            return ()
        engine = self._engine(group)
        weight = tensors.view(state[MASTER]) if master and MASTER in state else tensors.view(param.detach())

        def copied(tensor, dtype=None):
            return tensors.view(tensor.detach().to(device=param.device, dtype=dtype, copy=True).contiguous())

        for name in names:
            absmax = original.get(name + stored_states.ABSMAX)
            if absmax is not None:
                value = Blockwise8bit(copied(original[name]), copied(absmax, torch.float32),
                                      stored_states.signed(engine.states[name]))
            elif original[name].dtype is torch.bfloat16 and param.device.type != "cpu":
                # a bfloat16 state onto a CUDA parameter: its bits (CuPy has no bfloat16)
                value = array_views.bits(original[name].detach().to(device=param.device, copy=True).contiguous())
            else:
                value = copied(original[name])
            converted = engine.convert(pid, name, value, weight)
            state.pop(name + stored_states.ABSMAX, None)
            for key, array in stored_states.items(name, converted):
                state[key] = _tensor(array, param)
        return names

    def load_state_dict(self, state_dict):
        """torch's load_state_dict; then states that torch cast to their parameter's dtype and
        device but that the engine keeps otherwise (float32 master copies and states of 16-bit
        parameters, host scalars on the CPU in the dtype saved) are taken again from `state_dict`;
        a `step` saved as a plain number (torch before 1.12) becomes the count as this class
        keeps it (`__setstate__`).

        Every saved group is checked first, and every saved `step`: a setting this class
        refuses (torch.optim.Adam's `decoupled_weight_decay=True`, `capturable=True`, ...), an
        invalid value or a count that is not a whole number >= 0 raises ValueError and
        nothing is loaded."""
        for group in state_dict.get("param_groups", ()):
            engine = self._check_group(group)
            if engine.reads_initial_lr and "initial_lr" in group:
                params_api.learning_rate(group["initial_lr"], "initial_lr")
        for pid, saved in (state_dict.get("state") or {}).items():
            if isinstance(saved, dict) and "step" in saved:
                _check_count(pid, saved["step"])
        self._views.clear()     # not needed for correctness (every entry is checked): frees memory
        self._launches.clear()
        super().load_state_dict(state_dict)
        saved_ids = [pid for group in state_dict["param_groups"] for pid in group["params"]]
        params = [(group, p) for group in self.param_groups for p in group["params"]]
        metas = {m["name"]: m for m in self.spec_class.SPEC["states"]}
        absmax_keys = {name + stored_states.ABSMAX: name for name, meta in metas.items() if meta.get("quantize")}
        for pid, (group, param) in zip(saved_ids, params):
            if pid not in state_dict["state"] or param not in self.state:
                continue
            original, state = state_dict["state"][pid], self.state[param]
            master = group.get("master_weights", False) and param.dtype in _LOW_PRECISION
            weight_dtype = "float32" if master else str(param.dtype).replace("torch.", "")
            converted = self._convert_loaded(group, param, pid, original, state, metas, master)
            for name, value in state.items():
                if not torch.is_tensor(value) or name == "step" or name in converted or name in absmax_keys:
                    continue
                if name == MASTER:
                    dtype, device = torch.float32, param.device
                elif name in metas:
                    meta = metas[name]
                    if StateMeta.of(meta).host_scalar:   # as saved (torch: float32), on the CPU
                        saved = original[name].dtype if torch.is_tensor(original[name]) else None
                        dtype = saved if saved in (torch.float32, torch.float64) else self._host_scalar_dtype()
                        device = torch.device("cpu")
                    else:
                        dtype, device = _TORCH_DTYPES[str(state_dtype(meta, weight_dtype))], param.device
                else:
                    continue
                if value.dtype != dtype or value.device != device:
                    state[name] = original[name].to(device=device, dtype=dtype, copy=True)


def _part(engine, state, name, view, grad, bits=False):
    """One state as the engine takes it: an 8-bit state (its codes and `<name>_absmax`) as a
    Blockwise8bit of views, a bfloat16 state of a CUDA parameter's float32 weight or master
    copy (`bits`: `_bfloat16_bits`) as its bits, a uint16 CuPy array (backends/quantized.py),
    any other as the view of its tensor (flat where the gradient is: `_flat`)."""
    absmax = state.get(name + stored_states.ABSMAX)
    if absmax is None:
        tensor = state[name]
        if bits and tensor.dtype is torch.bfloat16 and engine.states[name].meta.get("quantize"):
            return _flat(array_views.bits(tensors.local(tensor)), grad)
        return _flat(view(tensor), grad)
    return Blockwise8bit(view(state[name]), view(absmax), stored_states.signed(engine.states[name]))


def _bfloat16_bits(engine, param, master):
    """Whether this CUDA parameter's stored states are bfloat16 ones (bfloat16 storage, and
    the states are of a float32 weight or master copy): CuPy sees them as their bits."""
    return engine.storage is not None and engine.storage.kind != "8bit" and not param.is_cpu \
        and (bool(master) or param.dtype is torch.float32)


def _check_all_reduce(name, engine, value):
    """`group_all_reduce`: True or False (TypeError otherwise); True only for a rule with group
    reductions (ValueError: nothing of another rule's step is over the group)."""
    if type(value) is not bool:
        raise TypeError(f"optforge.torch.{name}: {GROUP_ALL_REDUCE} must be True (the group values over "
                        f"every rank of the default process group) or False, got {type(value).__name__}; "
                        "a ProcessGroup is not taken: ZeroRedundancyOptimizer copies every keyword into the "
                        "param groups it saves and sends between ranks, which a ProcessGroup cannot be "
                        "pickled into")
    if value and not (engine.grouped and engine.module.GROUP["reductions"]):
        raise ValueError(f"optforge.torch.{name} does not take {GROUP_ALL_REDUCE}=True: its rule has no group "
                         "reductions (group_sum, group_max, group_min, group_norm), so each parameter's update "
                         "reads its own tensors only and ZeroRedundancyOptimizer needs nothing more")


def _eager(method):
    """The method run outside dynamo's trace (a graph break where it is called)."""
    return torch.compiler.disable(method)


def _check_count(pid, step):
    """A saved `step`: a whole number >= 0, as a number (torch before 1.12) or a one-element
    tensor; ValueError otherwise (nothing is loaded then)."""
    value = step
    if torch.is_tensor(step):
        value = step.item() if step.numel() == 1 and not step.is_complex() else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < 0 or value != int(value):
        raise ValueError(f"state 'step' of parameter {pid!r} in the loaded state dict must be a whole "
                         f"number >= 0 (a number or a one-element tensor), got {step!r}")


def _meta_states(engine, names, index, param, scalar_dtype):
    """States of a meta parameter: meta tensors of the dtype and shape (the parameter's, or
    0-d) the engine's create_state gives a one-element weight; host scalar states as made
    for it (their values do not depend on the shape), 0-d CPU tensors."""
    proxy = tensors.view(torch.zeros((1,) * param.dim(), dtype=param.dtype))
    fresh = dict(zip(engine.present_states(), state_parts(engine.create_state(index, proxy),
                                                           len(list(engine.present_states())))))
    out = {}
    for name in names:
        value = fresh[name]
        if engine.states[name].host_scalar:
            out[name] = torch.tensor(float(value), dtype=scalar_dtype)
        else:
            dtype = tensors.like_param(value, torch.zeros(())).dtype
            out[name] = torch.empty(tuple(param.shape) if value.ndim else (), dtype=dtype, device="meta")
    return out


def _elementwise(engine):
    """Whether every variant of the engine's rule is element-wise (no reduction, no rows)."""
    return all(v["elementwise"] for v in engine.module.VARIANTS.values())


def _by_element(engine):
    """Whether a gradient sparse in several dimensions is taken element by element (only
    those elements of the weight and states change): for lazy element-wise rules whose
    states are all weight-shaped or scalars. Other rules take the rows it touches."""
    module = engine.module
    return bool(engine.lazy_update) and all(v["elementwise"] for v in module.VARIANTS.values()) \
        and all(meta.shape in ("weight", "scalar") for meta in engine.states.values())


def _flat(array, grad):
    """A weight-shaped array seen as a RowSparse gradient's flattened shape (the same memory),
    or as it is (a scalar state, or a gradient of the weight's own shape)."""
    shape = getattr(grad, "shape", None)
    if not isinstance(grad, RowSparse) or array.ndim == 0 or tuple(array.shape) == shape:
        return array
    flat = array.reshape(shape)
    if not array_module(array).may_share_memory(flat, array):
        raise TypeError("a gradient sparse in several dimensions needs a parameter (and states) whose "
                        "memory can be viewed flat; this one is not contiguous enough")
    return flat


def _engine_state(parts):
    """A state as the engine takes it: None, one array or a tuple."""
    return None if not parts else parts[0] if len(parts) == 1 else tuple(parts)


def _set_steps(steps, counts):
    """`step.fill_(count)` of every step tensor, as a few foreach calls (one per count and
    dtype): zero, then add the count (exact: the count is an integer and the step finite)."""
    by_count = {}
    for step, count in zip(steps, counts):
        by_count.setdefault((float(count), step.dtype, step.device), []).append(step)
    for (count, _, _), group in by_count.items():
        torch._foreach_zero_(group)
        torch._foreach_add_(group, count)


def _tensor(array, param):
    """A state array from create_state as a torch tensor (same memory; a DTensor like its
    parameter under FSDP2)."""
    if array.ndim == 0 and type(array).__module__ == "numpy":
        return torch.from_numpy(array)
    return tensors.like_param(array, param)


def _world():
    """The process groups a param group with `group_all_reduce=True` reduces over: the default
    one, or none in a process without torch.distributed initialized (it is the only rank)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return ()
    return (dist.group.WORLD,)


def _settled_states(engine, new, groups):
    """A param group's group states' new values, the same on every rank of `groups`: those
    of the first rank that computed any (`new`: this rank's, {} where it had no parameter of
    the group to step). Ranks that stepped computed them from the same all-reduced values,
    the same old values and the same hyperparameters, so they agree; one all-gather of
    (stepped, values) in float64. {} when no rank stepped (the states stay as they are)."""
    names = engine.module.GROUP["states"]
    if not names:
        return {}
    dist = torch.distributed
    mine = torch.tensor([1.0 if new else 0.0] + [float(new.get(name, 0.0)) for name in names],
                        dtype=torch.float64)
    for group in groups:
        every = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
        dist.all_gather(every, mine, group=group)
        mine = next((row for row in every if row[0] > 0), mine)
    return {name: float(mine[k + 1]) for k, name in enumerate(names)} if mine[0] > 0 else {}


def _group_shards(group):
    """The shard process groups of a param group of a rule with group reductions: () for
    unsharded parameters; those of its FSDP2 DTensors when every parameter is one, sharded
    over the same process groups (their partials then add up over the ranks); TypeError for
    a mix, whose sum over ranks would count unsharded parameters once per rank."""
    params = group["params"]
    sharded = [p for p in params if tensors.is_sharded(p)]
    if not sharded:
        return ()
    found = {shards.shard_groups(p) for p in sharded}
    if len(sharded) != len(params) or len(found) != 1:
        raise TypeError("a rule with group reductions (group_sum) steps a param group of sharded parameters "
                        "only when every parameter of the group is sharded over the same process groups")
    return found.pop()


def _shard_mode(engine, param, master):
    """How a rule steps a sharded DTensor: None on the local shard alone (element-wise, or
    row means with rows whole on each rank: Shard(0)); "reduce" on the local shard with its
    whole-tensor norms all-reduced over the shard groups (CPU shards, no master copy);
    "gather" on the gathered whole tensors (noise drawn by element position would repeat
    on every shard; row or column reductions across shards; matrix rules)."""
    variants = list(engine.module.VARIANTS.values())
    if any(v["noise"] for v in variants):
        return "gather"
    if any(v["whole_tensor"] for v in variants):
        local = tensors.local(param)
        if local.is_cpu and not master and shards.reduces_norms(engine.module):
            return "reduce"
        return "gather"
    whole_rows = all(p.is_replicate() or (p.is_shard() and p.dim == 0) for p in param.placements)
    return None if whole_rows or all(v["elementwise"] for v in variants) else "gather"


def _scalar_dtype():
    """The dtype torch.optim keeps `step` in."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _engine_keys(defaults, implied):
    """The group values an engine is built from: all but lr (set per use, see `_engine`),
    and the implied keywords (None where a group leaves one out)."""
    return tuple(name for name in defaults if name != "lr") + tuple(name for name in implied if name not in defaults)


def _lr(group):
    """The group's lr, validated as a group value is (a plain finite float passes as is)."""
    lr = group["lr"]
    if type(lr) is not float or not 0.0 <= lr < math.inf:
        lr = params_api.learning_rate(lr)
    return lr


def _wd(group, implied):
    """The group's weight_decay (the engine was built from it: valid); a class whose torch
    twin has none (Rprop) leaves it out of its groups unless given."""
    wd = group["weight_decay"] if "weight_decay" in group else implied["weight_decay"]
    return wd if type(wd) is float else params_api.weight_decay(wd)


def _frozen(value):
    """A group value as a dict key: tensors as floats, lists as tuples."""
    if type(value) in _PLAIN_VALUES:
        return value
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else tuple(value.tolist())
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
