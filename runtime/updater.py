"""Updater: holds per-parameter states and calls the optimizer (MXNet's `get_updater`)."""
import numpy

from . import state_io, validation
from .backends import array_module, is_cupy_array
from .backends import quantized
from .backends.quantized import Blockwise8bit
from .mxnet_base import as_lists


class Updater:
    """Calls `optimizer.update_multi_precision` with states it creates on first use.

    Every group of a call is checked and planned before any array changes (an optforge
    optimizer's `_prepare_update`), so a call that fails changes no weight, state or count.

    `updater(index, grad, weight)` takes one index or lists (note MXNet's argument
    order: gradient before weight). With `optimizer.aggregate_num > 1` parameters are
    grouped by dtype and passed in lists of up to aggregate_num (numpy.inf: all at once).
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.states = {}
        self.states_synced = {}
        self.aggregate_updates = optimizer.aggregate_num > 1

    def __call__(self, index, grad, weight):
        indices, grads, weights = as_lists("updater", index, gradients=grad, weights=weight)
        indices = [i.decode() if isinstance(i, bytes) else i for i in indices]
        if len(set(indices)) != len(indices):
            twice = next(i for i in indices if indices.count(i) > 1)
            raise ValueError(f"parameter index {twice!r} appears twice in one updater call")
        for i, g, w in zip(indices, grads, weights):
            validation.check_pair(i, w, g)   # before any state is created
        if weights:
            self.optimizer._set_current_device(_device_id(weights[0]))
        # states are created (or moved to the weights' device) aside and kept only if every
        # group's update is checked and planned: a call that fails changes nothing
        states = {}
        for i, w in zip(indices, weights):
            if i not in self.states:
                states[i] = self.optimizer.create_state_multi_precision(i, w)
            elif not self.states_synced[i]:
                states[i] = self._synced(i, self.states[i], w)
            else:
                states[i] = self.states[i]
        engine = getattr(self.optimizer, "engine", None)
        if getattr(engine, "grouped", False):
            groups = [list(indices)]    # group reductions: the call's parameters are the group
        elif self.aggregate_updates:
            groups = [[indices[k] for k in group] for group in self._groups(indices, grads, weights)]
        else:
            groups = [[i] for i in indices]
        position = {i: k for k, i in enumerate(indices)}
        calls = [(idx, [weights[position[i]] for i in idx], [grads[position[i]] for i in idx],
                  [states[i] for i in idx]) for idx in groups]
        method = getattr(self.optimizer, "update_multi_precision", None)
        if not getattr(getattr(method, "__func__", None), "plans_ahead", False):
            # update_multi_precision overridden (a subclass, an instance, another family):
            # MXNet's call, group by group
            self.states.update(states)
            self.states_synced.update(dict.fromkeys(states, True))
            for call in calls:
                self.optimizer.update_multi_precision(*call)
            return
        prepared = []
        try:
            for call in calls:
                prepared.append(self.optimizer._prepare_update(*call))
        except BaseException:
            for step in reversed(prepared):
                step.cancel()
            raise
        self.states.update(states)
        self.states_synced.update(dict.fromkeys(states, True))
        for step in prepared:
            step.run()

    def _synced(self, index, state, weight):
        """A loaded state on the weight's backend and device, in the form the optimizer keeps
        (quantized or not: an optforge optimizer converts states saved with another
        state_storage)."""
        state = _sync(state, weight)
        convert = getattr(self.optimizer, "_converted_state", None)
        return state if convert is None else convert(index, weight, state)

    def _groups(self, indices, grads, weights):
        size = self.optimizer.aggregate_num
        if size == numpy.inf:
            return [list(range(len(indices)))]
        by_dtype = {}
        for k, w in enumerate(weights):
            by_dtype.setdefault(str(w.dtype), []).append(k)
        groups = []
        for members in by_dtype.values():
            for start in range(0, len(members), int(size)):
                groups.append(members[start:start + int(size)])
        return groups

    def train(self, index, weight):
        """Rules with train/eval modes (runtime/modes.py): these weights back to the training point."""
        self._switch("train", index, weight)

    def eval(self, index, weight):
        """Rules with train/eval modes: these weights (an index and weight, or lists) to the
        point to evaluate, from the states this updater holds; their steps raise until train()."""
        self._switch("eval", index, weight)

    def _switch(self, mode, index, weight):
        if not hasattr(self.optimizer, "_set_modes"):
            raise TypeError(f"{type(self.optimizer).__name__} has no train/eval modes")
        indices, weights = as_lists(f"{mode}()", index, weights=weight)
        held = [k for k, i in enumerate(indices) if i in self.states]
        states = [self.states[indices[k]] if self.states_synced[indices[k]]
                  else self._synced(indices[k], self.states[indices[k]], weights[k]) for k in held]
        getattr(self.optimizer, mode)([indices[k] for k in held], [weights[k] for k in held], states)
        for k, state in zip(held, states):
            self.states[indices[k]], self.states_synced[indices[k]] = state, True
        # a parameter without a state yet is every point at once: only its mode is recorded
        self.optimizer._set_modes([i for k, i in enumerate(indices) if k not in held], mode)

    def get_states(self, dump_optimizer=False):
        """The states (and with dump_optimizer=True the optimizer) as bytes; no pickle."""
        optimizer = None
        if dump_optimizer:
            if not hasattr(self.optimizer, "config"):
                raise ValueError(f"{type(self.optimizer).__name__} cannot be saved without pickle; "
                                 "use dump_optimizer=False and re-create the optimizer")
            optimizer = self.optimizer.config()
        return state_io.dumps(self.states, optimizer)

    def set_states(self, states):
        """Load bytes from get_states(); restores the optimizer too if it was dumped."""
        loaded, optimizer = state_io.loads(states)
        if optimizer is not None:
            from .spec_optimizer import SpecOptimizer
            self.optimizer = SpecOptimizer.from_config(optimizer)
            self.aggregate_updates = self.optimizer.aggregate_num > 1
        self.states = loaded
        self.states_synced = dict.fromkeys(self.states, False)


def get_updater(optimizer):
    """An Updater for `optimizer`."""
    return Updater(optimizer)


def _device_id(array):
    return array.device.id if is_cupy_array(array) else 0


def _sync(state, weight):
    """Move a loaded state onto the weight's backend and device (scalar states stay on the host)."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_sync(s, weight) for s in state)
    if isinstance(state, Blockwise8bit):
        return Blockwise8bit(_sync(state.codes, weight), _sync(state.absmax, weight), state.signed)
    if state.ndim == 0 and isinstance(state, numpy.ndarray):
        return state
    xp = array_module(weight)
    if quantized.is_bfloat16(state):
        # a bfloat16 state (CuPy holds none but stored ones): on CuPy arrays its bits
        return quantized.bfloat16_as(state, xp, None if xp is numpy else weight.device)
    if xp is numpy:
        return state.get() if is_cupy_array(state) else state
    with weight.device:
        return xp.asarray(state)
