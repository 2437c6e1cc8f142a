"""Multi-precision: float16/bfloat16 weights keep a float32 master copy and float32 states;
every step is a float32 step whose result is rounded into the weight."""
import warnings

import numpy as np
import pytest

import optforge

ml_dtypes = pytest.importorskip("ml_dtypes")

CASES = [("adam", {}), ("sgd", {"momentum": 0.9}), ("nag", {}), ("lamb", {}), ("lans", {}),
         ("lars", {"momentum": 0.9}), ("rmsprop", {"centered": True}), ("nadam", {}), ("ftml", {}),
         ("adagrad", {}), ("signum", {})]
LOW = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


@pytest.mark.parametrize("low", sorted(LOW))
@pytest.mark.parametrize("name,hp", CASES, ids=[n for n, _ in CASES])
def test_master_copy_equals_a_float32_run_rounded_each_step(name, hp, low):
    dtype = LOW[low]
    rng = np.random.default_rng(11)
    shapes = [(4, 5), (9,)]
    w32 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    low_w = [w.astype(dtype) for w in w32]
    plain_w = [w.astype(dtype).astype(np.float32) for w in w32]   # the master starts from the weights
    mp = optforge.create(name, learning_rate=0.05, wd=0.01, rescale_grad=0.5, multi_precision=True, **hp)
    plain = optforge.create(name, learning_rate=0.05, wd=0.01, rescale_grad=0.5, **hp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # no float16 warning with mp
        mp_states = [mp.create_state_multi_precision(i, w) for i, w in enumerate(low_w)]
    plain_states = [plain.create_state(i, w) for i, w in enumerate(plain_w)]
    for (master, inner), w in zip(mp_states, low_w):
        assert master.dtype == np.float32 and master.shape == w.shape
        for part in (inner if isinstance(inner, tuple) else (inner,) if inner is not None else ()):
            assert part.dtype in (np.float32, np.float64)
    for step in range(5):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        mp.update_multi_precision([0, 1], low_w, grads, mp_states)
        plain.update([0, 1], plain_w, [g.astype(np.float32) for g in grads], plain_states)
        for i in range(2):
            np.testing.assert_array_equal(mp_states[i][0], plain_w[i])
            np.testing.assert_array_equal(low_w[i].astype(np.float32),
                                          plain_w[i].astype(dtype).astype(np.float32))
            assert low_w[i].dtype == dtype


@pytest.mark.parametrize("name", ["sgd", "nag", "lars"])
def test_mxnet1_multi_precision_state_is_weight32_first_as_documented(name):
    """MXNet 1.x's SGD, NAG and LARS stored (mom, weight32); optforge keeps MXNet 2.0's
    (weight32, mom) for every flavor, and each spec says so."""
    opt = optforge.create(name, flavor="mxnet1", momentum=0.9, multi_precision=True)
    master, inner = opt.create_state_multi_precision(0, np.full(3, 0.5, np.float16))
    mom = inner[0] if isinstance(inner, tuple) else inner       # 1.x LARS also keeps last_lr
    assert master.dtype == np.float32 and mom.dtype == np.float32 and mom.shape == (3,)
    np.testing.assert_array_equal(master, 0.5)
    np.testing.assert_array_equal(mom, 0.0)
    assert any("(mom, weight32)" in d for d in opt.SPEC["deviations"])


@pytest.mark.parametrize("flavor", ["mxnet2", "mxnet1"])
def test_lamb_master_copy_deviation_is_documented(flavor):
    # the master copy advancing every step is what test_master_copy_equals_a_float32_run... checks
    opt = optforge.create("lamb", flavor=flavor)
    assert any("MPLambUpdatePhaseTwoKernel" in d for d in opt.SPEC["deviations"])
    assert "MPLambUpdatePhaseTwoKernel" in type(opt).__doc__


def test_float16_without_multi_precision_warns():
    opt = optforge.create("adam")
    with pytest.warns(UserWarning, match="Accumulating with float16 in optimizer can lead to poor accuracy"):
        opt.create_state_multi_precision(0, np.ones(3, np.float16))


def test_multi_precision_leaves_float32_weights_alone():
    opt = optforge.create("adam", multi_precision=True)
    state = opt.create_state_multi_precision(0, np.ones(3, np.float32))
    assert isinstance(state, tuple) and len(state) == 2 and state[0].dtype == np.float32
    assert state[0].shape == (3,) and state[1].shape == (3,)      # (mean, var), no master copy


def test_multi_precision_rejects_a_plain_state():
    opt = optforge.create("sgd", momentum=0.9, multi_precision=True)
    w = np.ones(3, np.float16)
    with pytest.raises(ValueError, match="not a multi-precision state"):
        opt.update_multi_precision(0, w, np.ones(3, np.float16), np.zeros(3, np.float32))


def test_bfloat16_states_round_trip():
    opt = optforge.create("adam")
    updater = optforge.get_updater(opt)
    w = np.ones(4, ml_dtypes.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        updater(0, np.ones(4, ml_dtypes.bfloat16), w)
    loaded = optforge.get_updater(optforge.create("adam"))
    loaded.set_states(updater.get_states())
    for a, b in zip(loaded.states[0], updater.states[0]):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
