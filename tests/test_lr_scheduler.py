"""Schedulers reproduce every value listed in reference section 5 (MXNet's own tests)."""
import math

import numpy as np
import pytest

import optforge
from optforge import lr_scheduler as ls


def test_factor_scheduler_with_constant_warmup():
    s = ls.FactorScheduler(step=100, factor=0.1, stop_factor_lr=1e-4, base_lr=1, warmup_steps=20,
                           warmup_begin_lr=0.1, warmup_mode="constant")
    for n, lr in [(0, 0.1), (10, 0.1), (21, 1), (101, 0.1), (201, 0.01), (1000, 1e-4)]:
        assert math.isclose(s(n), lr, rel_tol=1e-12), n


def test_factor_scheduler_first_decay_at_step_plus_one():
    s = ls.FactorScheduler(step=10, factor=0.5, base_lr=1)
    assert [s(10), s(11), s(21)] == [1, 0.5, 0.25]


def test_multifactor_scheduler_with_linear_warmup():
    s = ls.MultiFactorScheduler(step=[15, 25], factor=0.1, base_lr=0.1, warmup_steps=10,
                                warmup_begin_lr=0.05, warmup_mode="linear")
    for n, lr in [(0, 0.05), (5, 0.075), (15, 0.1), (16, 0.01), (20, 0.01), (26, 0.001), (100, 0.001)]:
        assert math.isclose(s(n), lr, rel_tol=1e-12), n


def test_multifactor_strict_boundaries():
    s = ls.MultiFactorScheduler(step=[5, 8], factor=0.1, base_lr=1)
    assert s(5) == 1 and math.isclose(s(6), 0.1) and math.isclose(s(9), 0.01)


def test_poly_scheduler():
    s = ls.PolyScheduler(max_update=1000, base_lr=3, pwr=2, final_lr=0, warmup_steps=100,
                         warmup_begin_lr=0, warmup_mode="linear")
    assert s(0) == 0 and math.isclose(s(50), 1.5) and s(100) == 3
    assert s(101) < 3 and s(500) < 1.6 and s(1000) == 0


def test_cosine_scheduler():
    s = ls.CosineScheduler(max_update=1000, base_lr=3, final_lr=0.1)
    assert s(0) == 3 and math.isclose(s(1000), 0.1) and s(500) > 1.5


def test_poly_keeps_the_last_value_after_max_update():
    s = ls.PolyScheduler(max_update=10, base_lr=1, pwr=1)
    s(8)
    assert math.isclose(s(11), 0.2) and math.isclose(s(12), 0.2)


def test_optimizer_learning_rate_replaces_only_base_lr():
    poly = ls.PolyScheduler(max_update=10, base_lr=2, pwr=1)
    with pytest.warns(UserWarning):
        optforge.create("sgd", learning_rate=4, lr_scheduler=poly)
    assert poly(0) == 2 and poly(5) == 1          # decays from the original base_lr
    factor = ls.FactorScheduler(step=100, base_lr=1, warmup_steps=4)
    with pytest.warns(UserWarning):
        optforge.create("sgd", learning_rate=4, lr_scheduler=factor)
    assert [factor(0), factor(2), factor(5)] == [0, 0.5, 4]   # warmup to 1, then 4


def test_first_optimizer_step_sees_begin_num_update_plus_one():
    seen = []

    def schedule(n):
        seen.append(n)
        return 0.1
    opt = optforge.create("sgd", lr_scheduler=schedule, begin_num_update=7)
    opt.update(0, np.ones(2), np.ones(2), None)
    assert seen == [8]


@pytest.mark.parametrize("make,message", [
    (lambda: ls.FactorScheduler(step=0), "Schedule step must be greater or equal than 1"),
    (lambda: ls.FactorScheduler(step=5, factor=1.5), "Factor must be no more than 1"),
    (lambda: ls.MultiFactorScheduler(step=[5, 5]), "increasing integer list"),
    (lambda: ls.MultiFactorScheduler(step=[0, 5]), "greater or equal than 1"),
    (lambda: ls.LRScheduler(base_lr=0.1, warmup_begin_lr=0.2), "Base lr has to be higher than warmup_begin_lr"),
    (lambda: ls.LRScheduler(warmup_steps=-1), "Warmup steps has to be positive or 0"),
    (lambda: ls.LRScheduler(warmup_steps=2.5), "warmup_steps must be an int"),
    (lambda: ls.LRScheduler(warmup_mode="cubic"), "Supports only linear and constant modes"),
    (lambda: ls.PolyScheduler(max_update=0), "maximum number of updates must be strictly positive"),
    (lambda: ls.CosineScheduler(max_update=10, warmup_steps=10), "must be greater than warmup_steps"),
])
def test_invalid_schedulers(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_scheduler_state_round_trips():
    s = ls.MultiFactorScheduler(step=[2, 4], factor=0.5, base_lr=1)
    for n in range(1, 4):
        s(n)
    copy = ls.LRScheduler.from_config(s.config())
    assert [copy(n) for n in range(4, 7)] == [s(n) for n in range(4, 7)]
