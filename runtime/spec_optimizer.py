"""The MXNet-style optimizer classes, one per generated module, over an `Engine`.

A class is made from a module's `SPEC` (signature, validated hyperparameter properties,
docstring) and drives the rule's `Engine` (runtime/engine/) with MXNet's conventions: the
update counts with `begin_num_update`, learning rates from the scheduler and the lr/wd
multipliers (runtime/mxnet_base.py), rescale_grad and clip_gradient, the 1.x and 2.0 call
forms, multi-precision and `config`/`from_config`. It holds no formula of its own: the
engine plans the host scalars and runs the generated code.
"""
import os

import numpy

from ..conventions.arguments import grouped, mxnet_arguments
from ..conventions.torch_keywords import check_products
from . import validation
from ..conventions.state_storage import MIN_8BIT_SIZE
from .engine import Engine, PreconditionError, StepError, StepInputs, low_precision, state_parts
from .engine.storage import state_storage
from .engine import group as group_values
from .mxnet_base import Optimizer, PreparedStep, _as_lists, decode_keys, encode_keys

__all__ = ["PreconditionError", "SpecOptimizer"]


class SpecOptimizer(Optimizer):
    """Base of the optimizers generated from specs; see `optimizer_class`."""

    SPEC = None         # the generated module's metadata
    flavor = "mxnet2"
    _module = None      # the generated NumPy module

    def __init__(self, *, learning_rate, hyperparameters, options, **kwargs):
        spec = self.SPEC
        storage = state_storage(kwargs.get("state_storage"), kwargs.get("min_8bit_size", MIN_8BIT_SIZE), spec["name"])
        self.engine = Engine(self._module, hyperparameters,
                             options.pop("lazy_update", spec["sparse_update"] == "lazy"), storage)
        check_products(spec, self.engine.hyperparameters)     # NumPy arrays: products in the weight's dtype
        if "aggregate_num" in options and options["aggregate_num"] is None:
            options["aggregate_num"] = _aggregate_from_environment(spec["options"]["aggregate_num"])
        for name, value in options.items():
            kwargs[name] = value
        super().__init__(learning_rate=learning_rate, **kwargs)
        # group reductions: the group is one update call, its states kept here (engine/group.py)
        self.group_states = group_values.initial_states(self.engine) if self.engine.grouped else {}

    @property
    def hyperparameters(self):
        """Current hyperparameter values by name (a copy; a list hyperparameter as a tuple)."""
        return grouped(self.SPEC, self.engine.hyperparameters)

    @property
    def lazy_update(self):
        return self.engine.lazy_update

    @lazy_update.setter
    def lazy_update(self, value):
        self.engine.lazy_update = value

    def config(self):
        """Everything needed to rebuild this optimizer mid-training, JSON-safe (no pickle)."""
        arguments = grouped(self.SPEC, self.engine.hyperparameters)
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
                           optional=tuple(name for name, _ in mxnet_arguments(cls.SPEC))
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
        return self.engine.present_states(weight)

    def check_parameter(self, index, weight):
        """Raise ValueError if the rule's `requires` refuses this parameter for what is known
        before a step (its shape and the hyperparameters)."""
        self.engine.check_parameter(index, weight)

    def create_state(self, index, weight):
        return self.engine.create_state(index, weight)

    def _converted_state(self, index, weight, state):
        """A state loaded from a file (`Updater.set_states`) in the form this optimizer keeps:
        each state saved with another state_storage converted (engine.convert); a state
        whose layout does not fit is left as it is, for `_check` to name."""
        if self.multi_precision and low_precision(weight) and isinstance(state, tuple) and len(state) == 2 \
                and str(getattr(state[0], "dtype", "")) == "float32":
            master, inner = state
            return (master, self._converted_state(index, master, inner))
        names = self.engine.present_states(weight)
        parts = state_parts(state, len(names))
        if parts is None:
            return state
        try:
            converted = [self.engine.convert(index, name, part, weight) for name, part in zip(names, parts)]
        except (TypeError, ValueError, AttributeError):
            return state
        if all(a is b for a, b in zip(converted, parts)):
            return state
        return converted[0] if len(converted) == 1 else type(state)(converted)

    def _check(self, indices, weights, grads, states):
        """Raise before anything is modified if the arrays or states do not fit."""
        self.engine.check(indices, weights, grads, states)

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
        if not (self.multi_precision and any(map(low_precision, ws))):
            if self.engine.kept and self.use_fused_step:
                prepared = self._kept_step(idx, ws, gs, ss)     # its checks show what _check would
                if prepared is not None:
                    return prepared
            self._check(idx, ws, gs, ss)
            return self._prepare(idx, ws, gs, ss, fused=self.use_fused_step)
        launch = self.engine.multi_precision(idx, ws, gs, ss, fused=self.use_fused_step)
        return self._launch(idx, launch)

    update_multi_precision.plans_ahead = True

    def _run(self, indices, weights, grads, states, fused):
        """Prepare the step (`_prepare`), then run its kernels."""
        self._prepare(indices, weights, grads, states, fused).run()

    def _prepare(self, indices, weights, grads, states, fused):
        """Count, then compute every parameter's host scalars: a `PreparedStep` whose `run()`
        calls the kernels and whose `cancel()` restores the update counts.

        Host arithmetic that fails (e.g. FTML with lr = 0 divides by lr) raises
        ValueError before any array changes, with the update counts restored. An update
        with the arrays of an earlier native one reuses its kept launch (`_kept_step`)."""
        if fused and self.engine.kept:
            prepared = self._kept_step(indices, weights, grads, states)
            if prepared is not None:
                return prepared
        return self._launch(indices, self.engine.launch(indices, weights, grads, states, fused))

    def _launch(self, indices, launch):
        """The PreparedStep of an engine Launch: counted, then planned (counts restored when
        planning fails)."""
        prepared = self._count_and_plan(indices, launch.plan)
        prepared.kernels = launch.run
        if self.engine.grouped:
            def kernels():
                launch.run()
                self.group_states.update(launch.group_updates)
            prepared.kernels = kernels
        return prepared

    def _count_and_plan(self, indices, plan):
        """Count the update, read its learning rates and weight decays, and call
        `plan(StepInputs)`: a `PreparedStep` holding the result as `plans`. Host arithmetic
        that fails raises ValueError (a PreconditionError as itself) with the counts restored."""
        prepared = PreparedStep(self)
        if self.SPEC["lr_before_count"]:   # MXNet 1.x LBSGD reads lr, then counts
            lrs, wds = self._get_lrs(indices), self._get_wds(indices)
        self._update_count(indices)
        try:
            if not self.SPEC["lr_before_count"]:
                lrs, wds = self._get_lrs(indices), self._get_wds(indices)
            prepared.plans = plan(self._step_inputs(indices, lrs, wds))
        except (ArithmeticError, ValueError) as err:
            prepared.cancel()
            if isinstance(err, (PreconditionError, StepError)):
                raise
            raise ValueError(f"{type(self).__name__}: cannot compute this step's scalars: {err}") from err
        except BaseException:
            prepared.cancel()
            raise
        return prepared

    def _step_inputs(self, indices, lrs, wds):
        """The engine's StepInputs of counted indices: their counts, lrs and wds, this
        optimizer's rescale_grad and clip_gradient, and their names where the rule has name
        flags (param_idx2name, else the index)."""
        counts = self._index_update_count
        names = [self.idx2name.get(i, str(i)) for i in indices] if self.SPEC["name_flags"] else None
        initial = self._get_initial_lrs(indices) if self.engine.reads_initial_lr else None
        return StepInputs(list(map(counts.__getitem__, indices)), lrs, wds, self.rescale_grad,
                          self.clip_gradient, names, initial, self.group_states if self.engine.grouped else None)

    # -- group states (engine/group.py): saved with the counters ----------------------
    def _counters(self):
        counters = super()._counters()
        if self.engine.grouped:
            counters["group_states"] = dict(self.group_states)
        return counters

    def _restore_counters(self, saved):
        held = None
        if self.engine.grouped and "group_states" in saved:   # (checked before anything is set)
            if not isinstance(saved["group_states"], dict):
                raise ValueError(f"saved group_states must be a dict, got {type(saved['group_states']).__name__}")
            held = group_values.check_states(self.engine, saved["group_states"], "saved group_states")
        super()._restore_counters({k: v for k, v in saved.items() if k != "group_states"})
        if held is not None:
            self.group_states = held

    # -- kept launches (engine/kept.py) -------------------------------------------------
    def update(self, indices, weights, grads, states):
        """Update weights and states in place; lists (2.0) or one index (1.x) are accepted.

        Gradients are never modified. Everything is checked before anything changes (an
        update with the arrays of an earlier native one through its kept launch, whose
        checks show what `_check` would)."""
        if self.engine.kept and self.use_fused_step and type(self)._check is SpecOptimizer._check \
                and type(self).fused_step is SpecOptimizer.fused_step:
            lists = _as_lists(indices, weights, grads, states)
            prepared = self._kept_step(*lists)
            if prepared is not None:
                prepared.run()
                return
            indices, weights, grads, states = lists
        Optimizer.update(self, indices, weights, grads, states)

    def _kept_step(self, indices, weights, grads, states):
        """The prepared step of the kept launch of these arrays, or None (the full path)."""
        kept = self.engine.kept.find(indices, weights, grads, states)
        if kept is None:
            return None
        prepared = self._count_and_plan(indices, kept.plan)
        if not prepared.plans:      # the plans leave the kept launch
            prepared.cancel()
            return None
        prepared.kernels = kept.run
        return prepared

    def __getstate__(self):
        """Copies and pickles hold the engine's settings and leave its kept launches out
        (they stand for these very arrays): the copy builds its own engine."""
        state = self.__dict__.copy()
        engine = state.pop("engine")
        state["_engine_settings"] = (dict(engine.hyperparameters), engine.lazy_update, engine.storage)
        return state

    def __setstate__(self, state):
        hyperparameters, lazy_update, storage = state.pop("_engine_settings")
        self.__dict__.update(state)
        self.engine = Engine(self._module, hyperparameters, lazy_update, storage)


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


# constructor arguments that config() saves as the attributes of the same names
_SAVED_ATTRIBUTES = ("rescale_grad", "wd", "clip_gradient", "begin_num_update", "multi_precision",
                     "use_fused_step", "state_storage", "min_8bit_size")
