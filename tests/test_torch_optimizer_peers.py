"""optforge.torch's AdaBound and AggMo against torch-optimizer's and SM3 against
pytorch_optimizer's (the peer implementations the specs cite), over 6 steps of three parameters with wd > 0 and the learning rate
changed between steps (AdaBound's bounds follow lr / initial_lr), and a second run that
resumes from a state dict.

Tolerance: both sides compute in float32 with a different order of operations; each step
rounds a few float32 ulps and the differences carry over the steps: rtol 1e-5, atol 1e-6
on weights of order 1 (a wrong term moves them by more than 1e-4 here).
"""
import copy

import numpy as np
import pytest

import optforge

torch = pytest.importorskip("torch")
torch_optimizer = pytest.importorskip("torch_optimizer")

SHAPES = [(7,), (3, 5), (2, 3, 4)]
LRS = (0.01, 0.03, 0.005)
RTOL, ATOL = 1e-5, 1e-6

CASES = [
    ("AdaBound", "AdaBound", {"gamma": 0.5, "final_lr": 0.05}),
    ("AdaBound", "AdaBound", {"gamma": 0.5, "amsbound": True, "betas": (0.8, 0.99)}),
    ("AggMo", "AggMo", {}),
    ("AggMo", "AggMo", {"betas": (0.0, 0.5, 0.8)}),
]


@pytest.mark.parametrize("ours, theirs, settings", CASES, ids=[f"{a}{s}" for a, _, s in CASES])
def test_matches_torch_optimizer(ours, theirs, settings):
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    sides = []
    for cls in (getattr(optforge.torch, ours), getattr(torch_optimizer, theirs)):
        params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
        sides.append((params, cls(params, lr=LRS[0], weight_decay=0.01, **settings)))
    for step in range(6):
        grads = [rng.standard_normal(shape).astype(np.float32) * 2 for shape in SHAPES]
        for params, opt in sides:
            for p, g in zip(params, grads):
                p.grad = torch.from_numpy(g.copy())
            opt.param_groups[0]["lr"] = LRS[step % 3]
            opt.step()
        for a, b in zip(sides[0][0], sides[1][0]):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=RTOL, atol=ATOL)
    # the state dict carries the run on: a fresh optimizer loaded from it steps as the first
    params = [torch.nn.Parameter(p.detach().clone()) for p in sides[0][0]]
    resumed = getattr(optforge.torch, ours)(params, lr=LRS[0], weight_decay=0.01, **settings)
    # (a copy, as torch.save and torch.load give: torch's load_state_dict keeps the tensors)
    resumed.load_state_dict(copy.deepcopy(sides[0][1].state_dict()))
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    for group in ((params, resumed), sides[0]):
        for p, g in zip(group[0], grads):
            p.grad = torch.from_numpy(g.copy())
        group[1].step()
    for a, b in zip(params, sides[0][0]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("settings", [{}, {"beta": 0.9, "momentum": 0.5, "eps": 1e-8}],
                         ids=["sm3-ii", "ema-momentum"])
def test_sm3_matches_pytorch_optimizer(settings):
    """optforge.torch.SM3 against pytorch_optimizer's SM3 on matrices and a vector (where both
    keep the same accumulators: a row and a column per matrix, one per element of a vector),
    6 steps with the lr changed between them; same tolerance."""
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    rng = np.random.default_rng(9)
    shapes = [(6, 4), (7,), (3, 9)]
    weights = [np.asarray(rng.standard_normal(shape), np.float32) for shape in shapes]
    sides = []
    for cls in (optforge.torch.SM3, pytorch_optimizer.SM3):
        params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
        sides.append((params, cls(params, lr=LRS[0], foreach=False, **settings)))
    for step in range(6):
        grads = [np.asarray(rng.standard_normal(shape) * 2, np.float32) for shape in shapes]
        for params, opt in sides:
            for p, g in zip(params, grads):
                p.grad = torch.from_numpy(g.copy())
            opt.param_groups[0]["lr"] = LRS[step % 3]
            opt.step()
        for a, b in zip(sides[0][0], sides[1][0]):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=RTOL, atol=ATOL)
