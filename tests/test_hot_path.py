"""The per-step fast paths give exactly what the step without them gives, and every cache
sees the change that invalidates it.

- `update` evaluates the host scalars once per group of parameters with equal inputs
  (lr, wd, t, name flags): parameters whose lr_mult, wd_mult, update count or sign of a
  zero differ still get their own scalars. Reference: the same parameters updated one per
  call (no sharing possible), compared bit for bit (float32 native kernels, same code).
- the multi-tensor table is built by columns: compared word for word with a table
  written row by row from the documented layout (launch_table.table's docstring).
- optforge.torch keeps NumPy views of parameters and states and the update counts of its
  `step` tensors between steps: `param.data = ...` (same and other shape), states
  replaced by load_state_dict, a step tensor written by the user and add_param_group
  are each followed by torch.optim doing the same; float64, rtol 1e-12 (the same formula
  in another operation order differs by a few ulps over 4 steps).
"""
import math

import numpy as np
import pytest

import optforge
from optforge.runtime.backends import launch_table


def _arrays(seed, shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) * 3 for s in shapes]


@pytest.mark.parametrize("name,flavor,hyper", [("adam", "torch", {}), ("sgd", "torch", {"momentum": 0.9}),
                                               ("lamb", "mxnet2", {}), ("nadam", "torch", {})])
def test_shared_host_scalars_equal_per_parameter_updates(name, flavor, hyper):
    shapes = [(7,), (3, 5), (7,), (2, 2), (7,), (6,)]
    kwargs = dict(learning_rate=0.01, wd=0.1, rescale_grad=0.5, clip_gradient=1.0, begin_num_update=3, **hyper)
    mults = {"lr": {1: 0.5, 4: 2.0}, "wd": {2: 0.0, 3: 3.0}}
    together = optforge.create(name, flavor=flavor, **kwargs)
    alone = optforge.create(name, flavor=flavor, **kwargs)
    for opt in (together, alone):
        opt.set_lr_mult(mults["lr"])
        opt.set_wd_mult(mults["wd"])
    w1, w2 = _arrays(0, shapes), _arrays(0, shapes)
    s1 = [together.create_state(i, w) for i, w in enumerate(w1)]
    s2 = [alone.create_state(i, w) for i, w in enumerate(w2)]
    indices = list(range(len(shapes)))
    for step in range(4):
        grads = _arrays(10 + step, shapes)
        # parameter 5 lags one update behind from the second step on: its t differs
        chosen = indices if step == 0 else indices[:5]
        if step == 2:
            together.lr = alone.lr = 0.003      # a changing learning rate
        together.update(chosen, [w1[i] for i in chosen], [grads[i] for i in chosen], [s1[i] for i in chosen])
        for i in chosen:
            alone.update([i], [w2[i]], [grads[i]], [s2[i]])
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


def test_zero_and_negative_zero_weight_decay_are_not_shared():
    from optforge.runtime.engine import StepInputs
    from optforge.runtime.engine.plans import exact
    assert exact(0.0) != exact(-0.0) and exact(1.5) == 1.5
    opt = optforge.create("adam", flavor="torch", learning_rate=0.1)
    weights = _arrays(1, [(3,), (3,)])
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    plans = opt.engine.plans([0, 1], weights, states, StepInputs([1, 1], [0.1, 0.1], [0.0, -0.0]))
    assert math.copysign(1, plans[0].scalars["wd"]) == 1 and math.copysign(1, plans[1].scalars["wd"]) == -1


def _row_by_row(variant, entries, chunk):
    words, first, first_row = [], 0, 0
    for pointers, numel, scalars, noise, rows in entries:
        row = list(pointers) + [numel, first]
        row += [int(np.float64(v).view(np.uint64)) for v in launch_table.scalar_values(variant, scalars)]
        if variant.get("rows"):
            row += [rows[0], first_row]
            first_row += rows[1]
        if variant["noise"]:
            row += list(noise)
        words.append(row)
        first += -(-numel // chunk)
    return np.array(words, dtype=np.uint64), first, first_row


@pytest.mark.parametrize("rows,noise", [(False, False), (True, False), (False, True)])
def test_table_by_columns_is_the_documented_layout(rows, noise):
    variant = {"scalars": ["a", "b"], "none": {"b": "inf"}, "rows": rows, "noise": noise}
    shared = {"a": 0.25, "b": None}
    entries = [([1000 + k, 2000 + k, 3000 + k], n, shared if k % 2 else {"a": -1e-30, "b": 3.0},
                (7 + k, 2**64 - 1 - k), (n // 2, 2 + k)) for k, n in enumerate([5, 70000, 0, 131072, 1])]
    table = launch_table.table(variant, entries, 65536)
    words, chunks, first_row = _row_by_row(variant, entries, 65536)
    np.testing.assert_array_equal(table.words, words)
    assert (table.chunks, table.rows) == (chunks, first_row)


# -- optforge.torch caches ------------------------------------------------------------

torch = pytest.importorskip("torch")


def _pair(cls="Adam", shapes=((4, 3), (5,), (2, 2)), seed=0, **kwargs):
    import optforge.torch as ot
    gen = torch.Generator().manual_seed(seed)
    ours = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    kwargs = dict(lr=0.01, weight_decay=0.1, **kwargs)
    return (ours, getattr(ot, cls)(ours, **kwargs)), (theirs, getattr(torch.optim, cls)(theirs, **kwargs))


def _steps(sides, count, seed):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(count):
        grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) * 2 for p in sides[0][0]]
        for params, opt in sides:
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()


def _same(sides):
    for a, b in zip(sides[0][0], sides[1][0]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls,kwargs", [("Adam", {}), ("SGD", {"momentum": 0.9})])
def test_param_data_replaced_is_seen(cls, kwargs):
    sides = _pair(cls, **kwargs)
    _steps(sides, 2, 1)
    fresh = torch.randn(4, 3, dtype=torch.float64)
    for params, _ in sides:
        params[0].data = fresh.clone()          # new storage, same shape
    _steps(sides, 2, 2)
    _same(sides)
    assert not torch.equal(sides[0][0][0], fresh)     # the new tensor was updated


def test_param_data_reshaped_in_place_is_seen():
    sides = _pair("SGD", momentum=0.0)
    _steps(sides, 1, 1)
    for params, _ in sides:
        params[0].data = params[0].data.reshape(3, 4)   # same memory, another shape
    _steps(sides, 2, 2)
    _same(sides)


def test_loaded_states_and_steps_are_seen():
    sides = _pair("Adam")
    _steps(sides, 3, 1)
    other = _pair("Adam")
    _steps(other, 1, 5)                           # a checkpoint one step in, other moments
    for (params, opt), (_, source) in zip(sides, other):
        opt.load_state_dict(source.state_dict())
    _steps(sides, 2, 3)
    _same(sides)
    # t came from the loaded steps (1, then two more), not from the count cached before loading
    assert float(sides[0][1].state[sides[0][0][0]]["step"]) == 3.0


def test_a_step_tensor_written_by_the_user_is_read_again():
    sides = _pair("Adam")
    _steps(sides, 2, 1)
    for params, opt in sides:
        opt.state[params[1]]["step"].fill_(10.0)
        opt.state[params[2]]["exp_avg"].mul_(0.5)     # a state written in place: the same view sees it
    _steps(sides, 2, 2)
    _same(sides)
    assert float(sides[0][1].state[sides[0][0][1]]["step"]) == 12.0


def test_add_param_group_after_steps():
    sides = _pair("AdamW")
    _steps(sides, 2, 1)
    gen = torch.Generator().manual_seed(9)
    extra = torch.randn(3, dtype=torch.float64, generator=gen)
    for params, opt in sides:
        p = extra.clone().requires_grad_()
        params.append(p)
        opt.add_param_group({"params": [p], "lr": 0.05})
    _steps(sides, 2, 2)
    _same(sides)


def _launch_of(opt, group=0):
    from optforge.torch.launch_cache import GroupLaunch
    kept = opt._launches.get(id(opt.param_groups[group]))
    return kept[1] if kept and isinstance(kept[1], GroupLaunch) else None


@pytest.mark.parametrize("cls,kwargs", [("Adam", {}), ("AdamW", {"amsgrad": True}), ("SGD", {"momentum": 0.9}),
                                        ("SGD", {"momentum": 0.0})])
def test_kept_launch_runs_and_equals_torch(cls, kwargs, monkeypatch):
    from optforge.torch.launch_cache import GroupLaunch
    sides = _pair(cls, **kwargs)
    _steps(sides, 1, 1)
    launch = _launch_of(sides[0][1])
    assert launch is not None                  # kept after a full step
    runs = []
    original = GroupLaunch.prepare
    monkeypatch.setattr(GroupLaunch, "prepare", lambda self, *a: runs.append(original(self, *a)) or runs[-1])
    _steps(sides, 3, 2)
    assert len(runs) == 3 and all(run is not None for run in runs)     # every later step took it
    _same(sides)
    theirs = sides[1][1].state.get(sides[1][0][0], {})
    ours = sides[0][1].state.get(sides[0][0][0], {})
    assert set(ours) == set(theirs)            # torch's layout: SGD keeps no step
    for name, value in ours.items():
        torch.testing.assert_close(value, theirs[name], rtol=1e-12, atol=1e-14)
    if cls != "SGD":
        assert float(ours["step"]) == 4.0


def test_kept_launch_falls_back_for_a_changed_lr_and_a_missing_gradient():
    sides = _pair("Adam")
    _steps(sides, 2, 1)
    for _, opt in sides:
        opt.param_groups[0]["lr"] = 0.002      # as a scheduler would: the scalars follow
    _steps(sides, 1, 2)
    for params, opt in sides:
        params[1].grad = None
        params[0].grad = torch.ones_like(params[0])
        params[2].grad = torch.full_like(params[2], -2.0)
        opt.step()                             # a parameter without a gradient is left alone
    _steps(sides, 2, 3)
    _same(sides)


def test_a_gradient_sharing_memory_with_its_state_takes_the_full_path():
    sides = _pair("SGD", momentum=0.9)
    _steps(sides, 2, 1)
    opt, params = sides[0][1], sides[0][0]
    buffer = opt.state[params[0]]["momentum_buffer"]
    params[0].grad = buffer                    # aliasing: the NumPy code defines the result
    for p in params[1:]:
        p.grad = torch.ones_like(p)
    launch = _launch_of(opt)
    assert launch.prepare(opt, opt.param_groups[0], opt._engine(opt.param_groups[0]), 0.01, 0.1, 1.0) is None


@pytest.mark.parametrize("count", [3, 20])       # the overlap test's loop and its NumPy form
@pytest.mark.parametrize("fault", ["aliased", "unaligned"])
def test_a_misplaced_gradient_takes_the_full_path(count, fault, monkeypatch):
    import optforge.torch as ot
    gen = torch.Generator().manual_seed(6)
    start = [torch.randn(5, generator=gen, dtype=torch.float64) * 3 for _ in range(count)]
    sides = []
    for make in (lambda p: ot.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
                 lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1)):
        params = [t.clone().requires_grad_() for t in start]
        sides.append((params, make(params)))
    _steps(sides, 2, 1)
    runs = _runs(monkeypatch)
    last = count - 1
    grads = [torch.randn(5, generator=gen, dtype=torch.float64) for _ in range(count)]
    for params, opt in sides:
        for p, g in zip(params, grads):
            p.grad = g.clone()
    ours, opt = sides[0]
    if fault == "aliased":          # the gradient is the momentum buffer itself
        ours[last].grad = opt.state[ours[last]]["momentum_buffer"]
        opt.step()                  # (the NumPy code defines the result: not compared)
        assert runs == [None]
        return
    unaligned = torch.frombuffer(bytearray(8 * 5 + 1), dtype=torch.float64, offset=1, count=5)
    unaligned.copy_(grads[last])    # float64 at an odd byte address
    assert unaligned.data_ptr() % 8 != 0
    ours[last].grad = unaligned
    for _, o in sides:
        o.step()
    assert runs == [None]
    _same(sides)


@pytest.mark.parametrize("how", ["replaced", "data", "dict"])
def test_a_state_tensor_replaced_by_the_user_is_seen(how):
    sides = _pair("Adam")
    _steps(sides, 2, 1)
    for params, opt in sides:
        state = opt.state[params[0]]
        fresh = torch.full_like(state["exp_avg"], 0.25)
        if how == "replaced":
            state["exp_avg"] = fresh
        elif how == "data":
            state["exp_avg"].data = fresh      # the same tensor object, new memory
        else:                                  # a new state dict for the parameter
            opt.state[params[0]] = {**state, "exp_avg": fresh}
    _steps(sides, 2, 2)
    _same(sides)


def _square_pair(cls="Adam", **kwargs):
    """_pair with a square first parameter, so a transpose keeps its shape."""
    return _pair(cls, shapes=((3, 3), (5,), (2, 2)), seed=4, **kwargs)


def _runs(monkeypatch):
    """The kept launch's answers to prepare, recorded (None: the full path)."""
    from optforge.torch.launch_cache import GroupLaunch
    runs = []
    original = GroupLaunch.prepare
    monkeypatch.setattr(GroupLaunch, "prepare", lambda self, *a: runs.append(original(self, *a)) or runs[-1])
    return runs


def test_a_parameter_transposed_in_place_is_seen(monkeypatch):
    # same memory, same shape, other strides: only a strides check can tell
    sides = _square_pair("Adam")
    _steps(sides, 2, 1)
    runs = _runs(monkeypatch)
    for params, _ in sides:
        params[0].data = params[0].data.t()
    _steps(sides, 2, 2)
    _same(sides)
    assert runs[0] is None


def test_a_non_contiguous_gradient_takes_the_full_path(monkeypatch):
    sides = _square_pair("SGD", momentum=0.9)
    _steps(sides, 2, 1)
    runs = _runs(monkeypatch)
    gen = torch.Generator().manual_seed(5)
    grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in sides[0][0]]
    for params, opt in sides:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        params[0].grad = grads[0].t().contiguous().t()  # the same values, column-major
        opt.step()
    _same(sides)
    assert runs == [None]
    _steps(sides, 2, 3)                                 # and the launch comes back
    _same(sides)
    assert runs[-1] is not None


def test_a_gradient_retyped_through_data_is_refused_as_on_the_full_path():
    sides = _pair("Adam")
    _steps(sides, 2, 1)
    params, opt = sides[0]
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    params[1].grad.data = params[1].grad.data.float()   # .data skips the grad setter's checks
    with pytest.raises(ValueError, match="dtype"):
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)


def test_a_state_reshaped_in_place_is_seen(monkeypatch):
    sides = _pair("Adam")
    _steps(sides, 2, 1)
    runs = _runs(monkeypatch)
    params, opt = sides[0]
    state = opt.state[params[0]]
    state["exp_avg"].data = state["exp_avg"].data.reshape(3, 4)   # same memory, another shape
    for p in params:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError):
        opt.step()                                      # the full path names the state at fault
    assert runs == [None]


def test_the_group_steps_share_one_buffer_and_a_write_to_one_is_seen(monkeypatch):
    sides = _pair("AdamW")
    _steps(sides, 2, 1)
    params, opt = sides[0]
    steps = [opt.state[p]["step"] for p in params]
    assert [float(s) for s in steps] == [2.0] * 3 and all(s.dim() == 0 for s in steps)
    runs = _runs(monkeypatch)
    _steps(sides, 1, 2)
    assert runs[-1] is not None and [float(s) for s in steps] == [3.0] * 3
    for params, opt in sides:
        opt.state[params[2]]["step"] += 4.0            # one count written: the full path reads each
    _steps(sides, 2, 3)
    _same(sides)
    assert runs[1:] == [None]     # the counts now differ: no launch is kept for the group
    assert [float(sides[0][1].state[p]["step"]) for p in sides[0][0]] == [5.0, 5.0, 9.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls,kwargs", [("AdamW", {"weight_decay": 0.1}), ("SGD", {"momentum": 0.9, "nesterov": True,
                                                                                   "weight_decay": 0.01})])
def test_kept_launch_is_bitwise_the_full_path(dtype, cls, kwargs, monkeypatch):
    # the same optimizer with the launch cache switched off is the reference: the kept
    # launch must change no bit (same kernels, same scalars), over steps whose lr and
    # GradScaler scale change, come back to earlier values (a kept plan used again) and stay
    import optforge.torch as ot
    from optforge.torch.launch_cache import GroupLaunch
    gen = torch.Generator().manual_seed(3)
    shapes = [(64, 3), (5,), (7, 7), (1,)]
    lrs = [0.01, 0.01, 0.01, 0.003, 0.003, 0.01, 0.01, 0.02]
    scales = [None, None, 4.0, 4.0, None, None, 0.5, 0.5]     # opt.grad_scale, as GradScaler sets it
    start = [(torch.randn(s, generator=gen) * 3).to(dtype) for s in shapes]
    grads = [[(torch.randn(s, generator=gen) * 4).to(dtype) for s in shapes] for _ in lrs]
    results = []
    for keep in (True, False):
        if not keep:
            monkeypatch.setattr(GroupLaunch, "build", classmethod(lambda *a: False))
        params = [t.clone().requires_grad_() for t in start]
        opt = getattr(ot, cls)(params, lr=0.01, **kwargs)
        for lr, scale, gs in zip(lrs, scales, grads):
            opt.param_groups[0]["lr"] = lr
            opt.grad_scale = None if scale is None else torch.tensor(scale)
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()
        results.append((params, opt))
        assert (_launch_of(opt) is not None) == keep
    (fast, fast_opt), (full, full_opt) = results
    for a, b in zip(fast, full):
        assert torch.equal(a.view(torch.int16) if dtype != torch.float32 else a.view(torch.int32),
                           b.view(torch.int16) if dtype != torch.float32 else b.view(torch.int32))
    for a, b in zip(fast, full):
        for name, value in fast_opt.state[a].items():
            assert torch.equal(value, full_opt.state[b][name]), name


def _bad_updates():
    """(what, mutate) pairs: each breaks one rule the per-parameter checks enforce."""
    def grad_dtype(w, g, s, i): g[1] = g[1].astype(np.float64)
    def grad_shape(w, g, s, i): g[2] = g[2].reshape(-1)[:3].copy()
    def read_only(w, g, s, i): w[0].flags.writeable = False
    def duplicate(w, g, s, i): i[3] = i[0]
    def state_dtype(w, g, s, i): s[1] = (s[1][0].astype(np.float64), s[1][1])
    def state_shape(w, g, s, i): s[2] = (s[2][0], s[2][1].reshape(-1))
    def state_read_only(w, g, s, i): s[0][1].flags.writeable = False
    def state_layout(w, g, s, i): s[3] = s[3][0]
    return [read_only, grad_dtype, grad_shape, duplicate, state_dtype, state_shape, state_read_only, state_layout]


@pytest.mark.parametrize("mutate", _bad_updates(), ids=lambda f: f.__name__)
def test_whole_update_checks_accept_nothing_the_per_parameter_checks_refuse(mutate):
    from optforge.runtime import validation
    from optforge.runtime.engine.layout import states_fit as _states_fit
    opt = optforge.create("adam", flavor="torch", learning_rate=0.1)
    weights = _arrays(0, [(3, 2), (4,), (2, 2), (5,)])
    grads = _arrays(1, [(3, 2), (4,), (2, 2), (5,)])
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    indices = [0, 1, 2, 3]
    assert validation.pairs_fit(indices, weights, grads)
    layout = [opt.engine.states[n] for n in opt.engine.present_states()]
    assert _states_fit(weights, states, layout)
    mutate(weights, grads, states, indices)
    before = [w.copy() for w in weights]
    assert not (validation.pairs_fit(indices, weights, grads) and _states_fit(weights, states, layout))
    with pytest.raises(ValueError):
        opt.update(indices, weights, grads, states)
    for a, b in zip(before, weights):
        np.testing.assert_array_equal(a, b)
    assert opt._index_update_count == {}


def test_steps_held_in_one_buffer_save_and_load_both_ways(tmp_path):
    # after kept launches the steps are views of one buffer: a saved state dict (weights_only)
    # loads into torch.optim and into a fresh optimizer, and both continue as torch does
    import optforge.torch as ot
    sides = _pair("AdamW")
    _steps(sides, 3, 1)
    (ours, opt), (theirs, reference) = sides
    assert _launch_of(opt) is not None
    torch.save(opt.state_dict(), tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)
    assert [float(s["step"]) for s in loaded["state"].values()] == [3.0] * 3
    twins = [p.detach().clone().requires_grad_() for p in ours]
    fresh = ot.AdamW(twins, lr=0.01, weight_decay=0.1)
    fresh.load_state_dict(loaded)
    copies = [p.detach().clone().requires_grad_() for p in ours]
    plain = torch.optim.AdamW(copies, lr=0.01, weight_decay=0.1)
    plain.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    _steps([(ours, opt), (theirs, reference), (twins, fresh), (copies, plain)], 3, 2)
    for params in (ours, twins, copies):
        _same([(params, None), (theirs, None)])
    assert float(fresh.state[twins[0]]["step"]) == float(plain.state[copies[0]]["step"]) == 6.0


def test_a_scheduled_lr_reuses_one_engine_and_kept_plans(monkeypatch):
    # a scheduler changes lr every step: the engine built for the group's other values is
    # kept (the lr read per step), and SGD's plan (no input but lr that changes) is computed
    # once per lr; the result is torch.optim's SGD under the same schedule
    from optforge.runtime.engine import Engine
    sides = _pair("SGD", momentum=0.9)
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4) for _, opt in sides]
    planned = []
    original = Engine.host_result
    monkeypatch.setattr(Engine, "host_result", lambda self, inputs, *a: planned.append(inputs["lr"])
                        or original(self, inputs, *a))
    gen = torch.Generator().manual_seed(5)
    for _ in range(8):     # the cosine goes down and comes back: earlier lrs return
        grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in sides[0][0]]
        for (params, opt), scheduler in zip(sides, schedulers):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
            scheduler.step()
    _same(sides)
    assert len(sides[0][1]._engines) == 1
    launch = _launch_of(sides[0][1])
    assert launch is not None and launch.count == 1     # SGD counts no steps: states made, so t > 1
    # step 1 on the full path, step 2 (t == 2) and each new lr after it planned once by the launch
    assert len(planned) <= 2 + 8 and len(launch.kept_plans) == 1


def test_groups_differing_in_lr_share_an_engine_and_keep_their_lr():
    import optforge.torch as ot
    gen = torch.Generator().manual_seed(6)
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in [(3, 4), (5,), (6,), (2, 2)]]
    sides = []
    for make in (ot.Adam, torch.optim.Adam):
        params = [t.clone().requires_grad_() for t in start]
        opt = make([{"params": params[:2], "lr": 0.1}, {"params": params[2:], "lr": 0.001}], weight_decay=0.01)
        sides.append((params, opt))
    _steps(sides, 4, 7)     # the first step on the full path (both groups in one call), then kept launches
    _same(sides)
    assert len(sides[0][1]._engines) == 1
    sides[0][1].param_groups[1]["lr"] = sides[1][1].param_groups[1]["lr"] = 0.05
    _steps(sides, 2, 8)
    _same(sides)


@pytest.mark.parametrize("bad,message", [(-0.5, "lr must be >= 0.0, got -0.5"), (float("nan"), "lr must be finite"),
                                         ("0.1", "lr must be a number")])
def test_an_invalid_lr_written_into_a_kept_group_is_refused_and_changes_nothing(bad, message):
    sides = _pair("Adam")
    _steps(sides, 3, 1)      # the group steps on its kept launch
    params, opt = sides[0]
    assert _launch_of(opt) is not None
    before = [p.detach().clone() for p in params]
    states = {k: v.clone() for k, v in opt.state[params[0]].items()}
    opt.param_groups[0]["lr"] = bad
    with pytest.raises(ValueError, match=f"Invalid learning rate: {message}"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params, before))
    assert all(torch.equal(v, opt.state[params[0]][k]) for k, v in states.items())
    opt.param_groups[0]["lr"] = sides[1][1].param_groups[0]["lr"]
    _steps(sides, 2, 2)     # steps on as torch.optim does
    _same(sides)


@pytest.mark.parametrize("cls,kwargs", [("Adam", {}), ("SGD", {"momentum": 0.9}),
                                        ("AdamW", {"master_weights": True})])
def test_states_are_aligned_as_torch_aligns_parameters(cls, kwargs):
    # NumPy would give small states 16-byte alignment; the kernels' vector loads want the
    # 64 bytes torch's allocator gives every parameter
    import optforge.torch as ot
    dtype = torch.bfloat16 if kwargs.get("master_weights") else torch.float32
    params = [torch.zeros(n, dtype=dtype, requires_grad=True) for n in (3, 10, 37, 128, 1000)]
    opt = getattr(ot, cls)(params, lr=0.01, **kwargs)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    states = [value for p in params for name, value in opt.state[p].items() if name != "step"]
    assert len(states) >= len(params) and all(s.data_ptr() % 64 == 0 for s in states)
