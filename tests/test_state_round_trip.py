"""Every registered optimizer (every flavor) saves and loads its own state in both APIs:
Updater.get_states()/set_states() (MXNet) and state_dict()/load_state_dict() (params-style).

After a few steps the state is saved and loaded into a fresh optimizer; both then continue
with the same gradients and must stay bit-identical (weights, every state array, counts).
Nothing here computes an update: the original optimizer, never stopped, is the reference.
"""
import copy

import numpy as np
import pytest

import optforge
from optforge import lr_scheduler, optim
from optforge.runtime import registry
from optforge.runtime.params_api import keywords

from support import shapes_for, usable_wd

ALL = sorted(registry.registered())

# Hyperparameters whose defaults keep no state at all (or the smallest layout): set so that
# the round trip carries real state arrays.
WITH_STATE = {"sgd": dict(momentum=0.9), "ccsgd": dict(momentum=0.9), "nag": dict(momentum=0.9),
              "lars": dict(momentum=0.9), "lbsgd": dict(momentum=0.9), "dcasgd": dict(momentum=0.5),
              "signum": dict(momentum=0.9), "rmsprop": dict(centered=True)}

SHAPES = [(4, 3), (5,), (2, 3, 2)]
STEPS_BEFORE, STEPS_AFTER = 3, 3


def _wd(flavor, name):
    return usable_wd(registry.lookup(name, flavor), 0.01)


def _settings(flavor, name):
    cls = registry.lookup(name, flavor)
    known = {m["name"] for m in cls.SPEC["hyperparameters"]}
    return {k: v for k, v in WITH_STATE.get(name, {}).items() if k in known}


def _gradients(seed, shapes, dtype=np.float32, steps=STEPS_BEFORE + STEPS_AFTER):
    rng = np.random.default_rng(seed)
    # signed, some beyond the clip bound of 1.0 after rescaling by 0.5
    return [[(rng.standard_normal(s) * 3).astype(dtype) for s in shapes] for _ in range(steps)]


def _parts(state):
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _parts(s)]
    return [state]


def _assert_bits_equal(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    assert a.tobytes() == b.tobytes(), f"{what} differs"


@pytest.mark.parametrize("flavor,name", ALL)
def test_updater_get_states_set_states(flavor, name):
    cls = registry.lookup(name, flavor)
    shapes = shapes_for(cls.SPEC, SHAPES)   # Muon: matrices only
    settings = _settings(flavor, name)

    def make():
        scheduler = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.05)
        return cls(lr_scheduler=scheduler, wd=_wd(flavor, name), rescale_grad=0.5, clip_gradient=1.0,
                   begin_num_update=2, **settings)

    rng = np.random.default_rng(7)
    weights = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = _gradients(8, shapes)
    original = optforge.get_updater(make())
    for step in range(STEPS_BEFORE):
        original(list(range(len(shapes))), grads[step], weights)
    saved = original.get_states(dump_optimizer=True)

    resumed = [w.copy() for w in weights]
    fresh = optforge.get_updater(optforge.create("adam"))   # replaced by the saved optimizer
    fresh.set_states(saved)
    assert type(fresh.optimizer) is cls
    for step in range(STEPS_BEFORE, STEPS_BEFORE + STEPS_AFTER):
        original(list(range(len(shapes))), grads[step], weights)
        fresh(list(range(len(shapes))), grads[step], resumed)
    for i, (a, b) in enumerate(zip(weights, resumed)):
        _assert_bits_equal(a, b, f"{flavor}/{name} weight {i}")
    assert sorted(original.states) == sorted(fresh.states)
    for i in original.states:
        pa, pb = _parts(original.states[i]), _parts(fresh.states[i])
        assert len(pa) == len(pb)
        for k, (a, b) in enumerate(zip(pa, pb)):
            _assert_bits_equal(a, b, f"{flavor}/{name} state {i} part {k}")
    assert fresh.optimizer._all_index_update_counts == original.optimizer._all_index_update_counts
    assert fresh.optimizer.num_update == original.optimizer.num_update == 2 + STEPS_BEFORE + STEPS_AFTER


@pytest.mark.parametrize("flavor,name", ALL)
def test_updater_round_trip_multi_precision(flavor, name):
    """float16 weights with a float32 master copy: (weight32, inner) states round-trip too."""
    cls = registry.lookup(name, flavor)
    shapes = shapes_for(cls.SPEC, SHAPES)   # Muon: matrices only
    settings = _settings(flavor, name)

    def make():
        return cls(learning_rate=0.05, wd=_wd(flavor, name), rescale_grad=0.5, multi_precision=True, **settings)

    rng = np.random.default_rng(9)
    weights = [rng.standard_normal(s).astype(np.float16) for s in shapes[:2]]
    grads = _gradients(10, shapes[:2], np.float16)
    original = optforge.get_updater(make())
    for step in range(STEPS_BEFORE):
        original([0, 1], grads[step], weights)
    fresh = optforge.get_updater(make())
    fresh.set_states(original.get_states(dump_optimizer=True))   # the counts travel with the optimizer
    resumed = [w.copy() for w in weights]
    for step in range(STEPS_BEFORE, STEPS_BEFORE + STEPS_AFTER):
        original([0, 1], grads[step], weights)
        fresh([0, 1], grads[step], resumed)
    for i, (a, b) in enumerate(zip(weights, resumed)):
        _assert_bits_equal(a, b, f"{flavor}/{name} weight {i}")
    for i in original.states:
        for k, (a, b) in enumerate(zip(_parts(original.states[i]), _parts(fresh.states[i]))):
            _assert_bits_equal(a, b, f"{flavor}/{name} state {i} part {k}")


def _params_settings(flavor, name):
    """WITH_STATE in the params-style API's keywords (a hyperparameter's keyword)."""
    cls = registry.lookup(name, flavor)
    settings = _settings(flavor, name)
    out = {}
    for keyword, names in keywords(cls.SPEC):
        if len(names) == 1 and names[0] in settings:
            out[keyword] = settings[names[0]]
    return out


@pytest.mark.parametrize("flavor,name", ALL)
def test_params_state_dict_load_state_dict(flavor, name):
    settings = _params_settings(flavor, name)
    shapes = shapes_for(registry.lookup(name, flavor).SPEC, SHAPES)   # Muon: matrices only
    rng = np.random.default_rng(11)
    weights = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = _gradients(12, shapes)
    groups = lambda ws: [{"params": ws[:2]}, {"params": ws[2:], "lr": 0.02}]   # noqa: E731
    original = optim.create(name, groups(weights), flavor=flavor, lr=0.05, weight_decay=_wd(flavor, name),
                           **settings)
    for step in range(STEPS_BEFORE):
        original.step(grads[step])
    saved = copy.deepcopy(original.state_dict())

    resumed = [w.copy() for w in weights]
    fresh = optim.create(name, groups(resumed), flavor=flavor, **settings)
    fresh.load_state_dict(saved)
    for step in range(STEPS_BEFORE, STEPS_BEFORE + STEPS_AFTER):
        original.step(grads[step])
        fresh.step(grads[step])
    for i, (a, b) in enumerate(zip(weights, resumed)):
        _assert_bits_equal(a, b, f"{flavor}/{name} weight {i}")
    a, b = original.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert sorted(a["state"]) == sorted(b["state"]) == [0, 1, 2]
    for pid in a["state"]:
        assert sorted(a["state"][pid]) == sorted(b["state"][pid])
        for key in a["state"][pid]:
            _assert_bits_equal(a["state"][pid][key], b["state"][pid][key], f"{flavor}/{name} {pid}.{key}")
    assert int(a["state"][0]["step"]) == STEPS_BEFORE + STEPS_AFTER


@pytest.mark.parametrize("name", ["groupadagrad", "novograd"])
def test_row_and_per_tensor_states_load_back(name):
    """GroupAdaGrad's (rows, 1) history and NovoGrad's per-tensor float32 second moment keep
    their own shape and dtype through state_dict(), not the weight's."""
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    opt = optim.create(name, [w], lr=0.1)
    opt.step([np.full((4, 3), 0.5, np.float32)])
    other = optim.create(name, [w.copy()], lr=0.1)
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    for a, b in zip(_parts(opt.state[0]), _parts(other.state[0])):
        _assert_bits_equal(a, b, name)
