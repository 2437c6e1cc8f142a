"""The kept native launch (runtime/engine/kept.py) against the full path.

Two optimizers made alike step the same arrays: one may keep its launch, the other never
does (its engine's `kept.keep` is switched off, so every update runs the full path: checks, a
plan per parameter, a table built anew). Weights, states and update counts must be equal
bit for bit after every step: both run the same native kernels on the same float32/float64
inputs, so any difference is a wrong pointer, size or scalar in the kept table. The
kept launch is built after the second update of the same arrays and serves from the
third on; `uses` counts the updates it served, so each test also states whether the
change it makes was served by the kept table or sent to the full path.

Native kernels need a C++ compiler; without one these tests skip (the full path then
runs the NumPy code and nothing is kept).
"""
import numpy as np
import pytest

import optforge
from optforge import lr_scheduler
from optforge.runtime import sparse
from optforge.runtime.backends import native
from optforge.runtime.engine import kept as kept_launch

SHAPES = [(300,), (4, 70), (70000,), (5,)]      # one tensor over a 65536-element chunk
CASES = [("adam", "torch", {}), ("adamw", "torch", {}), ("sgd", "torch", {"momentum": 0.9}),
         ("adagrad", "torch", {}), ("rmsprop", "torch", {"momentum": 0.5}), ("nadam", "torch", {}),
         ("adamax", "torch", {}), ("adadelta", "torch", {}), ("radam", "torch", {}), ("adam", "mxnet2", {})]
ARGS = dict(learning_rate=0.01, wd=0.1, rescale_grad=0.5, clip_gradient=1.0, begin_num_update=5)


@pytest.fixture(autouse=True)
def native_backend():
    if native.backend() != "native":
        pytest.skip("no C++ compiler: the native kernels (and kept launches) do not run")


def make(name, flavor, hyper, **extra):
    kept = optforge.create(name, flavor=flavor, **dict(ARGS, **hyper, **extra))
    full = optforge.create(name, flavor=flavor, **dict(ARGS, **hyper, **extra))
    full.engine.kept.keep = lambda *args: None      # every update on the full path
    return kept, full


def arrays(seed, shapes=SHAPES, dtype=np.float32, scale=3.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]   # signed, beyond the clip bound


class Pair:
    """The same parameters on both optimizers, stepped and compared."""

    def __init__(self, kept, full, shapes=SHAPES, dtype=np.float32):
        self.opts = (kept, full)
        self.shapes, self.dtype = shapes, dtype
        self.weights = (arrays(0, shapes, dtype), arrays(0, shapes, dtype))
        self.states = tuple([opt.create_state(i, w) for i, w in enumerate(ws)] for opt, ws in zip(self.opts, self.weights))
        self.indices = list(range(len(shapes)))
        self.seed = 100

    def step(self, grads=None, call="update"):
        self.seed += 1
        grads = grads if grads is not None else arrays(self.seed, self.shapes, self.dtype)
        for opt, ws, ss in zip(self.opts, self.weights, self.states):
            getattr(opt, call)(list(self.indices), ws, grads, ss)
        self.compare()

    def compare(self):
        kept, full = self.opts
        for k, (a, b) in enumerate(zip(*self.weights)):
            assert a.tobytes() == b.tobytes(), f"weight {k}"
        for k, (a, b) in enumerate(zip(*self.states)):
            for j, (x, y) in enumerate(zip(parts(a), parts(b))):
                assert x.tobytes() == y.tobytes(), f"state {j} of parameter {k}"
        assert kept._index_update_count == full._index_update_count and kept.num_update == full.num_update

    def launch(self):
        """The kept launch of this update (None while only weak references are kept)."""
        entry = self.opts[0].engine.kept.launches.get(tuple(self.indices))
        return entry if isinstance(entry, kept_launch.KeptLaunch) else None

    def both(self, action):
        for opt in self.opts:
            action(opt)


def parts(state):
    return [] if state is None else list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,flavor,hyper", CASES)
def test_kept_launch_equals_full_path_with_changing_lr(name, flavor, hyper, dtype):
    pair = Pair(*make(name, flavor, hyper), dtype=dtype)
    for step in range(6):
        pair.both(lambda opt: setattr(opt, "lr", 0.01 / (step + 1)))     # a changing learning rate
        pair.step()
    launch = pair.launch()
    assert launch is not None and launch.uses == 4     # steps 3 to 6 through the kept table


def test_single_tensor_update_is_kept():
    pair = Pair(*make("adam", "torch", {}), shapes=[(70000,)])
    for step in range(4):
        pair.both(lambda opt: setattr(opt, "lr", 0.001 * (step + 1)))
        pair.step()
    assert pair.launch().uses == 2


def test_per_parameter_lr_wd_and_counts_take_one_plan_per_group():
    """lr_mult, wd_mult and a parameter that lags one update behind: several (lr, wd, t)
    groups in one kept table."""
    pair = Pair(*make("adam", "torch", {}))
    pair.both(lambda opt: opt.set_lr_mult({1: 0.5, 3: 2.0}))
    pair.both(lambda opt: opt.set_wd_mult({2: 0.0}))
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):      # parameter 3 counted once more
        opt.update([3], [ws[3]], arrays(7, [SHAPES[3]]), [ss[3]])
    pair.compare()
    for _ in range(4):
        pair.step()
    assert pair.launch().uses == 2


@pytest.mark.parametrize("change", [
    lambda opt: setattr(opt, "lr", 0.2),
    lambda opt: opt.set_lr_mult({0: 3.0}),
    lambda opt: opt.set_wd_mult({1: 0.5}),
    lambda opt: setattr(opt, "wd", 0.0),
    lambda opt: setattr(opt, "rescale_grad", 2.0),
    lambda opt: setattr(opt, "clip_gradient", None),
    lambda opt: setattr(opt, "clip_gradient", 0.01),
    lambda opt: setattr(opt, "beta1", 0.5),
    lambda opt: setattr(opt, "num_update", 100),
    lambda opt: opt._index_update_count.update({0: 40, 2: 41}),
], ids=["lr", "lr_mult", "wd_mult", "wd", "rescale_grad", "no-clip", "clip", "beta1", "num_update", "counts"])
def test_scalar_changes_are_read_every_update(change):
    """Nothing but arrays is kept: every scalar is read again and the kept table serves."""
    pair = Pair(*make("adam", "torch", {}))
    for _ in range(3):
        pair.step()
    pair.both(change)
    pair.step()
    pair.step()
    assert pair.launch().uses == 3


def test_scheduler_is_read_every_update():
    kept, full = (optforge.create("adam", flavor="torch", lr_scheduler=lr_scheduler.FactorScheduler(1, 0.5, base_lr=0.1),
                                  **{k: v for k, v in ARGS.items() if k != "learning_rate"}) for _ in range(2))
    full.engine.kept.keep = lambda *args: None
    pair = Pair(kept, full)
    for _ in range(5):
        pair.step()
    assert pair.launch().uses == 3


def _replace_states(pair):
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
        ss[1] = opt.create_state(1, ws[1])


def _replace_weight(pair):
    for ws in pair.weights:
        ws[2] = ws[2].copy()


def _move_state_memory(pair):
    """The same state object given other memory in place (unpickling into it)."""
    for ss in pair.states:
        moment = ss[0][0]
        moment.__setstate__(moment.copy().__reduce__()[2])


def _updater_round_trip(pair):
    for opt, ss in zip(pair.opts, pair.states):
        updater = optforge.get_updater(opt)
        updater.states = dict(enumerate(ss))
        updater.set_states(updater.get_states())
        ss[:] = [updater.states[i] for i in range(len(ss))]


def _switch_variant(pair):
    pair.both(lambda opt: setattr(opt, "maximize", True))


@pytest.mark.parametrize("change", [_replace_states, _replace_weight, _move_state_memory, _updater_round_trip,
                                    _switch_variant],
                         ids=["create_state", "new-weight", "state-memory", "set_states", "variant"])
def test_changed_arrays_or_variant_rebuild(change):
    """A replaced state or weight, a state given other memory, states loaded by the
    Updater, another variant: the old table does not serve; the full path runs and a new
    launch is kept at once (the same weights stepped before) and serves the next update."""
    pair = Pair(*make("adam", "torch", {}))
    for _ in range(3):
        pair.step()
    old = pair.launch()
    assert old.uses == 1
    change(pair)
    pair.step()
    assert old.uses == 1
    pair.step()
    new = pair.launch()
    assert new is not old
    if change is _replace_weight:   # a new weight: first seen now, kept after its second update
        assert new.uses == 0
        pair.step()
    assert new.uses == 1


def test_changed_gradient_arrays_are_checked_each_update():
    """New gradient arrays every update are the usual case: served, and checked."""
    pair = Pair(*make("sgd", "torch", {"momentum": 0.9}))
    for _ in range(5):
        pair.step()
    assert pair.launch().uses == 3
    # a gradient sharing memory with its own state or weight: not served (the full path
    # reads it as a copy, as if the caller had passed one, and keeps a new launch)
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
        grads = arrays(50)
        grads[1] = ss[1].copy()     # alike for both optimizers...
        opt.update(list(pair.indices), ws, grads, ss)
    pair.compare()
    launch = pair.launch()
    uses = launch.uses
    overlapping = [arrays(51) for _ in pair.opts]
    for opt, ws, ss, grads in zip(pair.opts, pair.weights, pair.states, overlapping):
        grads[1] = ss[1]            # ...then the state itself as the gradient
        opt.update(list(pair.indices), ws, grads, ss)
    pair.compare()
    assert launch.uses == uses and pair.launch() is not launch
    uses = pair.launch().uses
    # a read-only gradient is fine; a non-contiguous one is not served but runs as before
    grads = arrays(52)
    grads[0].setflags(write=False)
    pair.step(grads)
    assert pair.launch().uses == uses + 1
    grads = [g.copy() for g in arrays(53)]
    grads[1] = np.asfortranarray(grads[1])
    pair.step(grads)
    assert pair.launch().uses == uses + 1


def test_row_sparse_gradient_takes_the_full_path():
    pair = Pair(*make("adam", "torch", {}), shapes=[(6, 5), (6, 5)])
    for _ in range(3):
        pair.step()
    launch = pair.launch()
    assert launch.uses == 1
    dense = arrays(60, [(6, 5)])[0]
    grads = [sparse.RowSparse(np.array([1, 4]), dense[[1, 4]], (6, 5)), arrays(61, [(6, 5)])[0]]
    pair.step(grads)
    assert launch.uses == 1


def test_backend_switch_takes_the_full_path(monkeypatch):
    pair = Pair(*make("adam", "torch", {}))
    for _ in range(3):
        pair.step()
    monkeypatch.setenv(native.BACKEND_ENV, "numpy")
    pair.step()
    assert pair.launch().uses == 1


@pytest.mark.parametrize("spoil,error", [
    (lambda ws, ss: setattr(ss[1][0], "shape", (70, 4)), "shape"),
    (lambda ws, ss: ss[1][1].setflags(write=False), "read-only"),
    (lambda ws, ss: setattr(ss[0][0], "dtype", np.int32), "dtype"),
    (lambda ws, ss: setattr(ws[2], "shape", (700, 100)), "shape"),
], ids=["state-shape", "read-only-state", "state-dtype", "weight-shape"])
def test_refusals_are_unchanged(spoil, error):
    """A state or weight changed in place so that the full path refuses it: the update
    raises as the full path's does, before any array or count changes."""
    pair = Pair(*make("adam", "torch", {}))
    for _ in range(3):
        pair.step()
    grads = arrays(70)
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
        spoil(ws, ss)
        before = [w.copy() for w in ws], dict(opt._index_update_count), opt.num_update
        with pytest.raises(ValueError, match=error):
            if ws[2].shape != SHAPES[2]:
                grads[2] = grads[2].reshape(ws[2].shape)
            opt.update(list(pair.indices), ws, grads, ss)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(ws, before[0]))
        assert opt._index_update_count == before[1] and opt.num_update == before[2]


def test_state_layout_change_is_refused():
    """momentum set to 0 leaves SGD without a momentum state: the kept states no longer
    fit, and the update is refused as on the full path."""
    pair = Pair(*make("sgd", "torch", {"momentum": 0.9}))
    for _ in range(3):
        pair.step()
    pair.both(lambda opt: setattr(opt, "momentum", 0.0))
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
        counts = dict(opt._index_update_count)
        with pytest.raises(ValueError, match="state layout"):
            opt.update(list(pair.indices), ws, arrays(80), ss)
        assert opt._index_update_count == counts


def test_failing_scalars_raise_before_anything_changes():
    """A scheduler returning a negative rate: ValueError, weights and counts as they were."""
    pair = Pair(*make("adam", "torch", {}))
    schedule = {}
    for opt in pair.opts:
        opt.lr_scheduler = lambda n, opt=opt: schedule[id(opt)]
    for rate in (0.1, 0.05, 0.02):
        schedule.update(dict.fromkeys(map(id, pair.opts), rate))
        pair.step()
    assert pair.launch().uses == 1
    schedule.update(dict.fromkeys(map(id, pair.opts), -1.0))
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
        before = [w.copy() for w in ws], dict(opt._index_update_count), opt.num_update
        with pytest.raises(ValueError, match="lr_scheduler"):
            opt.update(list(pair.indices), ws, arrays(90), ss)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(ws, before[0]))
        assert opt._index_update_count == before[1] and opt.num_update == before[2]


def test_skipped_step_keeps_the_launch():
    """AdamW skips a step with a non-finite rescale_grad (counted, nothing updated): the
    full path runs it, and the kept launch serves again after it."""
    pair = Pair(*make("adamw", "mxnet2", {}))
    for _ in range(3):
        pair.step()
    launch = pair.launch()
    pair.both(lambda opt: setattr(opt, "rescale_grad", float("nan")))
    pair.step()
    assert launch.uses == 1
    pair.both(lambda opt: setattr(opt, "rescale_grad", 0.5))
    pair.step()
    assert pair.launch() is launch and launch.uses == 2


def test_multi_precision_never_keeps():
    """16-bit weights with master copies run the master-copy kernels on the full path."""
    kept, full = make("adam", "torch", {}, multi_precision=True)
    weights = [arrays(0, SHAPES, np.float16) for _ in range(2)]
    states = [[opt.create_state_multi_precision(i, w) for i, w in enumerate(ws)] for opt, ws in zip((kept, full), weights)]
    for step in range(4):
        grads = arrays(step, SHAPES, np.float16)
        for opt, ws, ss in zip((kept, full), weights, states):
            opt.update_multi_precision(list(range(len(SHAPES))), ws, grads, ss)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*weights))
    assert not any(isinstance(v, kept_launch.KeptLaunch) for v in kept.engine.kept.launches.values())


def test_params_api_and_updater_are_served(monkeypatch):
    """optforge.optim (an engine's kept launches) and the Updater (_prepare_update) use the kept
    launch of their NumPy parameters; the reference runs with keeping switched off."""
    params, reference = arrays(0), arrays(0)
    opt = optforge.optim.Adam(params, lr=0.01, weight_decay=0.1)
    ref = optforge.optim.Adam(reference, lr=0.01, weight_decay=0.1)
    kept, full = make("adam", "torch", {}, aggregate_num=len(SHAPES))     # one call for all parameters
    updaters = [optforge.get_updater(o) for o in (kept, full)]
    weights = (arrays(1), arrays(1))
    for step in range(5):
        grads = arrays(step)
        opt.step(grads)
        updaters[0](list(range(len(SHAPES))), grads, weights[0])
        with monkeypatch.context() as patch:
            patch.setattr(kept_launch.KeptLaunches, "keep", lambda *args: None)
            ref.step(grads)
            updaters[1](list(range(len(SHAPES))), grads, weights[1])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(params, reference))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*weights))
    engines = [engine for _, engine in opt._engines]
    assert [v.uses for e in engines for v in e.kept.launches.values()] == [3]
    assert [v.uses for v in kept.engine.kept.launches.values()] == [3]


def test_copies_leave_kept_launches_out():
    """A deep-copied optimizer keeps no launch of the original's arrays, and steps its copy
    of the arrays as the full path does."""
    import copy
    pair = Pair(*make("adam", "torch", {}))
    for _ in range(3):
        pair.step()
    clone, ref = copy.deepcopy(pair.opts[0]), copy.deepcopy(pair.opts[1])
    assert not clone.engine.kept and pair.opts[0].engine.kept
    copies = [([w.copy() for w in ws], [tuple(p.copy() for p in parts(s)) for s in ss])
              for ws, ss in zip(pair.weights, pair.states)]
    for step in range(4):
        grads = arrays(200 + step)
        for opt, (ws, ss) in zip((clone, ref), copies):
            opt.update(list(pair.indices), ws, grads, ss)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(copies[0][0], copies[1][0]))
    assert [v.uses for v in clone.engine.kept.launches.values()] == [2]


def test_params_api_lr_changes_and_failing_group(monkeypatch):
    """A new lr in a param group rebuilds the group's engine, which takes over the kept
    launches (arrays only); a group whose gradient does not fit raises, and the group
    already prepared through its kept launch is cancelled: nothing steps."""
    params, reference = arrays(0), arrays(0)
    made = [optforge.optim.AdamW([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.002}], lr=0.01, weight_decay=0.1)
            for ps in (params, reference)]
    for step in range(5):
        grads = arrays(step)
        for opt in made:
            opt.param_groups[0]["lr"] = 0.01 / (step + 1)
        made[0].step(grads)
        with monkeypatch.context() as patch:
            patch.setattr(kept_launch.KeptLaunches, "keep", lambda *args: None)
            made[1].step(grads)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(params, reference))
    engines = [engine for _, engine in made[0]._engines]
    assert [v.uses for v in engines[0].kept.launches.values()] == [3]
    before = [p.copy() for p in params], dict(made[0]._counts)
    grads = arrays(9)
    grads[3] = grads[3][:2]
    with pytest.raises(ValueError, match="shape"):
        made[0].step(grads)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(params, before[0]))
    assert made[0]._counts == before[1]


def test_multi_precision_switched_on_leaves_the_kept_launch():
    """float16 weights stepped without master copies are kept (float16 kernels); with
    multi_precision switched on, update_multi_precision no longer takes the kept launch and
    refuses the states without master copies, as the full path does, changing nothing."""
    pair = Pair(*make("adam", "torch", {}), dtype=np.float16)
    for _ in range(4):
        pair.step(call="update_multi_precision")
    assert pair.launch().uses == 2
    pair.both(lambda opt: setattr(opt, "multi_precision", True))
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
        before = [w.copy() for w in ws], dict(opt._index_update_count)
        with pytest.raises(ValueError, match="multi-precision state"):
            opt.update_multi_precision(list(pair.indices), ws, arrays(5, SHAPES, np.float16), ss)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(ws, before[0]))
        assert opt._index_update_count == before[1]
    assert pair.launch().uses == 2


def test_new_tuples_of_the_same_state_arrays_are_served():
    """States passed as new tuples of the same arrays every update (as optforge.torch makes
    them) are served; a tuple holding another array, or a list, is not."""
    pair = Pair(*make("adam", "torch", {}))
    for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
        ss[:] = [tuple(s) for s in ss]
    for _ in range(4):
        pair.seed += 1
        grads = arrays(pair.seed)
        for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
            opt.update(list(pair.indices), ws, grads, [tuple(s) for s in ss])
        pair.compare()
    launch = pair.launch()
    assert launch.uses == 2
    for ss in pair.states:      # a tuple with another array in it: not served, and stepped right
        ss[1] = (ss[1][0].copy(), ss[1][1])
    pair.step()
    assert launch.uses == 2
    new = pair.launch()
    assert new is not launch and new.uses == 0
    for _ in range(2):          # lists: never served
        pair.seed += 1
        grads = arrays(pair.seed)
        for opt, ws, ss in zip(pair.opts, pair.weights, pair.states):
            opt.update(list(pair.indices), ws, grads, [list(s) for s in ss])
        pair.compare()
    assert pair.launch() is new and new.uses == 0


def test_gradient_over_a_host_scalar_state_is_not_served():
    """NAdam's mu_product (a 0-d float64 state) kept in memory that a later gradient views:
    that update is not served, as the full path's overlap check sends it to the NumPy code."""
    pair = Pair(*make("nadam", "torch", {}), shapes=[(8,), (8,)])
    memories = []
    for ss in pair.states:
        memory = np.zeros(16, np.float32)
        mu = memory[4:6].view(np.float64).reshape(())
        mu[...] = ss[1][2]
        ss[1] = (ss[1][0], ss[1][1], mu)
        memories.append(memory)
    for _ in range(3):
        pair.step()
    launch = pair.launch()
    assert launch.uses == 1 and launch.host_columns["mu_product"][1] is pair.states[0][1][2]
    for opt, ws, ss, memory in zip(pair.opts, pair.weights, pair.states, memories):
        grads = [arrays(6, [(8,)])[0], memory[:8]]      # bytes 16 to 24 are mu_product's
        opt.update(list(pair.indices), ws, grads, ss)
    pair.compare()
    assert launch.uses == 1
