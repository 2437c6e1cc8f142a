"""Base-class semantics of MXNet (reference section 1): multipliers, counts, learning rate,
the update protocol and multi-precision."""
import warnings

import numpy as np
import pytest

import optforge
from optforge import lr_scheduler


class _Param:
    def __init__(self, lr_mult=1.0, wd_mult=1.0):
        self.lr_mult, self.wd_mult = lr_mult, wd_mult


class _Sym:
    def attr_dict(self):
        return {"fc_weight": {"__lr_mult__": "0.5"}, "fc_bias": {"__wd_mult__": "0"}}

    def list_arguments(self):
        return ["data", "fc_weight", "fc_bias"]


def test_multiplier_lookup_order():
    opt = optforge.create("sgd", learning_rate=1.0, wd=1.0, param_idx2name={0: "a", 1: "b", 2: "c"},
                          param_dict={0: _Param(lr_mult=3.0, wd_mult=4.0)})
    opt.set_lr_mult({0: 10.0, 1: 20.0, "c": 30.0})
    opt.set_wd_mult({"b": 0.5})
    assert opt._get_lrs([0, 1, 2, 3]) == [3.0, 20.0, 30.0, 1.0]   # param_dict, index, name, default
    assert opt._get_wds([0, 1, 2]) == [4.0, 0.5, 1.0]


def test_set_lr_mult_rebuilds_from_scratch_with_symbol_attributes():
    opt = optforge.create("sgd", sym=_Sym())
    assert opt.lr_mult == {"fc_weight": 0.5} and opt.wd_mult == {"fc_bias": 0.0}
    opt.set_lr_mult({"x": 2.0})
    assert opt.lr_mult == {"fc_weight": 0.5, "x": 2.0}
    opt.set_lr_mult({})
    assert opt.lr_mult == {"fc_weight": 0.5}


def test_mxnet2_does_not_zero_wd_for_biases():
    opt = optforge.create("sgd", wd=0.1, param_idx2name={0: "fc_bias"})
    assert opt.wd_mult == {} and opt._get_wd(0) == 0.1


def test_update_counts_and_begin_num_update():
    opt = optforge.create("sgd", begin_num_update=10)
    w, g = np.ones(2, np.float32), np.ones(2, np.float32)
    opt.update(0, w, g, None)
    assert opt._index_update_count[0] == 11 and opt.num_update == 11
    opt.update([0, 1], [w, w.copy()], [g, g], [None, None])
    assert opt._index_update_count == {0: 12, 1: 11} and opt.num_update == 12


def test_counts_are_per_device():
    opt = optforge.create("sgd")
    opt._update_count(0)
    opt._set_current_device(1)
    opt._update_count(0)
    opt._update_count(0)
    opt._set_current_context(0)
    assert opt._index_update_count == {0: 1}
    assert opt._all_index_update_counts[1] == {0: 2} and opt.num_update == 2


def test_scheduler_drives_the_learning_rate():
    sched = lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    opt = optforge.create("sgd", lr_scheduler=sched)
    assert sched.base_lr == 1.0                       # the class default does not overwrite it
    w, g = np.zeros(1, np.float32), np.ones(1, np.float32)
    opt.update(0, w, g, None)                         # t = 1: lr(1) = 1
    opt.update(0, w, g, None)                         # t = 2: lr(2) = 0.5
    np.testing.assert_allclose(w, [-1.5])
    assert opt.learning_rate == 0.5
    with pytest.raises(UserWarning, match="LRScheduler of the optimizer has already been defined"):
        opt.set_learning_rate(0.1)


def test_explicit_learning_rate_replaces_the_schedulers_base_lr():
    sched = lr_scheduler.FactorScheduler(step=10, base_lr=1.0)
    with pytest.warns(UserWarning, match="overwritten"):
        opt = optforge.create("sgd", learning_rate=0.3, lr_scheduler=sched)
    assert sched.base_lr == 0.3 and opt.learning_rate == 0.3


def test_default_learning_rates():
    assert optforge.create("adam").learning_rate == 0.001
    assert optforge.Optimizer().learning_rate == 0.01


def test_scalar_index_form_equals_list_form():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5).astype(np.float32)
    g = rng.standard_normal(5).astype(np.float32)
    a, b = w0.copy(), w0.copy()
    opt_a, opt_b = optforge.create("adam"), optforge.create("adam")
    sa, sb = opt_a.create_state(0, a), opt_b.create_state(0, b)
    opt_a.update(0, a, g, sa)
    opt_b.update([0], [b], [g], [sb])
    np.testing.assert_array_equal(a, b)


def test_step_and_fused_step_agree_on_the_cpu():
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(50).astype(np.float32)
    g = rng.standard_normal(50).astype(np.float32)
    out = []
    for fused in (False, True):
        opt = optforge.create("rmsprop", centered=True, use_fused_step=fused)
        w = w0.copy()
        s = opt.create_state(0, w)
        for _ in range(3):
            opt.update(0, w, g, s)
        out.append(w)
    np.testing.assert_array_equal(out[0], out[1])


def test_float16_without_multi_precision_warns_and_keeps_dtype():
    opt = optforge.create("adam")
    w = np.ones(4, np.float16)
    with pytest.warns(UserWarning, match="Accumulating with float16"):
        state = opt.create_state_multi_precision(0, w)
    assert state[0].dtype == np.float16
    opt.update_multi_precision(0, w, np.ones(4, np.float16), state)
    assert w.dtype == np.float16


def test_multi_precision_keeps_a_float32_master_copy():
    rng = np.random.default_rng(2)
    w32 = rng.standard_normal(8).astype(np.float32)
    w16 = w32.astype(np.float16)
    opt = optforge.create("sgd", learning_rate=0.1, momentum=0.9, multi_precision=True)
    state = opt.create_state_multi_precision(0, w16)
    master, mom = state
    assert master.dtype == np.float32 and mom.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            g16 = rng.standard_normal(8).astype(np.float16)
            opt.update_multi_precision(0, w16, g16, state)
    np.testing.assert_array_equal(w16, master.astype(np.float16))


def test_grads_are_never_modified():
    for name in ("sgd", "adam", "ftrl", "signum"):
        opt = optforge.create(name, wd=0.1, rescale_grad=2.0, clip_gradient=0.5)
        w = np.linspace(-1, 1, 6).astype(np.float32)
        g = np.linspace(3, -3, 6).astype(np.float32)
        g0 = g.copy()
        opt.update(0, w, g, opt.create_state(0, w))
        np.testing.assert_array_equal(g, g0)


def test_clip_gradient_zero_zeroes_the_gradient():
    opt = optforge.create("sgd", learning_rate=1.0, clip_gradient=0.0)
    w = np.ones(3, np.float32)
    opt.update(0, w, np.full(3, 5, np.float32), None)
    np.testing.assert_array_equal(w, 1)


@pytest.mark.parametrize("name,hp", [("adam", {}), ("sgd", {"momentum": 0.9}), ("rmsprop", {"centered": True}),
                                     ("nadam", {}), ("ftrl", {}), ("lamb", {})])
def test_blocked_cpu_fused_step_is_bitwise_the_step(name, hp):
    """Large tensors run block by block on every core in fused_step: same bits as step."""
    from optforge.runtime.backends import cpu
    rng = np.random.default_rng(5)
    n = 4 * cpu.BLOCK + 123                        # several blocks and a ragged tail
    w0 = rng.standard_normal((n // 3, 3)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]
    out = []
    for fused in (False, True):
        opt = optforge.create(name, use_fused_step=fused, wd=0.01, clip_gradient=1.0, **hp)
        w = w0.copy()
        state = opt.create_state(0, w)
        for g in grads:
            opt.update(0, w, g, state)
        out.append((w, state))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1], out[1][1]):
        np.testing.assert_array_equal(a, b)
