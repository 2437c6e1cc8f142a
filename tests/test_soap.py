"""SOAP (specs/soap.toml): Adam in the eigenbasis of Shampoo's preconditioners, refreshed by
a sorted power iteration (eigh, qr, sort_rows, sort_cols), in every API family, against
pytorch_optimizer's SOAP and against a NumPy reference written here from the paper
(Vyas et al. 2025, Algorithms 3 and 4) with the reference implementation's conventions.

Tolerances:
- against the NumPy reference, float64: rtol 1e-10 of the largest weight. Both take the
  first eigenbases from the same LAPACK routine on the same matrices and compute the same
  products; they differ in the order of additions (measured ~1e-15).
- against pytorch_optimizer's SOAP, float64: rtol 1e-7. Its refresh rounds the power
  iteration's matrix to float32 before the QR (`power_iter.to(torch.float32)`), so its bases
  agree with a float64 QR to ~3e-8 after the first refresh (measured: weights 2.4e-9 apart
  after 10 steps); a wrong term is off by 1e-3 or more. Only square matrices and vectors
  are compared with it: a matrix with fewer columns than rows has a repeated zero
  eigenvalue at the first step, whose eigenvectors torch's LAPACK and NumPy's choose
  differently (specs/soap.toml, deviations).
"""
import numpy as np
import pytest

import optforge
from support import assert_close_to_largest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

STEPS = 10


def _lr(step):
    return 0.01 * (1 - 0.04 * step)       # a changing learning rate


def _problem(seed, shapes, dtype=np.float64, scale=1.0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[(scale * rng.standard_normal(s)).astype(dtype) for s in shapes] for _ in range(STEPS)]
    return weights, grads


def _reference(weights, grads, lrs, *, b1, b2, sb=None, eps=1e-8, freq=10, wd=0.01, correct_bias=True,
               rescale=1.0, clip=None):
    sb = b2 if sb is None else sb
    w = [x.astype(np.float64) for x in weights]
    states = [dict(m=np.zeros_like(x), v=np.zeros(x.shape[:1] + (x.size // x.shape[0],)) if x.ndim >= 2
                   else np.zeros_like(x), count=0) for x in w]
    for gs, lr in zip(grads, lrs):
        for i, (x, g) in enumerate(zip(w, gs)):
            s = states[i]
            g = g.astype(np.float64) * rescale
            if clip is not None:
                g = np.clip(g, -clip, clip)
            matrix = x.ndim >= 2
            G = g.reshape(x.shape[0], -1) if matrix else g
            if s["count"] == 0:
                if matrix:
                    s["L"] = (1 - sb) * (G @ G.T)
                    s["R"] = (1 - sb) * (G.T @ G)
                    # eigenvectors by descending eigenvalue, as the reference orders them
                    s["QL"] = np.linalg.eigh(s["L"])[1][:, ::-1]
                    s["QR"] = np.linalg.eigh(s["R"])[1][:, ::-1]
            else:
                k = s["count"]
                step_size = lr * (np.sqrt(1 - b2 ** k) / (1 - b1 ** k) if correct_bias else 1.0)
                m = s["m"] = b1 * s["m"] + (1 - b1) * g
                if matrix:
                    QL, QR = s["QL"], s["QR"]
                    s["v"] = b2 * s["v"] + (1 - b2) * (QL.T @ G @ QR) ** 2
                    n = QL @ ((QL.T @ m.reshape(G.shape) @ QR) / (np.sqrt(s["v"]) + eps)) @ QR.T
                else:
                    s["v"] = b2 * s["v"] + (1 - b2) * g ** 2
                    n = m / (np.sqrt(s["v"]) + eps)
                x = x - step_size * n.reshape(x.shape)
                x = x * (1 - lr * wd)
                if matrix:
                    s["L"] = sb * s["L"] + (1 - sb) * (G @ G.T)
                    s["R"] = sb * s["R"] + (1 - sb) * (G.T @ G)
                    if k % freq == 0:
                        for axis, (GG, key) in enumerate(((s["L"], "QL"), (s["R"], "QR"))):
                            P = GG @ s[key]
                            estimated = np.sum(s[key] * P, axis=0)       # diag(Q^T GG Q)
                            order = np.argsort(-estimated, kind="stable")
                            s["v"] = np.take(s["v"], order, axis=axis)
                            s[key] = np.linalg.qr(P[:, order])[0]
                w[i] = x
            s["count"] += 1
    return w


def _close(ours, expected, rtol):
    assert_close_to_largest(ours, expected, rtol)


SQUARE = [(4, 4), (6, 6), (5,)]
RECTANGULAR = [(4, 6), (6, 3), (3, 2, 2), (5,)]


@pytest.mark.parametrize("settings", [dict(betas=(0.9, 0.95), weight_decay=0.01, precondition_frequency=3),
                                      dict(betas=(0.95, 0.99), weight_decay=0.0, precondition_frequency=2,
                                           shampoo_beta=0.9, correct_bias=False)])
def test_torch_soap_equals_pytorch_optimizer_in_float64(settings):
    weights, grads = _problem(1, SQUARE)
    ours = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = optforge.torch.SOAP(ours, lr=_lr(0), **settings)
    peer = pytorch_optimizer.SOAP(theirs, lr=_lr(0), **settings)
    for step, gs in enumerate(grads):
        for group in (opt.param_groups[0], peer.param_groups[0]):
            group["lr"] = _lr(step)
        for p, q, g in zip(ours, theirs, gs):
            p.grad = torch.from_numpy(g.copy())
            q.grad = torch.from_numpy(g.copy())
        opt.step()
        peer.step()
    assert not any(np.array_equal(p.detach().numpy(), w) for p, w in zip(ours, weights))
    _close([p.detach().numpy() for p in ours], [q.detach().numpy() for q in theirs], 1e-7)
    # the peer within its float32 QR of the reference written here, so the two checks agree
    b1, b2 = settings["betas"]
    _close([q.detach().numpy() for q in theirs],
           _reference(weights, grads, [_lr(k) for k in range(STEPS)], b1=b1, b2=b2, sb=settings.get("shampoo_beta"),
                      freq=settings["precondition_frequency"], wd=settings["weight_decay"],
                      correct_bias=settings.get("correct_bias", True)), 1e-7)


def test_mxnet_style_soap_equals_the_paper_reference():
    """Rectangular matrices and a tensor of three axes (its matrix view), rescale_grad != 1,
    clip_gradient (values beyond it), begin_num_update > 0 (the steps count from the
    parameter's own first one), a changing lr, wd > 0."""
    weights, grads = _problem(2, RECTANGULAR, scale=3.0)
    opt = optforge.SOAP(learning_rate=_lr(0), beta1=0.9, beta2=0.95, precondition_frequency=3, wd=0.02,
                        rescale_grad=0.5, clip_gradient=1.0, begin_num_update=5)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    for step, gs in enumerate(grads):
        opt.lr = _lr(step)
        opt.update(list(range(len(current))), current, [g.copy() for g in gs], states)
    assert any(np.abs(g * 0.5).max() > 1.0 for gs in grads for g in gs)      # the clip bound is reached
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], b1=0.9, b2=0.95, freq=3, wd=0.02,
                               rescale=0.5, clip=1.0), 1e-10)


def test_params_style_soap_equals_the_paper_reference():
    weights, grads = _problem(3, RECTANGULAR)
    current = [w.copy() for w in weights]
    opt = optforge.optim.SOAP(current, lr=_lr(0), betas=(0.9, 0.99), shampoo_beta=0.8, precondition_frequency=2,
                              weight_decay=0.05, correct_bias=False)
    for step, gs in enumerate(grads):
        opt.param_groups[0]["lr"] = _lr(step)
        opt.step([g.copy() for g in gs])
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], b1=0.9, b2=0.99, sb=0.8, freq=2,
                               wd=0.05, correct_bias=False), 1e-10)


def test_float32_through_the_native_stage_kernels_stays_near_float64(monkeypatch):
    """float32 weights through the native stage driver (no fallback): within 1e-4 of the
    float64 reference over 10 steps (float32 roundings through the eigenbases and Adam's
    division; measured ~1e-6); a wrong term is off by 1e-3 or more."""
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "native")
    weights, grads = _problem(4, SQUARE, np.float32)
    opt = optforge.SOAP(learning_rate=_lr(0), beta1=0.9, beta2=0.95, precondition_frequency=3)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    for step, gs in enumerate(grads):
        opt.lr = _lr(step)
        opt.update(list(range(len(current))), current, gs, states)
    assert all(w.dtype == np.float32 for w in current)
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], b1=0.9, b2=0.95, freq=3), 1e-4)


def test_the_first_step_gathers_statistics_and_leaves_the_weight():
    weights, grads = _problem(5, RECTANGULAR)
    current = [w.copy() for w in weights]
    opt = optforge.optim.SOAP(current, lr=0.01)
    opt.step(grads[0])
    for a, b in zip(current, weights):
        np.testing.assert_array_equal(a, b)
    state = opt.state_dict()["state"][0]
    assert np.abs(state["L"]).max() > 0 and state["count"] == 1
    q = np.asarray(state["Q_L"])
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)       # an orthonormal basis
