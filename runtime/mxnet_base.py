"""The Optimizer base class: MXNet's optimizer API and base-class semantics.

Learning-rate and weight-decay multipliers, per-parameter update counts with
`begin_num_update`, the scheduler interaction, the `update`/`step`/`fused_step`
protocol and multi-precision live here once for every optimizer. Nothing here
knows any optimizer's formula: subclasses built from specs (`spec_optimizer.py`)
supply `create_state` and the update itself from generated code.
"""
import itertools
import math
import warnings

import numpy

from ..conventions.state_storage import MIN_8BIT_SIZE, check_min_size, check_storage
from . import validation
from .engine import low_precision, master_state, round_into


class Optimizer:
    """Base class of every optforge optimizer (MXNet 2.0 API, 1.x call forms accepted).

    Parameters
    ----------
    rescale_grad : float, default 1.0
        Multiplies every gradient before clipping (e.g. 1/batch_size).
    param_idx2name : dict of int -> str, optional
        Parameter names by index; used by name-based lr_mult/wd_mult.
    wd : float, default 0.0
        Weight decay (L2 penalty), >= 0.
    clip_gradient : float or None, default None
        Clip rescaled gradients to [-clip_gradient, clip_gradient]; None turns clipping off.
        0 clips every gradient to 0 (as MXNet 2.0's step() and its kernels do).
    learning_rate : float, optional
        Base learning rate (each optimizer has its own default; 0.01 when neither a rate
        nor a scheduler is given). Given together with lr_scheduler, it replaces the
        scheduler's base_lr (with a warning); an optimizer's default learning rate never
        does (MXNet 2.0 let the class default overwrite the scheduler's base_lr).
    lr_scheduler : callable, optional
        `lr_scheduler(num_update) -> lr`; see `optforge.lr_scheduler`.
    sym : optional
        An object with `attr_dict()` and `list_arguments()` (an MXNet Symbol) whose
        `__lr_mult__`/`__wd_mult__` attributes set default multipliers.
    begin_num_update : int, default 0
        The update count the first step continues from (its t is begin_num_update + 1).
    multi_precision : bool, default False
        Keep a float32 master copy (and float32 states) for float16/bfloat16 weights.
    param_dict : dict, optional
        index -> object with `lr_mult`/`wd_mult` attributes (Gluon Parameters); wins
        over the other multiplier sources.
    aggregate_num : int, optional
        How many parameters the Updater passes per call (None -> 1; 0 or 1: one at a
        time; numpy.inf: all).
    use_fused_step : bool, optional
        `update` calls `fused_step` (generated kernels) if True, else `step` (the NumPy
        reference code, also on CuPy arrays).
    state_storage : None, '8bit', 'bfloat16' or 'bfloat16_stochastic', default None
        How the states a spec allows to be quantized are stored for float32 weights (and
        master copies): 8-bit block-wise (bitsandbytes' scheme) or bfloat16, computed in
        float32; None keeps them as the rule declares them. Fixed at construction.
    min_8bit_size : int, default 4096
        With state_storage='8bit', tensors with fewer elements keep float32 states.
    """

    def __init__(self, rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None,
                 learning_rate=None, lr_scheduler=None, sym=None, begin_num_update=0,
                 multi_precision=False, param_dict=None, aggregate_num=None,
                 use_fused_step=None, state_storage=None, min_8bit_size=MIN_8BIT_SIZE, **kwargs):
        if kwargs:
            name = next(iter(kwargs))
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument '{name}'")
        self.rescale_grad = rescale_grad
        if learning_rate is None and lr_scheduler is None:
            learning_rate = 0.01
        self.lr_scheduler = validation.scheduler(lr_scheduler)
        if learning_rate is not None:
            learning_rate = validation.number("learning_rate", learning_rate, minimum=0.0)
        if lr_scheduler is not None and learning_rate is not None \
                and getattr(lr_scheduler, "base_lr", learning_rate) != learning_rate:
            warnings.warn(f"learning rate from ``lr_scheduler`` has been overwritten by "
                          f"``learning_rate`` in optimizer ({lr_scheduler.base_lr} -> {learning_rate})",
                          UserWarning, stacklevel=3)
            lr_scheduler.base_lr = learning_rate
        self.lr = learning_rate
        # what a rule's `initial_lr` reads (AdaBound's final_lr * lr / initial_lr): the rate
        # given here, or the scheduler's base; set_learning_rate and schedules leave it
        self._initial_lr = learning_rate if learning_rate is not None \
            else getattr(self.lr_scheduler, "base_lr", None)
        self.wd = wd
        self.clip_gradient = clip_gradient
        self.begin_num_update = validation.number("begin_num_update", begin_num_update,
                                                  minimum=0, integer=True)
        self.num_update = self.begin_num_update
        self.multi_precision = multi_precision
        self.aggregate_num = _aggregate_num(aggregate_num)
        self.use_fused_step = False if use_fused_step is None else use_fused_step
        self._state_storage = check_storage(state_storage)
        self._min_8bit_size = check_min_size(min_8bit_size)
        self._all_index_update_counts = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.idx2name = dict(param_idx2name or {})
        self.sym_info = (sym.attr_dict(), sym.list_arguments()) if sym is not None else ()
        self.param_dict = param_dict if param_dict else {}
        self.lr_mult = {}
        self.wd_mult = {}
        self.set_lr_mult({})
        self.set_wd_mult({})

    # -- validated attributes ------------------------------------------------
    @property
    def lr(self):
        """The base learning rate (None while an lr_scheduler alone drives it)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        if value is None and getattr(self, "lr_scheduler", None) is None:
            raise ValueError("lr may be None only while an lr_scheduler drives the learning rate")
        self._lr = validation.number("lr", value, minimum=0.0, allow_none=True)

    @property
    def state_storage(self):
        """How quantizable states are stored (None, '8bit', 'bfloat16', 'bfloat16_stochastic'):
        chosen at construction."""
        return self._state_storage

    @property
    def min_8bit_size(self):
        return self._min_8bit_size

    @property
    def multi_precision(self):
        return self._multi_precision

    @multi_precision.setter
    def multi_precision(self, value):
        self._multi_precision = validation.flag("multi_precision", value)

    @property
    def use_fused_step(self):
        return self._use_fused_step

    @use_fused_step.setter
    def use_fused_step(self, value):
        self._use_fused_step = validation.flag("use_fused_step", value)

    @property
    def wd(self):
        return self._wd

    @wd.setter
    def wd(self, value):
        self._wd = validation.number("wd", value, minimum=0.0)

    @property
    def rescale_grad(self):
        return self._rescale_grad

    @rescale_grad.setter
    def rescale_grad(self, value):
        # NaN/inf only where the rule's skip_if reads rescale_grad (AdamW, AdaBelief skip such
        # steps, as MXNet's do); any other rule would write NaN into every weight
        self._rescale_grad = validation.number("rescale_grad", value,
                                               finite=not self._skips_bad_rescale_grad)

    _skips_bad_rescale_grad = False   # set by rules whose skip_if reads rescale_grad

    @property
    def clip_gradient(self):
        return self._clip_gradient

    @clip_gradient.setter
    def clip_gradient(self, value):
        self._clip_gradient = validation.number(
            "clip_gradient", value, minimum=0.0, allow_none=True,
            rule=f"clip_gradient must be >= 0 or None (None turns clipping off), got {value!r}")

    # -- registry (MXNet's static methods) --------------------------------------
    @staticmethod
    def register(klass):
        from .registry import register
        return register(klass)

    @staticmethod
    def create_optimizer(name, **kwargs):
        from .registry import create
        return create(name, **kwargs)

    # -- learning rate -------------------------------------------------------
    @property
    def learning_rate(self):
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        return self.lr

    def set_learning_rate(self, lr):
        """Set the base learning rate; not allowed while an lr_scheduler drives it."""
        if self.lr_scheduler is not None:
            raise UserWarning("LRScheduler of the optimizer has already been defined. "
                              "Note that set_learning_rate can mutate the value of the learning "
                              "rate of the optimizer only when the LRScheduler of the optimizer "
                              "is undefined.")
        self.lr = validation.number("learning_rate", lr, minimum=0.0)

    def set_lr_scale(self, args_lrscale):  # MXNet 1.x
        raise DeprecationWarning("set_lr_scale is deprecated; use set_lr_mult instead")

    def set_lr_mult(self, args_lr_mult):
        """Replace the learning-rate multipliers (by index or by parameter name)."""
        self.lr_mult = self._multipliers("__lr_mult__", args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        """Replace the weight-decay multipliers (by index or by parameter name).

        Under MXNet 1.x semantics, parameters named in param_idx2name whose names do not
        end with `_weight` or `_gamma` (LARS: `_weight`) first get wd_mult 0."""
        self.wd_mult = self._multipliers("__wd_mult__", args_wd_mult, self._decay_suffixes)

    _decay_suffixes = None   # set by flavors whose rule exempts some names from weight decay

    def _multipliers(self, attribute, given, keep=None):
        out = {}
        if keep is not None:
            for name in self.idx2name.values():
                if not name.endswith(tuple(keep)):
                    out[name] = 0.0
        if self.sym_info:
            attrs, arg_names = self.sym_info
            for name in arg_names:
                if name in attrs and attribute in attrs[name]:
                    out[name] = validation.number(f"{attribute.strip('_')} of {name!r} (sym)",
                                                  float(attrs[name][attribute]), minimum=0.0)
        out.update(validation.multipliers(attribute.strip("_"), given))
        return out

    def _set_current_device(self, device_id):
        """Select the per-device update counts (the Updater does this per call)."""
        if device_id not in self._all_index_update_counts:
            self._all_index_update_counts[device_id] = {}
        self._index_update_count = self._all_index_update_counts[device_id]

    _set_current_context = _set_current_device  # MXNet 1.x name

    def _update_count(self, index):
        """Count one update of each index; t of a first update is begin_num_update + 1."""
        indices = index if isinstance(index, (list, tuple)) else [index]
        counts = self._index_update_count
        before = list(map(counts.get, indices))
        if len(indices) > 1 and None not in before and before.count(before[0]) == len(before) \
                and len(set(indices)) == len(indices):
            # every index counted before and at the same count (the usual case): one value for all
            t = before[0] + 1
            counts.update(zip(indices, itertools.repeat(t)))
            self.num_update = max(t, self.num_update)
            return
        for idx in indices:
            if idx not in counts:
                counts[idx] = self.begin_num_update
            counts[idx] += 1
            self.num_update = max(counts[idx], self.num_update)

    def _get_lrs(self, indices):
        """Learning rates after the scheduler and lr_mult (first matching source wins)."""
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        if self.lr_scheduler is not None:
            lr = validation.number(f"lr_scheduler({self.num_update})", lr, minimum=0.0)
        return self._times_lr_mult(lr, indices)

    def _times_lr_mult(self, lr, indices):
        """`lr` times each index's lr_mult."""
        if not self.param_dict and not self.lr_mult:
            return [lr * 1.0] * len(indices)    # every multiplier is 1.0: one product for all
        return [lr * self._multiplier(index, "lr_mult", self.lr_mult) for index in indices]

    def _get_lr(self, index):
        return self._get_lrs([index])[0]

    def _get_initial_lrs(self, indices):
        """Each parameter's initial learning rate (lr_mult applied); without one given at
        construction, the scheduler's rate at begin_num_update."""
        lr = getattr(self, "_initial_lr", None)
        if lr is None:
            lr = validation.number(f"lr_scheduler({self.begin_num_update})",
                                   self.lr_scheduler(self.begin_num_update), minimum=0.0)
        return self._times_lr_mult(lr, indices)

    def _get_wds(self, indices):
        if not self.param_dict and not self.wd_mult:
            return [self.wd * 1.0] * len(indices)
        return [self.wd * self._multiplier(index, "wd_mult", self.wd_mult) for index in indices]

    def _get_wd(self, index):
        return self._get_wds([index])[0]

    def _multiplier(self, index, attribute, table):
        if index in self.param_dict:
            return validation.number(f"param_dict[{index!r}].{attribute}",
                                     getattr(self.param_dict[index], attribute, 1.0), minimum=0.0)
        if index in table:
            return table[index]
        if index in self.idx2name:
            return table.get(self.idx2name[index], 1.0)
        return 1.0

    # -- states and updates ----------------------------------------------------
    def create_state(self, index, weight):
        """The optimizer state of one parameter (None, an array or a tuple)."""
        return None

    def create_state_multi_precision(self, index, weight):
        """`create_state`, with a float32 master copy first for float16/bfloat16 weights
        when multi_precision is on: the state is then (weight32, inner_state)."""
        validation.float_weight(index, weight)
        if low_precision(weight):
            if self.multi_precision:
                master = weight.astype(numpy.float32)
                return (master, self.create_state(index, master))
            warnings.warn("Accumulating with float16 in optimizer can lead to poor accuracy or slow "
                          "convergence. Consider using multi_precision=True option of the optimizer",
                          stacklevel=2)
        return self.create_state(index, weight)

    def update(self, indices, weights, grads, states):
        """Update weights and states in place; lists (2.0) or one index (1.x) are accepted.

        Gradients are never modified; a gradient that shares memory with its weight or a
        state is read as a copy. Everything is checked before anything changes."""
        indices, weights, grads, states = _as_lists(indices, weights, grads, states)
        self._check(indices, weights, grads, states)
        if self.use_fused_step:
            self.fused_step(indices, weights, grads, states)
        else:
            self.step(indices, weights, grads, states)

    def update_multi_precision(self, indices, weights, grads, states):
        """`update`, running on the float32 master copy of float16/bfloat16 weights when
        multi_precision is on, then rounding the master copy into the weight."""
        self._prepare_update(indices, weights, grads, states).run()

    update_multi_precision.plans_ahead = True   # the Updater may call _prepare_update instead

    def _prepare_update(self, indices, weights, grads, states):
        """`update_multi_precision` in two halves, so that the Updater can check and plan
        every group of a call before any of them changes an array: a `PreparedStep` whose
        `run()` updates and whose `cancel()` restores the update counts. Optimizers built
        from specs plan here; this base version (for `step`s written by hand) checks the
        master copies and leaves the whole update to `run()`."""
        indices, weights, grads, states = _as_lists(indices, weights, grads, states)
        masters, grads32, inner, low = self._master_arrays(indices, weights, grads, states)
        prepared = PreparedStep(self)

        def run():
            self.update(indices, masters, grads32, inner)
            round_into(weights, masters, low)
        prepared.kernels = run
        return prepared

    def _master_arrays(self, indices, weights, grads, states):
        """(weights, gradients, states, low) to update: the float32 master copy, the float32
        gradient and the inner state for float16/bfloat16 weights under multi_precision."""
        masters, grads32, inner, low = [], [], [], []
        for index, weight, grad, state in zip(indices, weights, grads, states):
            if self.multi_precision and low_precision(weight):
                validation.check_pair(index, weight, grad)
                master, inner_state = master_state(index, weight, state)
                masters.append(master)
                grads32.append(grad.astype(numpy.float32))
                inner.append(inner_state)
                low.append(True)
            else:
                masters.append(weight)
                grads32.append(grad)
                inner.append(state)
                low.append(False)
        return masters, grads32, inner, low

    def step(self, indices, weights, grads, states):
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def fused_step(self, indices, weights, grads, states):
        raise NotImplementedError(f"{type(self).__name__} does not implement fused_step()")

    def _check(self, indices, weights, grads, states):
        """Raise before anything is modified if the arrays or states do not fit."""
        validation.check_pairs(indices, weights, grads)

    # -- saving without pickle ------------------------------------------------------
    def _counters(self):
        """Counters and multipliers, JSON-safe (for Updater.get_states(dump_optimizer=True))."""
        scheduler = self.lr_scheduler
        if scheduler is not None and not hasattr(scheduler, "config"):
            raise ValueError(f"cannot save lr_scheduler of type {type(scheduler).__name__} without "
                             "pickle; use an optforge.lr_scheduler class or dump_optimizer=False")
        return {
            "lr": self.lr,
            "num_update": self.num_update,
            "counts": [[device, encode_keys(counts)]
                       for device, counts in sorted(self._all_index_update_counts.items())],
            "lr_mult": encode_keys(self.lr_mult),
            "wd_mult": encode_keys(self.wd_mult),
            "lr_scheduler": scheduler.config() if scheduler is not None else None,
            "initial_lr": getattr(self, "_initial_lr", None),
        }

    def _restore_counters(self, saved):
        """Set what `_counters()` saved; every entry is checked before any is set."""
        from .schedulers import LRScheduler
        validation.entries("saved counters", saved,
                           ("lr", "num_update", "counts", "lr_mult", "wd_mult", "lr_scheduler"),
                           optional=("initial_lr",))     # (saved since the rules could read it)
        lr = validation.number("saved lr", saved["lr"], minimum=0.0, allow_none=True)
        initial_lr = validation.number("saved initial_lr", saved.get("initial_lr"), minimum=0.0, allow_none=True)
        num_update = validation.count("saved num_update", saved["num_update"])
        if not isinstance(saved["counts"], list):
            raise ValueError(f"saved counts must be a list, got {type(saved['counts']).__name__}")
        counts = {}
        for item in saved["counts"]:
            if not (isinstance(item, list) and len(item) == 2):
                raise ValueError(f"saved counts must be [device, counts] pairs, got {item!r}")
            device = validation.count("saved device id", item[0])
            counts[device] = {index: validation.count(f"saved update count of parameter {index!r}", value)
                              for index, value in decode_keys(item[1], "saved counts").items()}
        lr_mult = validation.multipliers("saved lr_mult", decode_keys(saved["lr_mult"], "saved lr_mult"))
        wd_mult = validation.multipliers("saved wd_mult", decode_keys(saved["wd_mult"], "saved wd_mult"))
        scheduler = None
        if saved["lr_scheduler"] is not None:
            scheduler = LRScheduler.from_config(saved["lr_scheduler"])
        if lr is None and scheduler is None and self.lr_scheduler is None:
            raise ValueError("saved lr is None but no lr_scheduler was saved")
        if scheduler is not None:
            self.lr_scheduler = scheduler
        self.lr = lr
        if "initial_lr" in saved:
            self._initial_lr = initial_lr
        self.num_update = num_update
        self._all_index_update_counts = counts
        self._all_index_update_counts.setdefault(0, {})
        self._index_update_count = self._all_index_update_counts[0]
        self.lr_mult = lr_mult
        self.wd_mult = wd_mult

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}, wd={self.wd!r})"


class PreparedStep:
    """A checked and counted step whose arrays have not changed yet: `run()` runs its
    kernels, `cancel()` restores the update counts it advanced."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.counts = dict(optimizer._index_update_count)
        self.num_update = optimizer.num_update
        self.kernels = None

    def run(self):
        self.kernels()

    def cancel(self):
        self.optimizer._index_update_count.clear()
        self.optimizer._index_update_count.update(self.counts)
        self.optimizer.num_update = self.num_update


def _aggregate_num(value):
    if value is None:
        return 1
    if value is numpy.inf or (isinstance(value, float) and math.isinf(value) and value > 0):
        return numpy.inf
    # 0 and 1 both mean no aggregation (MXNet's Updater aggregates when aggregate_num > 1;
    # MXNet 1.x's base default is 0 and MXNet's own tests pass 0)
    return validation.number("aggregate_num", value, minimum=0, integer=True,
                             rule=f"aggregate_num must be an integer >= 0 or numpy.inf, got {value!r}")


def as_lists(call, index, **arrays):
    """One index (MXNet 1.x) or a list of them (2.0), with one array per index for each
    keyword: [indices, *arrays] as lists of one length; ValueError naming `call` and every
    length otherwise."""
    if not isinstance(index, (list, tuple)):
        return [[index]] + [[array] for array in arrays.values()]
    lists = [list(index)] + [list(array) for array in arrays.values()]
    if any(len(values) != len(lists[0]) for values in lists[1:]):
        names = list(arrays)
        got = [f"{len(values)} {name}" for name, values in zip(["indices"] + names, lists)]
        raise ValueError(f"{call} needs as many {_listed(names)} as indices, got {_listed(got)}")
    return lists


def _listed(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _as_lists(indices, weights, grads, states):
    return as_lists("update()", indices, weights=weights, gradients=grads, states=states)


def encode_keys(mapping):
    """A dict with int or str keys as a JSON-safe list of [kind, key, value]."""
    out = []
    for key, value in mapping.items():
        if isinstance(key, (int, numpy.integer)) and not isinstance(key, bool):
            out.append(["int", int(key), value])
        elif isinstance(key, str):
            out.append(["str", key, value])
        else:
            raise TypeError(f"cannot save key {key!r}: keys must be int or str")
    return out


def decode_keys(items, what="saved table"):
    """The dict `encode_keys` saved; ValueError if `items` is not such a list."""
    if not isinstance(items, list):
        raise ValueError(f"{what} must be a list of [kind, key, value], got {type(items).__name__}")
    out = {}
    for item in items:
        if not (isinstance(item, list) and len(item) == 3 and
                ((item[0] == "int" and isinstance(item[1], int) and not isinstance(item[1], bool))
                 or (item[0] == "str" and isinstance(item[1], str)))):
            raise ValueError(f"{what} must be a list of [\"int\", int, value] or [\"str\", str, value], "
                             f"got {item!r}")
        out[item[1]] = item[2]
    return out
