"""optforge.optim against torch.optim itself, on torch tensors (viewed without copies).

Skipped when torch is not installed; the hand-written references in test_optim.py
are the real tests. float64, 8 steps: agreement to rtol 1e-10 (the same formulas in a
different operation order; see support.py), except NAdam: torch keeps mu_product as a
float32 0-d tensor, so its schedule terms carry float32 rounding (about 6e-8 relative,
scaled by lr in the weights): rtol 1e-7 there."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from optforge import optim  # noqa: E402

CASES = [
    ("Adam", {"betas": (0.8, 0.99), "weight_decay": 0.02, "amsgrad": True}),
    ("AdamW", {"weight_decay": 0.05}),
    ("Adamax", {"weight_decay": 0.01, "maximize": True}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"momentum": 0.5, "dampening": 0.3}),
    ("RMSprop", {"centered": True, "momentum": 0.3, "weight_decay": 0.01}),
    ("Adagrad", {"lr_decay": 0.05, "weight_decay": 0.01}),
    ("Adadelta", {"rho": 0.8, "weight_decay": 0.01}),
    ("NAdam", {"weight_decay": 0.01, "decoupled_weight_decay": True}),
    ("RAdam", {"weight_decay": 0.02}),
    ("Rprop", {"etas": (0.4, 1.3)}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}{k}" for n, k in CASES])
def test_matches_torch_optim(name, kwargs):
    gen = torch.Generator().manual_seed(3)
    ours = [torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)]
    theirs = [p.clone().requires_grad_(True) for p in ours]
    lr = 0.5 if name == "Adadelta" else 0.01
    opt = getattr(optim, name)([{"params": ours[:1]}, {"params": ours[1:], "lr": 2 * lr}], lr=lr, **kwargs)
    ref = getattr(torch.optim, name)([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 2 * lr}], lr=lr,
                                     foreach=False, **kwargs)
    tol = dict(rtol=1e-7, atol=1e-9) if name == "NAdam" else dict(rtol=1e-10, atol=1e-12)

    def step_both(reference, reference_params):
        grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in ours]
        for p, g in zip(reference_params, grads):
            p.grad = g.clone()
        reference.step()
        opt.step(grads)
        for a, b in zip(ours, reference_params):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol)

    for _ in range(8):
        step_both(ref, theirs)
    # our state_dict loads into torch.optim and continues identically
    fresh = [p.detach().clone().requires_grad_(True) for p in ours]
    other = getattr(torch.optim, name)([{"params": fresh[:1]}, {"params": fresh[1:]}], lr=lr, foreach=False,
                                       **kwargs)
    other.load_state_dict(copy.deepcopy(opt.state_dict()))   # live tensors, as torch's own
    step_both(other, fresh)


def test_torch_tensors_are_updated_in_place_and_grads_read_from_dot_grad():
    w = torch.ones(3, requires_grad=True)
    storage = w.data_ptr()
    opt = optim.SGD([w], lr=0.5)
    w.grad = torch.ones(3)
    opt.step()
    assert w.data_ptr() == storage
    assert torch.equal(w.detach(), torch.full((3,), 0.5))
    opt.zero_grad()
    assert w.grad is None
