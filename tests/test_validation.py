"""Invalid hyperparameters raise ValueError naming the rule; bad arrays raise before anything changes."""
import numpy as np
import pytest

import optforge


@pytest.mark.parametrize("name,kwargs,message", [
    ("adam", dict(beta1=1.0), r"beta1 must be in \[0, 1\), got 1.0"),
    ("adam", dict(beta2=-0.1), r"beta2 must be in \[0, 1\), got -0.1"),
    ("adam", dict(epsilon=-1e-8), r"epsilon must be in \[0, inf\), got -1e-08"),
    ("adam", dict(beta1="0.9"), r"beta1 must be a number in \[0, 1\), got '0.9'"),
    ("adam", dict(beta1=float("nan")), "beta1 must be a number"),
    ("sgd", dict(momentum=1.5), r"momentum must be in \[0, 1\], got 1.5"),
    ("rmsprop", dict(centered="yes"), "centered must be True or False, got 'yes'"),
    ("rmsprop", dict(clip_weights=-1.0), r"clip_weights must be in \[0, inf\)"),
    ("sgld", dict(seed=1.5), "seed must be an integer"),
    ("sgld", dict(seed=-1), r"seed must be in \[0, inf\)"),
    ("adamw", dict(correct_bias=None), "correct_bias must not be None"),
    ("adam", dict(learning_rate=-0.1), "learning_rate must be >= 0"),
    ("adam", dict(wd=-0.01), "wd must be >= 0"),
    ("adam", dict(wd=float("inf")), "wd must be finite"),
    ("adam", dict(clip_gradient=-1.0), "clip_gradient must be >= 0 or None"),
    ("adam", dict(begin_num_update=-1), "begin_num_update must be >= 0"),
    ("adam", dict(begin_num_update=1.5), "begin_num_update must be an integer"),
    ("adam", dict(aggregate_num=-1), "aggregate_num must be an integer >= 0 or numpy.inf"),
    ("adam", dict(aggregate_num=2.5), "aggregate_num must be an integer"),
    ("adam", dict(rescale_grad=float("nan")), "rescale_grad must be finite, got nan"),
    ("sgd", dict(rescale_grad=float("inf")), "rescale_grad must be finite, got inf"),
    ("adam", dict(multi_precision="no"), "multi_precision must be True or False, got 'no'"),
    ("adam", dict(multi_precision=1), "multi_precision must be True or False, got 1"),
    ("adam", dict(use_fused_step="yes"), "use_fused_step must be True or False, got 'yes'"),
    ("adam", dict(rescale_grad="x"), "rescale_grad must be a number"),
])
def test_invalid_values(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        optforge.create(name, **kwargs)


def test_setting_an_invalid_value_changes_nothing():
    opt = optforge.create("adam", beta1=0.8, wd=0.1)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\)"):
        opt.beta1 = 1.2
    with pytest.raises(ValueError, match="wd must be >= 0"):
        opt.wd = -1
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        opt.set_learning_rate(-3)
    assert (opt.beta1, opt.wd, opt.lr) == (0.8, 0.1, 0.001)


def test_values_are_normalised():
    opt = optforge.create("adam", beta1=np.float32(0.5), learning_rate=np.float64(0.1))
    assert type(opt.beta1) is float and type(opt.lr) is float


def _setup(name="adam", **kw):
    opt = optforge.create(name, learning_rate=0.1, **kw)
    ws = [np.ones((2, 3), np.float32), np.ones(4, np.float32)]
    states = [opt.create_state(i, w) for i, w in enumerate(ws)]
    return opt, ws, states


def _snapshot(opt, ws, states):
    flat = []
    for s in states:
        flat += [x.copy() for x in (s if isinstance(s, tuple) else (s,) if s is not None else ())]
    return [w.copy() for w in ws], flat, dict(opt._index_update_count), opt.num_update


def _assert_unchanged(before, after):
    for a, b in zip(before[0] + before[1], after[0] + after[1]):
        np.testing.assert_array_equal(a, b)
    assert before[2:] == after[2:]


@pytest.mark.parametrize("bad_grad,error,message", [
    (np.ones((3, 2), np.float32), ValueError, r"gradient of parameter 1 has shape \(3, 2\)"),
    (np.ones(4, np.float64), ValueError, "gradient of parameter 1 has dtype float64"),
    ([1.0, 1.0, 1.0, 1.0], TypeError, "gradient of parameter 1: expected a numpy.ndarray"),
])
def test_bad_second_gradient_changes_nothing(bad_grad, error, message):
    opt, ws, states = _setup()
    before = _snapshot(opt, ws, states)
    with pytest.raises(error, match=message):
        opt.update([0, 1], ws, [np.ones((2, 3), np.float32), bad_grad], states)
    _assert_unchanged(before, _snapshot(opt, ws, states))


def test_bad_state_changes_nothing():
    opt, ws, states = _setup()
    before = _snapshot(opt, ws, states)
    wrong = (states[1][0], np.ones(5, np.float32))
    with pytest.raises(ValueError, match=r"state 'var' of parameter 1 has shape \(5,\), expected \(4,\)"):
        opt.update([0, 1], ws, [np.ones_like(w) for w in ws], [states[0], wrong])
    with pytest.raises(ValueError, match=r"does not match Adam's state layout \(mean, var\)"):
        opt.update([0, 1], ws, [np.ones_like(w) for w in ws], [states[0], None])
    with pytest.raises(ValueError, match="state 'mean' of parameter 1 has dtype float64"):
        opt.update([0, 1], ws, [np.ones_like(w) for w in ws],
                   [states[0], (states[1][0].astype(np.float64), states[1][1])])
    _assert_unchanged(before, _snapshot(opt, ws, states))


def test_state_made_for_other_hyperparameters_is_rejected():
    opt = optforge.create("sgd", momentum=0.0)
    w = np.ones(3, np.float32)
    state = opt.create_state(0, w)
    assert state is None
    opt.momentum = 0.9
    with pytest.raises(ValueError, match="state layout mom for these hyperparameters"):
        opt.update(0, w, np.ones_like(w), state)


def test_mismatched_list_lengths_and_repeated_indices():
    opt, ws, states = _setup()
    with pytest.raises(ValueError, match="as many weights, gradients and states as indices"):
        opt.update([0, 1], ws, ws[:1], states)
    with pytest.raises(ValueError, match="appears twice"):
        opt.update([0, 0], [ws[0], ws[0]], [ws[0], ws[0]], [states[0], states[0]])


def test_read_only_weight_and_integer_weights():
    opt = optforge.create("sgd")
    w = np.ones(3, np.float32)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.update(0, w, np.ones(3, np.float32), None)
    with pytest.raises(ValueError, match="has dtype int64; supported"):
        opt.update(0, np.ones(3, np.int64), np.ones(3, np.int64), None)


def test_host_math_failure_raises_before_anything_changes():
    opt = optforge.create("ftml", learning_rate=0.0)    # FTML divides by lr
    w = np.ones(3, np.float32)
    state = opt.create_state(0, w)
    with pytest.raises(ValueError, match="FTML: cannot compute this step's scalars"):
        opt.update(0, w, np.ones(3, np.float32), state)
    np.testing.assert_array_equal(w, 1)
    assert opt._index_update_count == {} and opt.num_update == 0


NOT_FINITE = [float("inf"), -float("inf"), float("nan"), np.float32("inf")]


@pytest.mark.parametrize("value", NOT_FINITE, ids=repr)
def test_muon_ns_coefficients_must_be_finite_in_the_mxnet_and_params_styles(value):
    """torch.optim.Muon takes any ns_coefficients; an infinite one made every weight nan."""
    with pytest.raises(ValueError, match="ns_b must be"):
        optforge.create("muon", flavor="torch", ns_b=value)
    opt = optforge.create("muon", flavor="torch")
    with pytest.raises(ValueError, match="ns_c must be"):
        opt.ns_c = value
    assert opt.ns_c == 2.0315
    weight = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"ns_coefficients\[1\]"):
        optforge.optim.Muon([weight], ns_coefficients=(3.4445, value, 2.0315))
    params = optforge.optim.Muon([weight])
    good = params.state_dict()
    params.param_groups[0]["ns_coefficients"] = (value, -4.775, 2.0315)
    with pytest.raises(ValueError, match=r"ns_coefficients\[0\]"):
        params.step([np.ones_like(weight)])
    assert (weight == 1).all() and params.state == {}
    with pytest.raises(ValueError, match=r"ns_coefficients\[2\]"):
        params.add_param_group({"params": [np.ones((2, 2), np.float32)], "ns_coefficients": (1.0, 1.0, value)})
    saved = optforge.optim.Muon([weight]).state_dict()
    saved["param_groups"][0]["ns_coefficients"] = (value, 1.0, 1.0)
    fresh = optforge.optim.Muon([weight])
    with pytest.raises(ValueError, match=r"ns_coefficients\[0\]"):
        fresh.load_state_dict(saved)
    assert fresh.state_dict() == good


@pytest.mark.parametrize("value", NOT_FINITE, ids=repr)
def test_muon_ns_coefficients_must_be_finite_in_optforge_torch(value):
    torch = pytest.importorskip("torch")
    import optforge.torch as otorch
    param = torch.nn.Parameter(torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"ns_coefficients\[2\]"):
        otorch.Muon([param], ns_coefficients=(1.0, 1.0, value))
    opt = otorch.Muon([param])
    param.grad = torch.ones(4, 3)
    opt.param_groups[0]["ns_coefficients"] = (value, -4.775, 2.0315)
    with pytest.raises(ValueError, match=r"ns_coefficients\[0\]"):
        opt.step()
    assert (param.detach() == 1).all() and not opt.state
    with pytest.raises(ValueError, match=r"ns_coefficients\[0\]"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, 2))], "ns_coefficients": (value, 1.0, 1.0)})
    saved = otorch.Muon([param]).state_dict()
    saved["param_groups"][0]["ns_coefficients"] = (1.0, value, 1.0)
    with pytest.raises(ValueError, match=r"ns_coefficients\[1\]"):
        otorch.Muon([param]).load_state_dict(saved)


def test_a_number_without_a_range_must_be_finite(tmp_path, monkeypatch):
    # infinity is admitted by a range closed at inf only, never by the absence of a range
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "scaled.toml"
    path.write_text('name = "Scaled"\nupdate = "weight = weight - lr * scale * grad"\n'
                    '[hyperparameters]\nscale = 1.0\n', encoding="utf-8")
    cls = optforge.load_spec(path, register=False)
    with pytest.raises(ValueError, match="scale must be finite, got inf"):
        cls(scale=float("inf"))
    opt = cls(scale=-2.5)
    with pytest.raises(ValueError, match="scale must be finite, got -inf"):
        opt.scale = -float("inf")
    assert opt.scale == -2.5


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, object, np.complex64],
                         ids=lambda d: np.dtype(d).name)
def test_weights_of_other_dtypes_are_refused_by_name_before_anything_changes(dtype):
    """create_state failed inside NumPy ("data type ... not inexact") or made complex states;
    every entry point names the dtype and the supported ones."""
    message = rf"weight of parameter 0 has dtype {np.dtype(dtype).name}; supported: float16, bfloat16, float32, float64"
    for name in ("adam", "sgd", "lamb", "sgld"):
        opt = optforge.create(name, learning_rate=0.1)
        weight, grad = np.ones(4, dtype), np.ones(4, dtype)
        with pytest.raises(ValueError, match=message):
            opt.create_state(0, weight)
        with pytest.raises(ValueError, match=message):
            opt.create_state_multi_precision(0, weight)
        state = opt.create_state(0, np.ones(4, np.float32))
        for fused in (True, False):
            opt.use_fused_step = fused
            with pytest.raises(ValueError, match=message):
                opt.update(0, weight, grad, state)
            with pytest.raises(ValueError, match=message):
                opt.update_multi_precision(0, weight, grad, state)
        updater = optforge.get_updater(opt)
        with pytest.raises(ValueError, match=message):
            updater(0, grad, weight)
        assert (weight == np.ones(4, dtype)).all() and opt._index_update_count == {} and updater.states == {}
