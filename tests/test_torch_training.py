"""optforge.torch in training loops: LR schedulers, GradScaler, sparse gradients, 16-bit
parameters, each beside torch.optim doing the same.

Tolerances: float64 runs beside torch.optim agree to rtol 1e-6 (the issue's bound; the
same formulas in another order, ~1e-13 in practice). 16-bit runs: see each test.
"""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optforge.torch as ot  # noqa: E402


def _data(n=32, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen, dtype=dtype)
    y = x @ torch.randn(5, 2, generator=gen, dtype=dtype) + 0.1 * torch.randn(n, 2, generator=gen, dtype=dtype)
    return x, y


def _model(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(dtype)


def _close(ours, theirs, rtol=1e-6, atol=1e-10):
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(a.detach().double().numpy(), b.detach().double().numpy(), rtol=rtol,
                                   atol=atol, err_msg=name)


SCHEDULERS = {
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda epoch: 1.0 / (1 + epoch)),
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=12),
    "ReduceLROnPlateau": lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=0,
                                                                             threshold=0.5),
}


OPTIMIZERS = [("AdamW", {"lr": 0.02, "weight_decay": 0.05}),
              ("SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01})]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_training_loop_with_scheduler_matches_torch_optim(scheduler, name, kwargs):
    """OneCycleLR also cycles AdamW's betas[0] and SGD's momentum."""
    x, y = _data()
    ours, theirs = _model(), _model()
    opt = getattr(ot, name)(ours.parameters(), **kwargs)
    ref = getattr(torch.optim, name)(theirs.parameters(), **kwargs)
    sched, ref_sched = SCHEDULERS[scheduler](opt), SCHEDULERS[scheduler](ref)
    losses = []
    for _ in range(12):
        for model, o, s in ((ours, opt, sched), (theirs, ref, ref_sched)):
            o.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            o.step()
            if scheduler == "ReduceLROnPlateau":
                s.step(loss.item())
            else:
                s.step()
        losses.append(loss.item())
        assert opt.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"], rel=1e-12)
        for key in ("betas", "momentum"):
            if key in ref.param_groups[0]:
                assert opt.param_groups[0][key] == pytest.approx(ref.param_groups[0][key], rel=1e-12)
        _close(ours, theirs)
    lrs = {g["lr"] for g in opt.param_groups}
    assert lrs != {0.02}, "the scheduler never changed the learning rate"
    assert losses[-1] < losses[0]


def _scaled_step(model, opt, scaler, x, y, poison=False, unscale=True):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    scaler.scale(loss).backward()
    if poison:
        next(model.parameters()).grad[0, 0] = float("inf")
    if unscale:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)
    scaler.update()


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("unscale", [True, False], ids=["unscale_then_step", "step_only"])
def test_grad_scaler_unscales_and_skips_non_finite_steps_on_the_cpu(unscale, fused):
    """torch's contract, beside torch.optim.Adam with the same `fused`: only fused=True sets
    `_step_supports_amp_scaling`, and GradScaler then leaves the gradients scaled and hands
    the optimizer `grad_scale`/`found_inf` (the kernels divide the scaled gradients);
    otherwise, or after unscale_ (to clip), GradScaler unscales the gradients itself and
    skips the step on inf/NaN."""
    x, y = _data(dtype=torch.float32)
    ours, theirs = _model(torch.float32), _model(torch.float32)
    opt = ot.Adam(ours.parameters(), lr=0.01, fused=fused)
    ref = torch.optim.Adam(theirs.parameters(), lr=0.01, fused=fused)
    assert getattr(opt, "_step_supports_amp_scaling", False) is fused
    assert getattr(ref, "_step_supports_amp_scaling", False) is fused
    scaler, ref_scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12), torch.amp.GradScaler(
        "cpu", init_scale=2.0 ** 12)
    seen = []    # the gradient as the step receives it
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(next(ours.parameters()).grad.clone()))
    for step in range(6):
        poison = step == 3
        before = [p.detach().clone() for p in ours.parameters()]
        counts = [float(opt.state[p]["step"]) for p in ours.parameters()] if step else None
        scale = scaler.get_scale()
        plain = copy.deepcopy(ours)     # the unscaled gradient of this step, for comparison
        torch.nn.functional.mse_loss(plain(x), y).backward()
        _scaled_step(ours, opt, scaler, x, y, poison, unscale)
        _scaled_step(theirs, ref, ref_scaler, x, y, poison, unscale)
        assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf")   # GradScaler cleans up
        if poison:   # skipped: nothing changed, and the scale was reduced
            assert all(torch.equal(a, b) for a, b in zip(before, ours.parameters()))
            assert [float(opt.state[p]["step"]) for p in ours.parameters()] == counts
            assert scaler.get_scale() == 2.0 ** 11
        else:
            assert not all(torch.equal(a, b) for a, b in zip(before, ours.parameters()))
            # unscaled after the step either way: by GradScaler, or (fused) by the step itself as
            # torch's fused kernels do; after unscale_ they were clipped too
            grad, ref_grad = next(ours.parameters()).grad, next(theirs.parameters()).grad
            torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
            if not unscale:     # the step got them scaled exactly when it unscales them itself
                expected = next(plain.parameters()).grad
                torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(seen[-1], expected * (scale if fused else 1), rtol=1e-5,
                                           atol=1e-6 * scale)
        assert scaler.get_scale() == ref_scaler.get_scale()
        # float32: the same formulas in another order, ~1e-7 relative per step
        _close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert float(opt.state[next(ours.parameters())]["step"]) == 5


def _embedding_pair(seed=4):
    torch.manual_seed(seed)
    emb = torch.nn.Embedding(10, 3, sparse=True, dtype=torch.float64)
    return emb, copy.deepcopy(emb)


@pytest.mark.parametrize("name,kwargs", [("Adagrad", {"lr": 0.1, "lr_decay": 0.01}), ("SGD", {"lr": 0.2})])
def test_sparse_embedding_gradients_match_torch_optim(name, kwargs):
    """Adagrad's spec updates lazily (only the gradient's rows), as torch.optim.Adagrad does
    with sparse gradients; SGD's standard update equals torch's sparse SGD."""
    ours, theirs = _embedding_pair()
    opt = getattr(ot, name)(ours.parameters(), **kwargs)
    ref = getattr(torch.optim, name)(theirs.parameters(), **kwargs)
    start = ours.weight.detach().clone()
    for batch in ([1, 3, 3, 7], [0, 1, 1, 2], [3, 7, 8]):
        idx = torch.tensor(batch)
        for m, o in ((ours, opt), (theirs, ref)):
            o.zero_grad()
            (m(idx) ** 2).sum().backward()
            assert m.weight.grad.is_sparse
            o.step()
        _close(ours, theirs)
    untouched = [4, 5, 6, 9]
    assert torch.equal(ours.weight[untouched], start[untouched])
    if name == "Adagrad":
        assert not opt.state[ours.weight]["sum"][untouched].any()


def test_sparse_gradient_standard_update_is_the_dense_update():
    """Adam's spec has no lazy update: a sparse gradient updates every row (zero gradient in
    the others), as torch.optim.Adam does with the densified gradient."""
    ours, theirs = _embedding_pair()
    opt = ot.Adam(ours.parameters(), lr=0.05, weight_decay=0.01)
    ref = torch.optim.Adam(theirs.parameters(), lr=0.05, weight_decay=0.01)
    for batch in ([1, 3, 3], [0, 9]):
        idx = torch.tensor(batch)
        for m, o in ((ours, opt), (theirs, ref)):
            o.zero_grad()
            (m(idx) ** 2).sum().backward()
        theirs.weight.grad = theirs.weight.grad.to_dense()
        opt.step()
        ref.step()
        _close(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("name", ["AdamW", "Lion", "LAMB"])
def test_master_weights_run_the_float32_update_and_round_once(name, dtype):
    """With master_weights the 16-bit parameter's update is the float32 update of a float32
    copy (states float32), given the same (16-bit) gradients; the parameter is that copy
    rounded. Checked exactly against the same optimizer on float32 parameters."""
    gen = torch.Generator().manual_seed(9)
    low = [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in [(6, 5), (5,)]]
    full = [p.detach().float().requires_grad_() for p in low]
    opt = getattr(ot, name)(low, lr=0.01, weight_decay=0.01, master_weights=True)
    ref = getattr(ot, name)(full, lr=0.01, weight_decay=0.01)
    for _ in range(4):
        for p, q in zip(low, full):
            g = torch.randn(p.shape, generator=gen).to(dtype)
            p.grad, q.grad = g, g.float()
        opt.step()
        ref.step()
        for p, q in zip(low, full):
            state = opt.state[p]
            assert state[ot.MASTER].dtype == torch.float32
            assert torch.equal(state[ot.MASTER], q.detach())
            assert torch.equal(p.detach(), q.detach().to(dtype))
            assert all(v.dtype == torch.float32 for k, v in state.items() if k != "step")
    # the float32 master copy and states survive a checkpoint (torch would cast them to 16 bits)
    resumed = [p.detach().clone().requires_grad_() for p in low]
    again = getattr(ot, name)(resumed, lr=0.01, weight_decay=0.01, master_weights=True)
    again.load_state_dict(opt.state_dict())
    assert torch.equal(again.state[resumed[0]][ot.MASTER], opt.state[low[0]][ot.MASTER])
    assert again.state[resumed[0]][ot.MASTER].dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_16_bit_parameters_without_master_weights(dtype):
    """16-bit parameters and states, computed in 16-bit NumPy arithmetic (ml_dtypes for
    bfloat16), against torch.optim.AdamW in float64 on the same gradients. lr 0.1 moves the
    weights ~10% per step, so a wrong term shows; the 16-bit roundings of weights and states
    (bfloat16: 2^-9 relative) over 3 steps stay within rtol/atol 3e-2."""
    gen = torch.Generator().manual_seed(10)
    low = [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in [(6, 5), (5,)]]
    wide = [p.detach().double().requires_grad_() for p in low]
    opt = ot.AdamW(low, lr=0.1, weight_decay=0.1)
    ref = torch.optim.AdamW(wide, lr=0.1, weight_decay=0.1)
    for _ in range(3):
        for p, q in zip(low, wide):
            g = torch.randn(p.shape, generator=gen).to(dtype)
            p.grad, q.grad = g, g.double()
        opt.step()
        ref.step()
    for p, q in zip(low, wide):
        assert p.dtype == dtype and opt.state[p]["exp_avg"].dtype == dtype
        np.testing.assert_allclose(p.detach().double().numpy(), q.detach().numpy(), rtol=3e-2, atol=3e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["f32", "f16", "bf16"])
def test_cuda_tensors_match_torch_optim(dtype):
    """CUDA tensors through DLPack (no copies) and the generated CUDA kernels, on a side
    stream made torch's current one; 16-bit parameters with float32 master weights. The
    float32 weights (or master copies) against torch.optim.AdamW in float32 on the same
    gradients: rtol 1e-5 (the same formulas in another order)."""
    pytest.importorskip("cupy")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    gen = torch.Generator(device="cuda").manual_seed(1)
    ours = [torch.randn(s, device="cuda", generator=gen).to(dtype).requires_grad_() for s in [(300, 70), (70,)]]
    theirs = [p.detach().float().clone().requires_grad_() for p in ours]
    pointers = [p.data_ptr() for p in ours]
    opt = ot.AdamW(ours, lr=0.01, weight_decay=0.1, master_weights=dtype != torch.float32)
    ref = torch.optim.AdamW(theirs, lr=0.01, weight_decay=0.1)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(4):
            for p, q in zip(ours, theirs):
                g = torch.randn(p.shape, device="cuda", generator=gen).to(dtype)
                p.grad, q.grad = g, g.float()
            opt.step()
            ref.step()
    torch.cuda.synchronize()
    assert [p.data_ptr() for p in ours] == pointers
    for p, q in zip(ours, theirs):
        master = opt.state[p][ot.MASTER] if dtype != torch.float32 else p
        torch.testing.assert_close(master.detach().float(), q.detach(), rtol=1e-5, atol=1e-6)


def test_bfloat16_tensors_in_the_params_style_api():
    """runtime/array_views.py views bfloat16 tensors through ml_dtypes, so optforge.optim takes
    them too (same 16-bit NumPy arithmetic as above): against its own float32 run on the
    same bfloat16 values, within bfloat16 rounding (2^-8 relative) after 2 steps."""
    from optforge import optim
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.bfloat16)
    w32 = w.float()
    opt, ref = optim.AdamW([w], lr=0.1), optim.AdamW([w32], lr=0.1)
    for g in ([0.3, -1.0, 2.0], [-0.5, 0.25, 1.0]):
        opt.step([torch.tensor(g, dtype=torch.bfloat16)])
        ref.step([torch.tensor(g)])
    assert opt.state_dict()["state"][0]["exp_avg"].dtype == torch.bfloat16
    torch.testing.assert_close(w.float(), w32, rtol=1e-2, atol=1e-2)
    assert not torch.equal(w.float(), torch.tensor([1.0, -2.0, 0.5]))
