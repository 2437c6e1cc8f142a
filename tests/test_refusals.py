"""Bad input at run time is refused with a clear error before anything changes.

Each case asserts the error type and message, and that weights, states and update
counts are bit-identical to what they were before the failed call.
"""
import copy
import io
import json
import math
import zipfile

import numpy as np
import pytest

import optforge
from optforge import lr_scheduler, optim

from support import copy_state, usable_wd


def _bits(x):
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return tuple(_bits(p) for p in x)
    if isinstance(x, dict):
        return {k: _bits(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, x.tobytes())
    return x


def _snapshot(opt, weights, states):
    """Everything a failed call must leave alone, as comparable values (arrays as bytes)."""
    return _bits({
        "weights": list(weights), "states": list(states),
        "counts": copy.deepcopy(opt._all_index_update_counts), "num_update": opt.num_update,
        "lr": opt.lr, "wd": opt.wd, "rescale_grad": opt.rescale_grad,
        "lr_mult": dict(opt.lr_mult), "wd_mult": dict(opt.wd_mult),
        "hyperparameters": opt.hyperparameters,
    })


def _stepped(name="adam", **kwargs):
    """An optimizer after two steps on two signed parameters."""
    rng = np.random.default_rng(3)
    opt = optforge.create(name, learning_rate=0.05, wd=0.01, rescale_grad=0.5, begin_num_update=2, **kwargs)
    weights = [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    for _ in range(2):
        opt.update([0, 1], weights, [(rng.standard_normal(w.shape) * 3).astype(np.float32) for w in weights],
                   states)
    return opt, weights, states


def _grads(weights, value=0.5):
    return [np.full(w.shape, value, w.dtype) for w in weights]


# -- base-class values ------------------------------------------------------------------
@pytest.mark.parametrize("attribute,value,message", [
    ("rescale_grad", float("nan"), "rescale_grad must be finite, got nan"),
    ("rescale_grad", float("-inf"), "rescale_grad must be finite, got -inf"),
    ("lr", float("nan"), "lr must be finite, got nan"),
    ("lr", -0.1, "lr must be >= 0.0, got -0.1"),
    ("lr", "0.1", "lr must be a number or None, got '0.1'"),
    ("lr", None, "lr may be None only while an lr_scheduler drives the learning rate"),
    ("multi_precision", "no", "multi_precision must be True or False, got 'no'"),
    ("use_fused_step", 1, "use_fused_step must be True or False, got 1"),
])
def test_setting_a_bad_base_value_changes_nothing(attribute, value, message):
    opt, weights, states = _stepped()
    before = _snapshot(opt, weights, states)
    with pytest.raises(ValueError, match=message):
        setattr(opt, attribute, value)
    assert _snapshot(opt, weights, states) == before
    opt.update([0, 1], weights, _grads(weights), states)   # still usable
    assert opt._index_update_count == {0: 5, 1: 5}


def test_rules_that_skip_bad_steps_still_accept_a_nonfinite_rescale_grad():
    # AdamW and AdaBelief skip a step whose rescale_grad is 0, NaN or inf (MXNet's loss scaling)
    for name in ("adamw", "adabelief"):
        optforge.create(name, rescale_grad=float("nan"))
    with pytest.raises(ValueError, match="rescale_grad must be finite"):
        optforge.create("adam", rescale_grad=float("nan"))


@pytest.mark.parametrize("method,table,error,message", [
    ("set_lr_mult", {0: float("nan")}, ValueError, "lr_mult of parameter 0 must be finite, got nan"),
    ("set_lr_mult", {"fc_weight": -2.0}, ValueError, "lr_mult of parameter 'fc_weight' must be >= 0.0, got -2.0"),
    ("set_lr_mult", {1: "2"}, ValueError, "lr_mult of parameter 1 must be a number, got '2'"),
    ("set_wd_mult", {0: -1}, ValueError, "wd_mult of parameter 0 must be >= 0.0, got -1"),
    ("set_wd_mult", {0: float("inf")}, ValueError, "wd_mult of parameter 0 must be finite, got inf"),
    ("set_wd_mult", {1.5: 1.0}, TypeError, "wd_mult keys must be parameter indices"),
    ("set_lr_mult", [(0, 1.0)], TypeError, "lr_mult must be a dict"),
])
def test_bad_multipliers_change_nothing(method, table, error, message):
    opt, weights, states = _stepped()
    opt.set_lr_mult({1: 0.5})
    opt.set_wd_mult({0: 2.0})
    before = _snapshot(opt, weights, states)
    with pytest.raises(error, match=message):
        getattr(opt, method)(table)
    assert _snapshot(opt, weights, states) == before
    assert opt.lr_mult == {1: 0.5} and opt.wd_mult == {0: 2.0}


def test_a_scheduler_or_param_dict_giving_a_bad_value_fails_before_counting():
    class Param:
        lr_mult = float("nan")

    for attribute, value, message in [
            ("lr_scheduler", lambda n: float("nan"), r"lr_scheduler\(5\) must be finite"),
            ("lr_scheduler", lambda n: -0.5, r"lr_scheduler\(5\) must be >= 0.0"),
            ("param_dict", {1: Param()}, r"param_dict\[1\].lr_mult must be finite")]:
        opt, weights, states = _stepped()
        setattr(opt, attribute, value)
        before = _snapshot(opt, weights, states)
        with pytest.raises(ValueError, match=message):
            opt.update([0, 1], weights, _grads(weights), states)
        assert _snapshot(opt, weights, states) == before


def test_multipliers_from_sym_are_checked():
    class Sym:
        def attr_dict(self):
            return {"w": {"__lr_mult__": "nan"}}

        def list_arguments(self):
            return ["w"]

    with pytest.raises(ValueError, match=r"lr_mult of 'w' \(sym\) must be finite, got nan"):
        optforge.create("sgd", sym=Sym())


def test_lr_scheduler_must_be_callable_at_construction():
    with pytest.raises(TypeError, match="lr_scheduler must be None or callable .* got 5"):
        optforge.create("sgd", lr_scheduler=5)
    optforge.create("sgd", lr_scheduler=lambda n: 0.1)   # any callable is a scheduler


def test_aggregate_num_zero_means_no_aggregation():
    # MXNet's Updater aggregates when aggregate_num > 1; its tests pass 0 in every grid
    calls = []
    opt = optforge.create("sgd", learning_rate=0.1, momentum=0.9, aggregate_num=0)
    assert opt.aggregate_num == 0
    original = opt.update_multi_precision
    opt.update_multi_precision = lambda *args: (calls.append(len(args[0])), original(*args))
    updater = optforge.get_updater(opt)
    assert not updater.aggregate_updates
    weights = [np.ones(3, np.float32), np.ones(2, np.float32)]
    updater([0, 1], _grads(weights), weights)
    assert calls == [1, 1]                               # one parameter per call
    reference = optforge.create("sgd", learning_rate=0.1, momentum=0.9, aggregate_num=1)
    expected = [np.ones(3, np.float32), np.ones(2, np.float32)]
    optforge.get_updater(reference)([0, 1], _grads(expected), expected)
    for a, b in zip(weights, expected):
        np.testing.assert_array_equal(a, b)


# -- arrays -----------------------------------------------------------------------------
def test_create_state_of_a_list_is_a_type_error():
    opt = optforge.create("adam")
    for method in (opt.create_state, opt.create_state_multi_precision):
        with pytest.raises(TypeError, match=r"weight of parameter 0: expected a numpy.ndarray or cupy.ndarray, "
                                            r"got builtins.list"):
            method(0, [1.0, 2.0])


def test_a_read_only_state_is_refused_before_counting():
    opt, weights, states = _stepped()
    states[1][0].flags.writeable = False
    before = _snapshot(opt, weights, states)
    with pytest.raises(ValueError, match="state 'mean' of parameter 1 is read-only; states are updated in place"):
        opt.update([0, 1], weights, _grads(weights), states)
    assert _snapshot(opt, weights, states) == before


def test_a_read_only_scalar_state_is_refused_before_counting():
    opt, weights, states = _stepped("nadam")       # (mean, var, m_schedule): a 0-d host state
    states[0][2].flags.writeable = False
    before = _snapshot(opt, weights, states)
    with pytest.raises(ValueError, match="state 'm_schedule' of parameter 0 is read-only"):
        opt.update([0, 1], weights, _grads(weights), states)
    assert _snapshot(opt, weights, states) == before


def _always_row_or_column_states(spec):
    """Row or column states that every weight has (GroupAdaGrad, SM3): a 0-d weight is refused."""
    return any(s["shape"] in ("rows", "cols") and not s["when"] for s in spec["states"])


@pytest.mark.parametrize("flavor,name", [k for k in sorted(optforge.runtime.registry.registered())
                                         if not _always_row_or_column_states(
                                             optforge.runtime.registry.lookup(k[1], k[0]).SPEC)
                                         and optforge.runtime.registry.lookup(k[1], k[0]).SPEC["requires"]
                                         not in ("ndim == 2", "ndim >= 1")])    # (Muon; Shampoo: test_shampoo.py)
def test_0d_weights_update_like_1_element_weights(flavor, name):
    """A 0-d weight is the 1-element weight's update, bit for bit (it used to fail in the
    kernel after the count had advanced)."""
    cls = optforge.runtime.registry.lookup(name, flavor)
    results = []
    for shape in ((), (1,)):
        opt = cls(learning_rate=0.1, wd=usable_wd(cls, 0.01), rescale_grad=0.5, begin_num_update=1)
        w = np.full(shape, 0.75, np.float32)
        state = opt.create_state(0, w)
        for g in (0.5, -2.5, 1.25):
            opt.update(0, w, np.full(shape, g, np.float32), state)
        assert w.shape == shape and opt._index_update_count == {0: 4}
        results.append(w.reshape(-1))
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("name, states", [("groupadagrad", ("history",)), ("sm3", ("acc_rows", "acc_cols"))])
def test_0d_weight_with_a_row_state_is_refused_before_counting(name, states):
    opt = optforge.create(name, learning_rate=0.1)
    with pytest.raises(ValueError, match=f"weight of parameter 0 is 0-d, but state '{states[0]}' keeps one value "
                                         "per row"):
        opt.create_state(0, np.array(1.0, np.float32))
    w = np.array(1.0, np.float32)
    state = tuple(np.zeros((), np.float32) for _ in states) if len(states) > 1 else np.zeros((), np.float32)
    with pytest.raises(ValueError, match=f"is 0-d, but state '{states[0]}'"):
        opt.update(0, w, np.array(0.5, np.float32), state)
    assert w == 1.0 and opt._index_update_count == {} and opt.num_update == 0
    assert all(part == 0 for part in (state if isinstance(state, tuple) else (state,)))


# -- the params-style API ---------------------------------------------------------------
def test_a_parameter_twice_in_one_group_is_refused():
    a, b = np.ones(3, np.float32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match="parameter 2 of the group appears twice in it"):
        optim.create("adam", [a, b, a])
    opt = optim.create("adam", [b])
    with pytest.raises(ValueError, match="parameter 1 of the group appears twice in it"):
        opt.add_param_group({"params": [a, a]})
    assert len(opt.param_groups) == 1 and len(opt._params) == 1


def _params_snapshot(opt, weights):
    return _bits({"weights": list(weights), "state": {k: copy_state(v) for k, v in opt.state.items()},
                  "counts": dict(opt._counts)})


@pytest.mark.parametrize("name,message", [("ftml", "float division by zero"),
                                          ("ftrl", "0.0 cannot be raised to a negative power")])
def test_a_step_over_several_groups_is_all_or_nothing(name, message):
    """FTML and FTRL divide by lr: lr = 0 in the second group fails while planning, before
    the first group's kernels run."""
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal(s).astype(np.float32) for s in ((3, 2), (4,), (2, 2))]
    opt = optim.create(name, [{"params": weights[:2]}, {"params": weights[2:], "lr": 0.05}], lr=0.1)
    grads = [(rng.standard_normal(w.shape) * 3).astype(np.float32) for w in weights]
    opt.step(grads)
    opt.param_groups[1]["lr"] = 0.0
    before = _params_snapshot(opt, weights)
    with pytest.raises(ValueError, match=f"cannot compute this step's scalars: {message}"):
        opt.step(grads)
    assert _params_snapshot(opt, weights) == before


def test_a_first_step_that_fails_creates_no_state():
    weights = [np.ones(3, np.float32), np.ones(2, np.float32)]
    opt = optim.create("ftml", [{"params": weights[:1]}, {"params": weights[1:], "lr": 0.0}], lr=0.1)
    with pytest.raises(ValueError, match="float division by zero"):
        opt.step(_grads(weights))
    assert opt.state == {} and opt._counts == {}
    np.testing.assert_array_equal(weights[0], 1.0)


def test_a_read_only_state_fails_no_group():
    weights = [np.ones(3, np.float32), np.ones(2, np.float32)]
    opt = optim.create("adam", [{"params": weights[:1]}, {"params": weights[1:]}], lr=0.1)
    opt.step(_grads(weights))
    opt.state[1][1].flags.writeable = False
    before = _params_snapshot(opt, weights)
    with pytest.raises(ValueError, match="state 'exp_avg_sq' of parameter 1 is read-only"):
        opt.step(_grads(weights))
    assert _params_snapshot(opt, weights) == before


def test_load_state_dict_of_another_optimizer_is_a_clear_error():
    a = np.ones(3, np.float32)
    adam = optim.create("adam", [a], lr=0.1)
    adam.step([np.full(3, 0.5, np.float32)])
    w = np.ones(3, np.float32)
    sgd = optim.create("sgd", [w], lr=0.1, momentum=0.9)
    sgd.step([np.full(3, 0.5, np.float32)])
    before = _params_snapshot(sgd, [w])
    groups = copy.deepcopy(sgd.param_groups)
    with pytest.raises(ValueError, match="parameter group 0 of the loaded state dict lacks 'momentum', "
                                         "'dampening', 'nesterov': SGD expects .* another optimizer"):
        sgd.load_state_dict(adam.state_dict())
    assert _params_snapshot(sgd, [w]) == before
    assert [{k: v for k, v in g.items() if k != "params"} for g in sgd.param_groups] == \
        [{k: v for k, v in g.items() if k != "params"} for g in groups]


@pytest.mark.parametrize("change,message", [
    (lambda sd: sd.pop("state"), "the loaded state dict lacks 'state'"),
    (lambda sd: sd["state"][0].update(step="2"), "step of parameter 0 must be an integer >= 0, got '2'"),
    (lambda sd: sd["state"][0].update(step=2.5), "step of parameter 0 must be an integer >= 0, got 2.5"),
    (lambda sd: sd["state"][0].update(step=-1), "step of parameter 0 must be an integer >= 0, got -1"),
    (lambda sd: sd["state"][0].update(exp_avg=np.zeros(4, np.float32)),
     r"state 'exp_avg' of parameter 0 has shape \(4,\), expected \(3,\)"),
    (lambda sd: sd["state"][0].update(exp_avg=np.array(["a", "b", "c"])), "has dtype <U1, not a number"),
    (lambda sd: sd["state"][0].update(mean=np.zeros(3, np.float32)),
     r"state of parameter 0 has keys \['exp_avg', 'exp_avg_sq', 'mean', 'step'\], Adam expects"),
    (lambda sd: sd["param_groups"][0].update(lr=float("nan")), "Invalid learning rate: lr must be finite"),
    (lambda sd: sd["param_groups"][0].update(params=0), "lists its parameters as int, not a list of ids"),
    (lambda sd: sd["param_groups"][0].update(params=[0, 1]), "has 2 parameters in the loaded state dict, 1 here"),
    (lambda sd: sd["state"].update({7: sd["state"][0]}), "a state for unknown parameter id 7"),
    (lambda sd: sd["param_groups"][0].update(betas=(0.9, 1.5)), r"Invalid betas\[1\] value"),
])
def test_load_state_dict_checks_what_it_reads(change, message):
    w = np.ones(3, np.float32)
    opt = optim.create("adam", [w], lr=0.1)
    opt.step([np.full(3, 0.5, np.float32)])
    saved = copy.deepcopy(opt.state_dict())
    change(saved)
    before = _params_snapshot(opt, [w])
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(saved)
    assert _params_snapshot(opt, [w]) == before


# -- set_states -----------------------------------------------------------------------------
def _updater():
    scheduler = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.05)
    updater = optforge.get_updater(optforge.create("adam", lr_scheduler=scheduler, wd=0.01))
    weights = [np.linspace(-1, 1, 6, dtype=np.float32), np.ones((2, 2), np.float32)]
    for g in (0.5, -1.5):
        updater([0, 1], _grads(weights, g), weights)
    return updater, weights


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _archive(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    return buffer.getvalue()


def _with_meta(data, change):
    members = _members(data)
    meta = json.loads(np.load(io.BytesIO(data))["meta"].tobytes().decode())
    change(meta)
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    members["meta.npy"] = buffer.getvalue()
    return _archive(members)


def _updater_snapshot(updater, weights):
    opt = updater.optimizer
    return (id(opt), _bits({"states": {k: copy_state(v) for k, v in updater.states.items()},
                            "weights": list(weights), "counts": copy.deepcopy(opt._all_index_update_counts),
                            "num_update": opt.num_update, "lr": opt.lr}))


def _counters(meta):
    return meta["optimizer"]["counters"]


@pytest.mark.parametrize("change,message", [
    (lambda m: _counters(m).update(lr=float("nan")), "saved lr must be finite, got nan"),
    (lambda m: _counters(m).update(num_update="4"), "saved num_update must be an integer >= 0, got '4'"),
    (lambda m: _counters(m)["counts"][0][1][0].__setitem__(2, "4"),
     "saved update count of parameter 0 must be an integer >= 0, got '4'"),
    (lambda m: _counters(m).pop("lr_mult"), "saved counters lacks 'lr_mult'"),
    (lambda m: _counters(m).update(wd_mult=[["int", 0, -1.0]]), "saved wd_mult of parameter 0 must be >= 0.0"),
    (lambda m: _counters(m).update(lr_mult={"0": 1.0}), "saved lr_mult must be a list"),
    (lambda m: _counters(m)["lr_scheduler"]["state"].update(base_lr=float("inf")),
     "saved lr_scheduler base_lr must be finite"),
    (lambda m: _counters(m)["lr_scheduler"].update(type="os.system"), "unknown lr_scheduler type 'os.system'"),
    (lambda m: m["optimizer"].pop("arguments"), "saved optimizer lacks 'arguments'"),
    (lambda m: m["optimizer"]["arguments"].update(beta1=float("nan")), "beta1 must be a number"),
    (lambda m: m["optimizer"]["arguments"].update(multi_precision="no"), "multi_precision must be True or False"),
    (lambda m: m["optimizer"]["arguments"].update(exec="x"), "saved optimizer arguments has unknown entries 'exec'"),
    (lambda m: m["optimizer"]["arguments"].update(sym=1), "saved optimizer arguments has unknown entries 'sym'"),
    (lambda m: m["optimizer"]["arguments"].update(aggregate_num="all"), "aggregate_num must be a number, got .all."),
    (lambda m: m["optimizer"].update(name="nosuch"), "nosuch"),
    (lambda m: m.pop("states"), "states file lacks 'states'"),
    (lambda m: m["states"][0].__setitem__(0, ["float", 0.5]), "a state's index must be"),
    (lambda m: m["states"][0][1]["tuple"][0].update(array="meta"), "names no array of the file"),
    (lambda m: m["states"][0][1]["tuple"][0].update(dtype="int64"), "has dtype 'int64'"),
    (lambda m: m["states"][0][1]["tuple"][0].update(dtype="float64"), "has dtype float32, expected float64"),
    (lambda m: m["states"][0].__setitem__(1, {"tuple": [{"tuple": [{"tuple": [{"tuple": [{"tuple": [
        {"tuple": []}]}]}]}]}]}), "a saved state must be null, an array or a tuple"),
])
def test_set_states_checks_the_saved_file(change, message):
    source, _ = _updater()
    data = _with_meta(source.get_states(dump_optimizer=True), change)
    updater, weights = _updater()
    before = _updater_snapshot(updater, weights)
    with pytest.raises(ValueError, match=message):
        updater.set_states(data)
    assert _updater_snapshot(updater, weights) == before


def test_set_states_reads_array_headers_before_allocating():
    """A member whose .npy header declares 10^12 float32 elements (3.6 TiB) holding 24 bytes is
    refused from its header; nothing is allocated and nothing changes."""
    source, _ = _updater()
    members = _members(source.get_states(dump_optimizer=True))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10 ** 12,)})
    members["a0.npy"] = header.getvalue() + b"\0" * 24
    updater, weights = _updater()
    before = _updater_snapshot(updater, weights)
    with pytest.raises(ValueError, match=r"member 'a0' declares shape \(1000000000000,\) of float32 "
                                         r"\(4000000000000 bytes\) but holds 24 bytes"):
        updater.set_states(_archive(members))
    assert _updater_snapshot(updater, weights) == before


def test_set_states_refuses_compressed_and_truncated_archives():
    source, _ = _updater()
    data = source.get_states()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, raw in _members(data).items():
            archive.writestr(name, raw)
    updater, weights = _updater()
    before = _updater_snapshot(updater, weights)
    with pytest.raises(ValueError, match="is compressed or larger than the file"):
        updater.set_states(buffer.getvalue())
    with pytest.raises(ValueError, match="not an optforge states file"):
        updater.set_states(data[: len(data) // 2])
    with pytest.raises(TypeError, match="states must be bytes"):
        updater.set_states("states")
    assert _updater_snapshot(updater, weights) == before


def test_saved_states_without_optimizer_are_checked_at_the_next_update():
    """States saved from float64 weights do not fit float32 weights: the update refuses them
    before counting (set_states cannot know the weights yet)."""
    other = optforge.get_updater(optforge.create("adam"))
    other([0, 1], [np.ones(6), np.ones((2, 2))], [np.ones(6), np.ones((2, 2))])
    updater, weights = _updater()
    updater.set_states(other.get_states())
    counts = copy.deepcopy(updater.optimizer._all_index_update_counts)
    before = _bits(list(weights))
    with pytest.raises(ValueError, match="state 'mean' of parameter 0 has dtype float64, expected float32"):
        updater([0, 1], _grads(weights), weights)
    assert _bits(list(weights)) == before and updater.optimizer._all_index_update_counts == counts
    assert math.isfinite(updater.optimizer.learning_rate)


# -- the Updater ------------------------------------------------------------------------------
def _updater_state(updater, weights):
    opt = updater.optimizer
    return _bits({"weights": list(weights), "states": {k: copy_state(v) for k, v in updater.states.items()},
                  "synced": dict(updater.states_synced), "counts": copy.deepcopy(opt._all_index_update_counts),
                  "num_update": opt.num_update})


@pytest.mark.parametrize("aggregate_num", [1, 2, np.inf])
def test_an_updater_call_is_all_or_nothing(aggregate_num):
    """FTML divides by lr: parameter 3's lr_mult of 0 fails while planning, before parameters
    0-2 (in earlier groups or earlier in the same group) change."""
    rng = np.random.default_rng(4)
    dtypes = [np.float32, np.float64, np.float32, np.float64]
    weights = [rng.standard_normal(3).astype(d) for d in dtypes]
    grads = [(rng.standard_normal(3) * 3).astype(d) for d in dtypes]
    updater = optforge.get_updater(optforge.create("ftml", learning_rate=0.1, aggregate_num=aggregate_num))
    updater([0, 1, 2], grads[:3], weights[:3])        # parameter 3 gets its state in the failing call
    updater.optimizer.set_lr_mult({3: 0.0})
    before = _updater_state(updater, weights)
    with pytest.raises(ValueError, match="FTML: cannot compute this step's scalars: float division by zero"):
        updater([0, 1, 2, 3], grads, weights)
    assert _updater_state(updater, weights) == before
    assert 3 not in updater.states


def test_an_updater_call_naming_a_parameter_twice_is_refused():
    updater = optforge.get_updater(optforge.create("sgd", momentum=0.9))
    w = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="parameter index 0 appears twice in one updater call"):
        updater([0, 0], _grads([w, w]), [w, w])
    assert updater.states == {} and updater.optimizer._index_update_count == {}
    np.testing.assert_array_equal(w, 1.0)


def test_an_overridden_update_multi_precision_is_still_what_the_updater_calls():
    """MXNet users customise update_multi_precision in a subclass: the Updater calls it."""
    calls = []

    class Logged(optforge.SGD):
        def update_multi_precision(self, indices, weights, grads, states):
            calls.append(list(indices))
            super().update_multi_precision(indices, weights, grads, states)

    weights = [np.ones(3, np.float32), np.ones(2, np.float32)]
    optforge.get_updater(Logged(learning_rate=0.1))([0, 1], _grads(weights), weights)
    assert calls == [[0], [1]]
    np.testing.assert_array_equal(weights[0], np.float32(1) - np.float32(0.1) * np.float32(0.5))
