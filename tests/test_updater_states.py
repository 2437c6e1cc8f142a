"""Updater, get_states/set_states: pickle-free and bit-exact; resuming equals never stopping."""
import io
import json

import numpy as np
import pytest

import optforge
from optforge import lr_scheduler

SETTINGS = {
    "sgd": dict(momentum=0.9), "nag": {}, "signum": {}, "ftml": {}, "dcasgd": dict(momentum=0.5),
    "sgld": dict(seed=5), "adam": {}, "adamw": {}, "adamax": {}, "nadam": {}, "adagrad": {},
    "adadelta": {}, "rmsprop": dict(centered=True), "ftrl": {}, "test": {},
}


def _problem(seed):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in weights] for _ in range(8)]
    return weights, grads


def _optimizer(name):
    scheduler = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.05)
    return optforge.create(name, lr_scheduler=scheduler, wd=0.01, rescale_grad=0.5,
                           clip_gradient=1.0, begin_num_update=2, **SETTINGS[name])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_resume_is_bit_identical(name):
    weights, grads = _problem(1)
    straight = [w.copy() for w in weights]
    updater = optforge.get_updater(_optimizer(name))
    for step in range(8):
        updater([0, 1], grads[step], straight)

    resumed = [w.copy() for w in weights]
    first = optforge.get_updater(_optimizer(name))
    for step in range(4):
        first([0, 1], grads[step], resumed)
    saved = first.get_states(dump_optimizer=True)
    fresh = optforge.get_updater(optforge.create("sgd"))   # a different optimizer: replaced on load
    fresh.set_states(saved)
    assert type(fresh.optimizer).__name__.lower() == name
    for step in range(4, 8):
        fresh([0, 1], grads[step], resumed)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    assert fresh.optimizer.num_update == updater.optimizer.num_update


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_states_round_trip_bit_exactly(name):
    weights, grads = _problem(2)
    updater = optforge.get_updater(optforge.create(name, **SETTINGS[name]))
    for step in range(3):
        updater([0, 1], grads[step], weights)
    loaded = optforge.get_updater(optforge.create(name, **SETTINGS[name]))
    loaded.set_states(updater.get_states())
    assert set(loaded.states) == {0, 1}
    for index in (0, 1):
        _assert_same_tree(loaded.states[index], updater.states[index])
    assert loaded.states_synced == {0: False, 1: False}


def _assert_same_tree(a, b):
    if b is None:
        assert a is None
    elif isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_tree(x, y)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def test_format_is_npz_with_json_and_needs_no_pickle():
    weights, grads = _problem(3)
    updater = optforge.get_updater(optforge.create("nadam"))
    updater([0, 1], grads[0], weights)
    data = updater.get_states(dump_optimizer=True)
    archive = np.load(io.BytesIO(data), allow_pickle=False)
    meta = json.loads(archive["meta"].tobytes())
    assert meta["format"] == "optforge-states" and meta["optimizer"]["name"] == "nadam"
    assert all(archive[name].dtype != object for name in archive.files)


def test_set_states_rejects_other_data():
    updater = optforge.get_updater(optforge.create("adam"))
    with pytest.raises(ValueError, match="not an optforge states file"):
        updater.set_states(b"\x80\x04garbage")
    with pytest.raises(TypeError):
        updater.set_states("text")


def test_custom_scheduler_cannot_be_dumped_but_states_can():
    opt = optforge.create("sgd", lr_scheduler=lambda n: 0.1)
    updater = optforge.get_updater(opt)
    w, g = np.ones(3, np.float32), np.ones(3, np.float32)
    updater(0, g, w)
    assert updater.get_states()          # states alone are fine
    with pytest.raises(ValueError, match="cannot save lr_scheduler"):
        updater.get_states(dump_optimizer=True)


def test_updater_accepts_single_index_and_lists_and_bytes_keys():
    opt = optforge.create("sgd", learning_rate=0.5)
    updater = optforge.get_updater(opt)
    w = np.ones(2, np.float32)
    updater(b"w", np.ones(2, np.float32), w)
    assert "w" in updater.states
    np.testing.assert_allclose(w, 0.5)


def test_updater_aggregates_by_dtype_with_same_results():
    rng = np.random.default_rng(0)
    shapes = [(3,), (2, 2), (5,), (4,), (3, 3)]
    dtypes = [np.float32, np.float64, np.float32, np.float64, np.float32]
    ws = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]
    gs = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]
    results = []
    calls = []
    for aggregate in (1, 2, np.inf, float("inf")):
        opt = optforge.create("adam", learning_rate=0.1, aggregate_num=aggregate)
        original = opt.update_multi_precision

        def spy(indices, *rest, _orig=original):
            calls.append((aggregate, list(indices)))
            return _orig(indices, *rest)
        opt.update_multi_precision = spy
        updater = optforge.get_updater(opt)
        w = [x.copy() for x in ws]
        for _ in range(3):
            updater(list(range(5)), gs, w)
        results.append(w)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    assert [c for a, c in calls if a == 1][:5] == [[0], [1], [2], [3], [4]]
    assert [c for a, c in calls if a == 2][:3] == [[0, 2], [4], [1, 3]]
    assert [c for a, c in calls if a is np.inf][:1] == [[0, 1, 2, 3, 4]]
