"""Shampoo (specs/shampoo.toml): square per-axis preconditioners, inverse roots refreshed
every update_freq steps, in every API family, against torch-optimizer's Shampoo and against
a NumPy reference written here from the paper (Gupta, Koren and Singer 2018, Algorithm 1)
with torch-optimizer's conventions (the right preconditioner accumulates the
left-preconditioned gradient; the momentum buffer is the last preconditioned step).

Tolerances: float64 runs agree to rtol 1e-10 of the largest weight. The references take
inverse roots through an SVD, optforge through the symmetric eigendecomposition; the two
differ by about machine epsilon times the condition number of the preconditioner (up to
~1e3 here, with epsilon = 0.1 and several steps), and the steps feed back through the
momentum buffer: measured at most 4e-13 over 10 steps. A wrong term (a missing epsilon * I,
a stale root, the wrong side) is off by 1e-2 or more.
"""
import numpy as np
import pytest

import optforge
from support import assert_close_to_largest

torch = pytest.importorskip("torch")
torch_optimizer = pytest.importorskip("torch_optimizer")

SHAPES = [(5, 3), (4, 6), (7,)]
STEPS = 10
RTOL = 1e-10


def _lr(step):
    return 0.05 * (1 - 0.05 * step)       # a changing learning rate


def _problem(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(3 * rng.standard_normal(s)).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def _matrix_power(a, power):
    """a^power through the SVD, as the paper's code and torch-optimizer take it."""
    u, s, vt = np.linalg.svd(a)
    return u @ np.diag(s ** power) @ vt


def _reference(weights, grads, lrs, *, momentum=0.0, wd=0.0, eps=1e-4, freq=1, rescale=1.0, clip=None):
    w = [x.astype(np.float64) for x in weights]
    state = []
    for x in w:
        rows, cols = x.shape[0], x.size // x.shape[0]
        state.append({"L": eps * np.eye(rows), "R": eps * np.eye(cols), "Linv": np.zeros((rows, rows)),
                      "Rinv": np.zeros((cols, cols)), "buf": None, "count": 0})
    for gs, lr in zip(grads, lrs):
        for i, (x, g) in enumerate(zip(w, gs)):
            s = state[i]
            g = g.astype(np.float64) * rescale
            if clip is not None:
                g = np.clip(g, -clip, clip)
            if momentum > 0:
                buf = g if s["count"] == 0 else s["buf"]
                g = (1 - momentum) * g + momentum * buf
            g = (g + wd * x).reshape(x.shape[0], -1)
            refresh = s["count"] % freq == 0
            if x.ndim >= 2:
                s["L"] = s["L"] + g @ g.T
                if refresh:
                    s["Linv"] = _matrix_power(s["L"], -1 / 2)
                u = s["Linv"] @ g
                s["R"] = s["R"] + u.T @ u
                if refresh:
                    s["Rinv"] = _matrix_power(s["R"], -1 / 2)
                u = u @ s["Rinv"]
            else:
                s["L"] = s["L"] + g @ g.T
                if refresh:
                    s["Linv"] = _matrix_power(s["L"], -1.0)
                u = (g.T @ s["Linv"]).T
            u = u.reshape(x.shape)
            s["buf"] = u
            s["count"] += 1
            w[i] = x - lr * u
    return w


def _close(ours, expected, rtol=RTOL):
    assert_close_to_largest(ours, expected, rtol)


SETTINGS = [dict(momentum=0.5, weight_decay=0.01, eps=0.1, update_freq=2),
            dict(momentum=0.0, weight_decay=0.0, eps=0.2, update_freq=1),
            dict(momentum=0.9, weight_decay=0.05, eps=0.1, update_freq=3)]


@pytest.mark.parametrize("settings", SETTINGS)
def test_torch_shampoo_equals_torch_optimizer_in_float64(settings):
    weights, grads = _problem(1)
    ours = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = optforge.torch.Shampoo(ours, lr=_lr(0), **settings)
    peer_settings = dict(settings, epsilon=settings["eps"])
    del peer_settings["eps"]
    peer = torch_optimizer.Shampoo(theirs, lr=_lr(0), **peer_settings)
    for step, gs in enumerate(grads):
        for group in (opt.param_groups[0], peer.param_groups[0]):
            group["lr"] = _lr(step)
        for p, q, g in zip(ours, theirs, gs):
            p.grad = torch.from_numpy(g.copy())
            q.grad = torch.from_numpy(g.copy())     # the peer rewrites its gradients in place
        opt.step()
        peer.step()
    _close([p.detach().numpy() for p in ours], [q.detach().numpy() for q in theirs])
    # and the peer equals the reference written here from the paper (so the two checks agree)
    _close([q.detach().numpy() for q in theirs],
           _reference(weights, grads, [_lr(k) for k in range(STEPS)], momentum=settings["momentum"],
                      wd=settings["weight_decay"], eps=settings["eps"], freq=settings["update_freq"]))


def test_mxnet_style_shampoo_equals_the_paper_reference():
    """rescale_grad != 1, clip_gradient (values beyond it), begin_num_update > 0 (the refresh
    steps count the parameter's own steps, from 0), a changing lr, wd > 0, momentum."""
    weights, grads = _problem(2)
    opt = optforge.Shampoo(learning_rate=_lr(0), momentum=0.5, epsilon=0.1, update_freq=2, wd=0.02,
                           rescale_grad=0.5, clip_gradient=2.0, begin_num_update=5)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    for step, gs in enumerate(grads):
        opt.lr = _lr(step)
        opt.update(list(range(len(current))), current, [g.copy() for g in gs], states)
    assert any(np.abs(g * 0.5).max() > 2.0 for gs in grads for g in gs)      # the clip bound is reached
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], momentum=0.5, wd=0.02, eps=0.1,
                               freq=2, rescale=0.5, clip=2.0))


def test_params_style_shampoo_equals_the_paper_reference():
    weights, grads = _problem(3)
    current = [w.copy() for w in weights]
    opt = optforge.optim.Shampoo(current, lr=_lr(0), momentum=0.9, eps=0.1, update_freq=3, weight_decay=0.01)
    for step, gs in enumerate(grads):
        opt.param_groups[0]["lr"] = _lr(step)
        opt.step([g.copy() for g in gs])
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], momentum=0.9, wd=0.01, eps=0.1,
                               freq=3))


def test_float32_through_the_native_stage_kernels_stays_near_float64(monkeypatch):
    """float32 weights through the native stage driver (OPTFORGE_CPU_BACKEND=native: no
    fallback): the float32 roundings, amplified by the preconditioners' condition number
    (~1e3), keep it within 1e-4 of the float64 reference over 10 steps (measured ~1e-5);
    a wrong term is off by 1e-2 or more."""
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "native")
    weights, grads = _problem(4, np.float32)
    opt = optforge.Shampoo(learning_rate=_lr(0), momentum=0.5, epsilon=0.1, update_freq=2, wd=0.01)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    for step, gs in enumerate(grads):
        opt.lr = _lr(step)
        opt.update(list(range(len(current))), current, gs, states)
    assert all(w.dtype == np.float32 for w in current)
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], momentum=0.5, wd=0.01, eps=0.1,
                               freq=2), rtol=1e-4)


def test_a_tensor_of_three_axes_is_preconditioned_as_its_matrix_view():
    """The stated reshape rule: (4, 3, 2) is the (4, 6) matrix of its first axis against the rest."""
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((4, 3, 2))
    grads = [3 * rng.standard_normal((4, 3, 2)) for _ in range(4)]
    current = weight.copy()
    opt = optforge.optim.Shampoo([current], lr=0.05, eps=0.1, weight_decay=0.01)
    for g in grads:
        opt.step([g.copy()])
    state = opt.state_dict()["state"][0]
    assert np.shape(state["L"]) == (4, 4) and np.shape(state["R"]) == (6, 6)
    (expected,) = _reference([weight.reshape(4, 6)], [[g.reshape(4, 6)] for g in grads], [0.05] * 4, wd=0.01, eps=0.1)
    _close([current.reshape(4, 6)], [expected])


def test_square_states_start_as_epsilon_times_the_identity():
    opt = optforge.Shampoo(epsilon=0.25)
    L, R, L_inv, R_inv, count = opt.create_state(0, np.zeros((3, 2, 2)))
    np.testing.assert_array_equal(L, 0.25 * np.eye(3))
    np.testing.assert_array_equal(R, 0.25 * np.eye(4))
    assert not L_inv.any() and not R_inv.any() and count == 0
    (L, L_inv, count) = opt.create_state(1, np.zeros(5))
    assert L.shape == (5, 5) and L_inv.shape == (5, 5)


def test_a_0d_parameter_is_refused_with_the_rule_broken():
    with pytest.raises(ValueError, match=r"requires ndim >= 1; parameter 0 of shape \(\) has ndim=0"):
        optforge.optim.Shampoo([np.array(1.0)], lr=0.1)
    opt = optforge.Shampoo()
    with pytest.raises(ValueError, match=r"requires ndim >= 1"):
        opt.create_state(0, np.array(1.0))
