"""ADOPT, AdEMAMix, C-AdamW, Schedule-Free AdamW, Adan, NovoGrad (MXNet conventions) and the torch flavor's ASGD and SparseAdam
against their hand-written references (tests/reference/papers.py, torch_optim.py) under the
common schedule of support.check_against_reference: 6 steps on two parameters of different
shapes, signed data beyond the clip bound, wd > 0 (SparseAdam: 0, it has none),
rescale_grad = 0.7, a learning rate changed between steps, begin_num_update = 3, float32
and float64 (tolerances in support.py). ASGD and SparseAdam are also compared with
torch.optim.ASGD / SparseAdam themselves when torch is installed.
"""
import copy

import numpy as np
import pytest

import optforge
from reference import papers, torch_optim
from support import assert_close, check_against_reference, signed

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
CLIPS = pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])

PAPER_CASES = [
    ("adopt", {}), ("adopt", {"nesterov": True}), ("adopt", {"use_clipping": False, "beta2": 0.9}),
    ("ademamix", {}), ("ademamix", {"warmup": 6.0}),                  # t = 4..9 crosses T = 6
    ("ademamix", {"warmup": 20.0, "alpha": 2.0, "beta3": 0.999}),
    ("cadamw", {}), ("cadamw", {"mask_epsilon": 1e-8, "beta1": 0.5}),
    ("schedulefreeadamw", {}), ("schedulefreeadamw", {"warmup_steps": 6, "r": 0.5, "decay_at_z": True}),
    ("schedulefreeadamw", {"weight_lr_power": 0.0, "beta1": 0.5}),
    # the state's first update is not step 1 here (begin_num_update = 3): its own branch must run
    ("adan", {}), ("adan", {"maximize": True}), ("novograd", {}), ("novograd", {"beta1": 0.5}),
]
TORCH_CASES = [
    ("asgd", {}), ("asgd", {"t0": 5.0, "lambd": 0.05, "alpha": 0.5}),   # averaging from t = 8 (t runs 4..9)
    ("asgd", {"maximize": True, "lambd": 0.0}),
    ("sparseadam", {"wd": 0.0}), ("sparseadam", {"wd": 0.0, "maximize": True, "beta2": 0.9}),
]


def keeping_its_own_state(rule, flavor, name, hp):
    """A reference (dict state, empty before the first step) in check_against_reference's
    calling convention: it keeps its own state per parameter and returns the parts in the
    optimizer's state order, so nothing of the optimizer's state reaches the reference."""
    settings = {k: v for k, v in hp.items() if k != "wd"}
    names = optforge.create(name, flavor=flavor, **settings)._present_states()

    class Reference:
        def __init__(self):
            self.states = {}

        def __call__(self, w, g, s, *, index, **kwargs):
            w, new = rule(w, g, self.states.get(index, {}), **kwargs)
            self.states[index] = new
            parts = tuple(new[n] for n in names)
            return w, parts if len(parts) > 1 else parts[0]
    return Reference


@CLIPS
@DTYPES
@pytest.mark.parametrize("name,hp", PAPER_CASES, ids=[f"{n}{hp}" for n, hp in PAPER_CASES])
def test_matches_the_paper(name, hp, dtype, clip):
    check_against_reference("mxnet2", name, hp, keeping_its_own_state(papers.RULES[name], "mxnet2", name, hp),
                            dtype, clip)


@CLIPS
@DTYPES
@pytest.mark.parametrize("name,hp", TORCH_CASES, ids=[f"{n}{hp}" for n, hp in TORCH_CASES])
def test_torch_flavor_matches_the_documented_algorithm(name, hp, dtype, clip):
    check_against_reference("torch", name, hp, keeping_its_own_state(torch_optim.RULES[name], "torch", name, hp),
                            dtype, clip)


@pytest.mark.parametrize("begin", [0, 5])
def test_adopt_first_step_only_initialises_the_second_moment(begin):
    """The state's first update, whatever the count (begin_num_update), sets v = g**2 and
    moves nothing else; the second one divides by sqrt(v), not by epsilon."""
    opt = optforge.create("adopt", learning_rate=0.1, wd=0.0, begin_num_update=begin, use_clipping=False,
                          beta1=0.5)
    w = np.array([1.0, -2.0, 3.0])
    state = opt.create_state(0, w)
    opt.update(0, w, np.array([0.5, -4.0, 0.0]), state)
    np.testing.assert_array_equal(w, [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(state[0], 0.0)
    np.testing.assert_array_equal(state[1], [0.25, 16.0, 0.0])
    opt.update(0, w, np.array([0.5, -4.0, 0.0]), state)
    # m = (1 - beta1) * g / sqrt(v) = 0.5 * (1, -1, 0) (0 / max(0, eps) = 0); w -= lr * m
    np.testing.assert_allclose(w, [1.0 - 0.05, -2.0 + 0.05, 3.0], rtol=0, atol=1e-15)


@pytest.mark.parametrize("begin", [0, 5])
def test_novograd_and_adan_first_update_with_begin_num_update(begin):
    """The first update of a fresh state takes the first-step branch (v = ||g||^2, m without
    the decayed old m; Adan's first gradient difference 0), also when the count starts at begin + 1."""
    g = np.array([3.0, -4.0])
    opt = optforge.create("novograd", learning_rate=0.1, wd=0.0, begin_num_update=begin)
    w = np.array([1.0, 1.0])
    state = opt.create_state(0, w)
    opt.update(0, w, g, state)
    assert float(state[1]) == 25.0                         # ||g||^2
    np.testing.assert_allclose(state[0], g / (5.0 + 1e-8), rtol=1e-15)
    opt = optforge.create("adan", learning_rate=0.1, wd=0.0, begin_num_update=begin)
    w = np.array([1.0, 1.0])
    state = opt.create_state(0, w)
    opt.update(0, w, g, state)
    np.testing.assert_array_equal(state[1], 0.0)           # the average of differences: g - g = 0


def test_cadamw_masks_the_elements_whose_step_disagrees_with_the_gradient():
    # second step: the momentum of the first gradient dominates where the gradient flips
    opt = optforge.create("cadamw", learning_rate=0.1, wd=0.0, beta1=0.9, epsilon=0.0, mask_epsilon=1.0)
    w = np.zeros(4)
    state = opt.create_state(0, w)
    opt.update(0, w, np.array([1.0, 1.0, 1.0, 1.0]), state)
    first = w.copy()
    np.testing.assert_allclose(first, -0.1 * 4 / 5)         # all agree: scale 4 / (4 + 1)
    opt.update(0, w, np.array([1.0, 1.0, -0.01, -0.01]), state)
    assert np.all(w[2:] == first[2:])                       # masked: unchanged
    assert np.all(w[:2] < first[:2])                        # kept, scaled by 4 / (2 + 1)


def test_sparseadam_updates_only_the_gradient_rows():
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        opt = optforge.create("sparseadam", flavor="torch", wd=0.0, learning_rate=0.05)
        w = signed(rng, (6, 3), 1.5, dtype)
        state = opt.create_state(0, w)
        expected_w, expected_s = w.copy(), {}
        for t, rows in enumerate([[0, 4], [4, 5], [1], [0, 2, 5]], start=1):
            dense = np.zeros_like(w)
            dense[rows] = signed(rng, (len(rows), 3), 2.0, dtype)
            grad = optforge.RowSparse(indices=rows, values=dense[rows], shape=w.shape)
            expected_w, expected_s = torch_optim.sparseadam(expected_w, dense, expected_s, lr=0.05, wd=0.0, t=t,
                                                            rows=np.array(rows))
            opt.update(0, w, grad, state)
            assert_close(w, expected_w, dtype, f"weight after step {t}")
            assert_close(state[0], expected_s["exp_avg"], dtype, f"exp_avg after step {t}")
            assert_close(state[1], expected_s["exp_avg_sq"], dtype, f"exp_avg_sq after step {t}")
        untouched = 3                                        # row 3 never had a gradient
        assert np.all(state[0][untouched] == 0) and np.all(state[1][untouched] == 0)


def test_sparseadam_rejects_weight_decay_before_changing_anything():
    opt = optforge.create("sparseadam", flavor="torch", wd=0.01)
    w = np.ones((2, 2))
    state = opt.create_state(0, w)
    with pytest.raises(ValueError, match="wd == 0"):
        opt.update(0, w, np.ones((2, 2)), state)
    np.testing.assert_array_equal(w, 1.0)
    assert np.all(state[0] == 0) and opt.num_update == 0
    with pytest.raises(ValueError, match="wd == 0"):
        optforge.optim.SparseAdam([np.ones(3)], weight_decay=0.01)


def test_ademamix_warmup_needs_a_positive_beta1():
    opt = optforge.create("ademamix", beta1=0.0, warmup=10.0)
    w = np.ones(3)
    with pytest.raises(ValueError, match="beta1 > 0"):
        opt.create_state(0, w)           # refused before any state exists
    state = optforge.create("ademamix", beta1=0.9, warmup=10.0).create_state(0, w)
    with pytest.raises(ValueError, match="beta1 > 0"):
        opt.update(0, w, np.ones(3), state)
    np.testing.assert_array_equal(w, 1.0)
    assert opt.num_update == 0


def test_new_optimizers_in_every_api_family(capsys):
    from optforge.cli import main
    main(["list"])
    listed = capsys.readouterr().out
    for name, flavor, cls in [("adopt", "mxnet2", "ADOPT"), ("ademamix", "mxnet2", "AdEMAMix"),
                              ("cadamw", "mxnet2", "CAdamW"), ("asgd", "torch", "ASGD"),
                              ("sparseadam", "torch", "SparseAdam"),
                              ("schedulefreeadamw", "mxnet2", "ScheduleFreeAdamW")]:
        assert type(optforge.create(name, flavor=flavor)).__name__ == cls
        assert name in listed.lower()
        params_style = getattr(optforge.optim, cls)
        w = np.ones(4)
        kwargs = {} if name != "sparseadam" else {"weight_decay": 0.0}
        opt = params_style([w], lr=0.01, **kwargs)
        for _ in range(3):                                   # ADOPT's first step moves nothing
            opt.step([np.full(4, 0.5)])
        assert np.all(w < 1.0), name


def _torch():
    return pytest.importorskip("torch")


# torch.optim.ASGD keeps eta, mu and step as 0-d tensors of torch's default dtype; with the
# default float64 (set here) everything is float64 on both sides: rtol 1e-10 (support.py).
# With float32 scalars eta would carry 6e-8 relative rounding, which cancellation in small
# weights turns into 1e-6. SparseAdam computes in the parameter's dtype: rtol 1e-10 too.
@pytest.fixture
def float64_scalars():
    torch = _torch()
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def test_asgd_matches_torch_optim(float64_scalars):
    torch = _torch()
    gen = torch.Generator().manual_seed(7)
    for kwargs in [{"lambd": 0.01, "t0": 3.0, "weight_decay": 0.02, "alpha": 0.6},
                   {"maximize": True, "weight_decay": 0.01}]:
        ours = [torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)]
        theirs = [p.clone().requires_grad_(True) for p in ours]
        opt = optforge.optim.ASGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.03}], lr=0.02, **kwargs)
        ref = torch.optim.ASGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.03}], lr=0.02,
                               foreach=False, **kwargs)
        for step in range(1, 9):
            if step in (3, 6):                                # a changing learning rate
                for group in opt.param_groups + ref.param_groups:
                    group["lr"] *= 1.7 if step == 3 else 0.4
            grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) * 2 for p in ours]
            for p, g in zip(theirs, grads):
                p.grad = g.clone()
            ref.step()
            opt.step(grads)
            for k, (a, b) in enumerate(zip(ours, theirs)):
                np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12,
                                           err_msg=f"{kwargs} weight {k} after step {step}")
                saved = opt.state_dict()["state"][k]
                np.testing.assert_allclose(np.asarray(saved["ax"]), ref.state[b]["ax"].numpy(), rtol=1e-10,
                                           atol=1e-12)
                for scalar in ("eta", "mu", "step"):
                    assert float(saved[scalar]) == pytest.approx(float(ref.state[b][scalar]), rel=1e-12)
        # our state_dict loads into torch.optim.ASGD and continues identically
        fresh = [p.detach().clone().requires_grad_(True) for p in ours]
        other = torch.optim.ASGD([{"params": fresh[:1]}, {"params": fresh[1:]}], lr=0.02, foreach=False, **kwargs)
        other.load_state_dict(copy.deepcopy(opt.state_dict()))
        grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in ours]
        for p, g in zip(fresh, grads):
            p.grad = g.clone()
        other.step()
        opt.step(grads)
        for a, b in zip(ours, fresh):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sparseadam_matches_torch_optim_on_sparse_gradients():
    torch = _torch()
    gen = torch.Generator().manual_seed(11)
    for kwargs in [{}, {"betas": (0.8, 0.95), "eps": 1e-6, "maximize": True}]:
        w = torch.randn(7, 3, generator=gen, dtype=torch.float64)
        theirs = w.clone().requires_grad_(True)
        ref = torch.optim.SparseAdam([theirs], lr=0.01, **kwargs)
        betas = kwargs.get("betas", (0.9, 0.999))
        opt = optforge.create("sparseadam", flavor="torch", learning_rate=0.01, wd=0.0, beta1=betas[0],
                              beta2=betas[1], epsilon=kwargs.get("eps", 1e-8),
                              maximize=kwargs.get("maximize", False))
        ours = w.numpy().copy()
        state = opt.create_state(0, ours)
        for step, rows in enumerate([[1, 3], [3, 6], [0, 1, 2], [5], [1, 3, 6]], start=1):
            if step == 4:
                opt.set_learning_rate(0.02)
                ref.param_groups[0]["lr"] = 0.02
            values = torch.randn(len(rows), 3, generator=gen, dtype=torch.float64) * 2
            index = torch.tensor(rows).repeat_interleave(3)
            cols = torch.arange(3).repeat(len(rows))
            theirs.grad = torch.sparse_coo_tensor(torch.stack([index, cols]), values.reshape(-1), (7, 3),
                                                  check_invariants=True)
            ref.step()
            opt.update(0, ours, optforge.RowSparse(indices=rows, values=values.numpy(), shape=(7, 3)), state)
            np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{kwargs} after step {step}")
            np.testing.assert_allclose(state[0], ref.state[theirs]["exp_avg"].to_dense().numpy(), rtol=1e-10,
                                       atol=1e-12)
