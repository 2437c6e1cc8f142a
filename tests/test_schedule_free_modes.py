"""Schedule-Free AdamW's train/eval weight switch ([modes] of specs/schedulefreeadamw.toml) in
every API family, against an independent reference (tests/reference/papers.py: the step
of the schedulefree package's AdamWScheduleFree 1.4, the switch as its eval()/train():
lerps of the weight towards z), and optforge.torch against that package itself.

Each family runs several steps on two parameters (signed data, values beyond the clip
bound where the family has one, wd > 0, rescale_grad != 1, a learning rate changed between
steps, begin_num_update > 0 in the MXNet style), switches to eval and back more than once,
and checks: eval weights equal the reference's x (support.TOLERANCES: the reference
recovers x from y and z by a lerp that rounds differently from optforge's stored x); a
step in eval mode raises ValueError and changes nothing; eval -> train gives back the
training weights bit for bit (x is a state and train() recomputes y = beta1 x + (1 - beta1) z
exactly as the step does); switching to the current mode does nothing; the saved state
records the mode.
"""
import numpy as np
import pytest

import optforge
from reference import papers
from support import BEGIN, LEARNING_RATES, RESCALE, SHAPES, WD, assert_close, signed

STEPS = 6
EVAL_AFTER = (2, 4)            # eval() then train() after these steps
HP = {"beta1": 0.8, "warmup_steps": 2}
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


class Reference:
    """The reference's weights and states, per parameter."""

    def __init__(self, weights, clip):
        self.w = [w.copy() for w in weights]
        self.s = [{} for _ in weights]
        self.clip = clip

    def step(self, grads, lr, t, rescale_grad):
        for i, g in enumerate(grads):
            self.w[i], self.s[i] = papers.schedulefreeadamw(
                self.w[i], g, self.s[i], lr=lr, wd=WD, t=t, rescale_grad=rescale_grad,
                clip_gradient=self.clip, **HP)

    def eval(self):
        return [papers.schedulefree_eval(w, s["z"], beta1=HP["beta1"]) for w, s in zip(self.w, self.s)]

    def train(self, xs):
        return [papers.schedulefree_train(x, s["z"], beta1=HP["beta1"]) for x, s in zip(xs, self.s)]


def _check_weights(actual, expected, dtype, what):
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == dtype
        assert_close(a, e, dtype, f"{what}, parameter {i}")


@DTYPES
@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
def test_mxnet_style(dtype, clip):
    rng = np.random.default_rng(12)
    opt = optforge.create("schedulefreeadamw", wd=WD, rescale_grad=RESCALE, clip_gradient=clip,
                          begin_num_update=BEGIN, **HP)
    weights = [signed(rng, s, 1.5, dtype) for s in SHAPES]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    ref = Reference(weights, clip)
    indices = list(range(len(weights)))
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            opt.set_learning_rate(LEARNING_RATES[step])
        grads = [signed(rng, s, 2.0, dtype) for s in SHAPES]
        ref.step(grads, opt.learning_rate, BEGIN + step, RESCALE)
        opt.update(indices, weights, grads, states)
        _check_weights(weights, ref.w, dtype, f"training weight after step {step}")
        if step not in EVAL_AFTER:
            continue
        training = [w.copy() for w in weights]
        opt.eval(indices, weights, states)
        assert [opt.mode(i) for i in indices] == ["eval", "eval"]
        xs = ref.eval()
        _check_weights(weights, xs, dtype, f"eval weight after step {step}")
        evaluated = [w.copy() for w in weights]
        opt.eval(indices, weights, states)             # already in eval: nothing changes
        for w, e in zip(weights, evaluated):
            np.testing.assert_array_equal(w, e)
        saved = [tuple(p.copy() for p in s) for s in states]
        with pytest.raises(ValueError, match="eval mode: call train"):
            opt.update(indices, weights, grads, states)
        assert opt._index_update_count == {0: BEGIN + step, 1: BEGIN + step}
        for w, e, s, kept in zip(weights, evaluated, states, saved):
            np.testing.assert_array_equal(w, e)
            for part, old in zip(s, kept):
                np.testing.assert_array_equal(part, old)
        opt.train(indices, weights, states)
        for w, y in zip(weights, training):
            np.testing.assert_array_equal(w, y, err_msg="eval -> train must give the training weight back")
        _check_weights(weights, ref.train(xs), dtype, f"train weight after step {step}")


def test_mxnet_style_scalar_index_and_updater_round_trip():
    """The 1.x form (one index at a time) and the Updater, whose saved file keeps the modes."""
    rng = np.random.default_rng(3)
    opt = optforge.create("schedulefreeadamw", learning_rate=0.05, wd=WD, **HP)
    updater = optforge.get_updater(opt)
    weights = [signed(rng, s, 1.5, np.float64) for s in SHAPES]
    ref = Reference(weights, None)
    for step in range(1, 4):
        grads = [signed(rng, s, 2.0, np.float64) for s in SHAPES]
        ref.step(grads, 0.05, step, 1.0)
        for i in range(len(weights)):
            updater(i, grads[i], weights[i])
    training = [w.copy() for w in weights]
    for i in range(len(weights)):       # one parameter at a time: each is switched once
        updater.eval(i, weights[i])
    _check_weights(weights, ref.eval(), np.float64, "eval weight")
    saved = updater.get_states(dump_optimizer=True)
    restored = optforge.get_updater(optforge.create("schedulefreeadamw"))
    restored.set_states(saved)
    assert [restored.optimizer.mode(i) for i in range(len(weights))] == ["eval", "eval"]
    with pytest.raises(ValueError, match="eval mode"):
        restored(0, grads[0], weights[0])
    restored.train([0, 1], weights)
    for w, y in zip(weights, training):
        np.testing.assert_array_equal(w, y)
    restored(0, grads[0], weights[0])     # steps again
    fresh = np.ones(3)
    restored.eval(7, fresh)               # no state yet: only the mode is recorded
    np.testing.assert_array_equal(fresh, 1.0)
    assert restored.optimizer.mode(7) == "eval"


def test_mxnet_style_checks_before_switching():
    opt = optforge.create("schedulefreeadamw")
    w = np.ones(4)
    state = opt.create_state(0, w)
    with pytest.raises(ValueError, match="shape"):
        opt.eval([0, 1], [w, np.ones(4)], [state, opt.create_state(1, np.ones(5))])
    np.testing.assert_array_equal(w, 1.0)
    assert opt.mode(0) == "train"
    assert not hasattr(optforge.create("adamw"), "eval")       # rules without [modes] have none


@DTYPES
def test_params_style(dtype):
    rng = np.random.default_rng(5)
    weights = [signed(rng, s, 1.5, dtype) for s in SHAPES]
    ref = Reference(weights, None)
    opt = optforge.optim.ScheduleFreeAdamW(weights, lr=0.05, betas=(HP["beta1"], 0.999), weight_decay=WD,
                                           warmup_steps=HP["warmup_steps"])
    assert opt.param_groups[0]["train_mode"] is True
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            opt.param_groups[0]["lr"] = LEARNING_RATES[step]
        grads = [signed(rng, s, 2.0, dtype) for s in SHAPES]
        ref.step(grads, opt.param_groups[0]["lr"], step, 1.0)
        opt.step(grads)
        _check_weights(weights, ref.w, dtype, f"training weight after step {step}")
        if step not in EVAL_AFTER:
            continue
        training = [w.copy() for w in weights]
        opt.eval()
        xs = ref.eval()
        _check_weights(weights, xs, dtype, f"eval weight after step {step}")
        saved = opt.state_dict()
        assert saved["param_groups"][0]["train_mode"] is False
        with pytest.raises(ValueError, match="eval mode"):
            opt.step(grads)
        other = optforge.optim.ScheduleFreeAdamW([w.copy() for w in weights], lr=0.05)
        other.load_state_dict(saved)
        assert other.param_groups[0]["train_mode"] is False
        with pytest.raises(ValueError, match="eval mode"):
            other.step(grads)
        opt.train()
        opt.train()                                    # already in train: nothing changes
        for w, y in zip(weights, training):
            np.testing.assert_array_equal(w, y)
        _check_weights(weights, ref.train(xs), dtype, f"train weight after step {step}")


def test_params_style_refuses_a_bad_saved_mode():
    opt = optforge.optim.ScheduleFreeAdamW([np.ones(3)])
    opt.step([np.ones(3)])
    saved = opt.state_dict()
    saved["param_groups"][0]["train_mode"] = "yes"
    with pytest.raises(ValueError, match="train_mode 'yes'"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["train_mode"] is True


def test_torch():
    torch = pytest.importorskip("torch")
    import optforge.torch as otorch
    rng = np.random.default_rng(9)
    arrays = [signed(rng, s, 1.5, np.float64) for s in SHAPES]
    params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    ref = Reference(arrays, None)
    opt = otorch.ScheduleFreeAdamW(params, lr=0.05, betas=(HP["beta1"], 0.999), weight_decay=WD,
                                   warmup_steps=HP["warmup_steps"])
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            opt.param_groups[0]["lr"] = LEARNING_RATES[step]
        grads = [signed(rng, s, 2.0, np.float64) for s in SHAPES]
        ref.step(grads, opt.param_groups[0]["lr"], step, 1.0)
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g)
        opt.step()
        _check_weights([p.detach().numpy() for p in params], ref.w, np.float64, f"after step {step}")
        if step not in EVAL_AFTER:
            continue
        training = [p.detach().clone() for p in params]
        opt.eval()
        xs = ref.eval()
        _check_weights([p.detach().numpy() for p in params], xs, np.float64, f"eval weight after step {step}")
        for p in params:
            assert torch.equal(p.detach(), opt.state[p]["x"])
        saved = opt.state_dict()
        assert saved["param_groups"][0]["train_mode"] is False
        with pytest.raises(ValueError, match="eval mode"):
            opt.step()
        assert float(opt.state[params[0]]["step"]) == step
        opt.train()
        for p, y in zip(params, training):
            assert torch.equal(p.detach(), y)
        _check_weights([p.detach().numpy() for p in params], ref.train(xs), np.float64,
                       f"train weight after step {step}")
    opt.eval()
    copy = [torch.nn.Parameter(p.detach().clone()) for p in params]
    other = otorch.ScheduleFreeAdamW(copy, lr=0.05)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["train_mode"] is False
    other.train()
    opt.train()
    for p, q in zip(params, copy):
        assert torch.equal(p.detach(), q.detach())


@pytest.mark.parametrize("suffix", ["f32", "f64"])
def test_generated_c_kernels_of_the_modes_match_numpy(suffix, request, tmp_path_factory):
    """The [modes] kernels of generated/cuda (run on the CPU from the same source,
    tests/cuda_host.py) and generated/cpu (the native library), one tensor and the
    multi-tensor table, bit for bit against the NumPy mode kernels (the same three-address
    code, no FMA contraction on either side)."""
    import ctypes
    from pathlib import Path

    import cuda_host
    from optforge.runtime.backends import launch_table, native
    dtype = {"f32": np.float32, "f64": np.float64}[suffix]
    cls = type(optforge.create("schedulefreeadamw"))
    module, meta = cls._module, launch_table.metadata(cls._module)
    hyper = {"beta1": 0.7}
    rng = np.random.default_rng(21)
    shapes = [(70001,), (5, 3)]           # one spans two 65536-element chunks of the table
    weights = [signed(rng, s, 1.5, dtype) for s in shapes]
    states = [{name: signed(rng, s, 1.0, dtype) for name in ("z", "x", "exp_avg_sq")} for s in shapes]
    folder = Path(__file__).resolve().parent.parent / "generated" / "cuda"
    cuda_host.need(cuda_host.compiler(), "g++")
    source = folder / "schedulefreeadamw.cu"
    built = cuda_host.build_all([source], folder, cuda_host.cache_folder(request.config, tmp_path_factory))
    emulated = cuda_host.HostKernels(built[source])
    lib = native.library(module)
    for mode in ("eval", "train"):
        mv = meta.MODES[mode]
        scalars = module.MODES[mode]["host"](**hyper)
        expected = []
        for w, st in zip(weights, states):
            out = w.copy()
            module.MODES[mode]["kernel"](np, out, None, *(st[n] for n in module.MODES[mode]["states"]
                                                           if n in st), **scalars)
            expected.append(out)
        for how in ("cuda-one", "cuda-multi", "cpu-one", "cpu-multi"):
            got = [w.copy() for w in weights]
            grads = [np.zeros_like(w) for w in weights]    # loaded, not used
            pointers = [[g_w, g] + [st[n] for n in mv["states"]] for g_w, g, st in zip(got, grads, states)]
            values = launch_table.kernel_scalars(mv, scalars, suffix)
            if how.endswith("multi"):
                entries = [([p.ctypes.data for p in ptrs], ptrs[0].size, scalars, None,
                            launch_table.weight_rows(ptrs[0].shape)) for ptrs in pointers]
                table = launch_table.table(mv, entries, meta.CHUNK)
                if how == "cuda-multi":
                    emulated.launch(mv["kernels"][suffix] + "_multi", [table.words, np.int32(len(got)), table.chunks],
                                    blocks=3, threads=4)
                else:
                    getattr(lib, mv["kernels"][suffix] + "_multi")(
                        ctypes.c_void_p(table.words.ctypes.data), ctypes.c_int(len(got)),
                        ctypes.c_longlong(table.chunks), ctypes.c_int(2))
            else:
                for ptrs in pointers:
                    if how == "cuda-one":
                        emulated.launch(mv["kernels"][suffix], list(ptrs) + [ptrs[0].size] + values)
                    else:
                        kind = ctypes.c_double if suffix == "f64" else ctypes.c_float
                        getattr(lib, mv["kernels"][suffix])(*[ctypes.c_void_p(p.ctypes.data) for p in ptrs],
                                                            ctypes.c_longlong(ptrs[0].size),
                                                            *[kind(v) for v in values], ctypes.c_int(2))
            for k, (g, e) in enumerate(zip(got, expected)):
                assert np.array_equal(g.view(np.uint8), e.view(np.uint8)), f"{mode} {how} parameter {k}"


def test_mxnet_style_multi_precision():
    """float16 weights with a float32 master copy: the switch rewrites the master copy
    (eval: the float32 x) and rounds it into the weight; the round trip restores both."""
    rng = np.random.default_rng(8)
    opt = optforge.create("schedulefreeadamw", learning_rate=0.05, multi_precision=True, **HP)
    weight = signed(rng, (6, 5), 1.5, np.float16)
    state = opt.create_state_multi_precision(0, weight)
    for _ in range(3):
        opt.update_multi_precision(0, weight, signed(rng, (6, 5), 2.0, np.float16), state)
    master, inner = state
    training, training_master = weight.copy(), master.copy()
    opt.eval(0, weight, state)
    np.testing.assert_array_equal(master, inner[1])                  # the float32 x
    np.testing.assert_array_equal(weight, inner[1].astype(np.float16))
    with pytest.raises(ValueError, match="eval mode"):
        opt.update_multi_precision(0, weight, signed(rng, (6, 5), 2.0, np.float16), state)
    opt.train(0, weight, state)
    np.testing.assert_array_equal(master, training_master)
    np.testing.assert_array_equal(weight, training)


@pytest.mark.parametrize("settings", [
    {},
    {"warmup_steps": 3, "r": 0.5, "weight_lr_power": 1.0, "decay_at_z": True},
], ids=["defaults", "warmup-r-decay_at_z"])
def test_torch_class_matches_the_schedulefree_package(settings):
    """optforge.torch.ScheduleFreeAdamW against schedulefree's AdamWScheduleFreeReference
    (the authors' package, 1.4): 6 steps of three parameters with wd > 0 and the lr changed
    between steps, eval() and train() between them; weights and the eval point x equal to
    float32 rounding carried over the steps (rtol 1e-5, atol 1e-6: each step rounds a few
    float32 ulps, in another order of operations)."""
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    rng = np.random.default_rng(3)
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in [(5,), (3, 4), (2, 2, 3)]]
    ours = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opts = [optforge.torch.ScheduleFreeAdamW(ours, lr=0.01, weight_decay=0.1, betas=(0.85, 0.99), **settings),
            schedulefree.AdamWScheduleFreeReference(theirs, lr=0.01, weight_decay=0.1, betas=(0.85, 0.99),
                                                    **settings)]
    opts[1].train()      # the package's optimizers start in eval mode
    for step in range(6):
        grads = [rng.standard_normal(w.shape).astype(np.float32) * 2 for w in weights]
        for params, opt in zip((ours, theirs), opts):
            for p, g in zip(params, grads):
                p.grad = torch.from_numpy(g.copy())
            opt.param_groups[0]["lr"] = (0.01, 0.02, 0.005)[step % 3]
            opt.step()
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
        if step in (2, 4):
            for opt in opts:
                opt.eval()
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
            for opt in opts:
                opt.train()


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1, "warmup_steps": 3, "betas": (0.8, 0.99)},
                                    {"r": 1.0, "weight_lr_power": 1.0, "lr": 0.01}],
                         ids=["defaults", "wd-warmup-betas", "r-power"])
def test_torch_equals_the_schedulefree_package(kwargs):
    """optforge.torch.ScheduleFreeAdamW against schedulefree.AdamWScheduleFree (the
    authors' package, pinned in the test extra) with the package's defaults and others:
    training weights after each of 8 steps, then the eval weights x; float64, rtol 1e-6
    (optforge keeps x and updates y from it, the package updates y directly by a lerp:
    the same value, rounded along another way). Every parameter steps at every step, so
    the package's per-group lr_max and weight sum equal optforge's per-parameter ones."""
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    import optforge.torch as otorch
    gen = torch.Generator().manual_seed(11)
    start = [torch.randn(5, 4, dtype=torch.float64, generator=gen), torch.randn(4, dtype=torch.float64, generator=gen)]
    ours = [torch.nn.Parameter(p.clone()) for p in start]
    theirs = [torch.nn.Parameter(p.clone()) for p in start]
    opt = otorch.ScheduleFreeAdamW(ours, **kwargs)
    ref = schedulefree.AdamWScheduleFree(theirs, **kwargs)
    ref.train()     # the package starts in eval mode
    for _ in range(8):
        grads = [torch.randn(p.shape, dtype=torch.float64, generator=gen) for p in start]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
        torch.testing.assert_close([p.detach() for p in ours], [q.detach() for q in theirs], rtol=1e-6, atol=1e-9)
    opt.eval()
    ref.eval()
    torch.testing.assert_close([p.detach() for p in ours], [q.detach() for q in theirs], rtol=1e-6, atol=1e-9)
