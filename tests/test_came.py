"""CAME (specs/came.toml) against its authors' implementation, came-pytorch's `CAME`, in
all three API families, and the native CPU stage kernels against the generated NumPy `step`.

Every peer comparison runs 8 steps in float64 on parameters of ranks 0 to 4 (a scalar and a
vector keep came-pytorch's unfactored second moment; 2-D, 3-D and 4-D ones are factored
along their last two axes, the leading ones a batch), with weight decay > 0 and the
learning rate changed between steps; one setting leaves the RMS clip engaged (the default
threshold 1: the first steps' updates are far above it), the other has a threshold no update
reaches, other betas and epsilons.

Tolerance against came-pytorch: rtol 1e-10, atol 1e-12 (support.py's float64 bound). Both
sides compute the same formulas in another order (torch multiplies rsqrt(row / mean(row))
by rsqrt(col), the spec divides by the product of the square roots; weight decay and the
step are one expression here, two in-place adds there), so each step differs by a few ulps
(observed about 1e-14 relative after 8 steps); a wrong term (a missing epsilon, weight decay
not scaled by lr, the mean over the wrong axis, a bias correction) moves the weights by
1e-4 or more here.

Native stage kernels against `step` in float32: no tolerance (assert_array_equal). They
run the same three-address code in the same order with the same NumPy reductions between
the stages (tests/test_matrix_native.py says why that gives the same bits).
"""
import numpy as np
import pytest

import optforge
from support import count_stage_runs

torch = pytest.importorskip("torch")
came_pytorch = pytest.importorskip("came_pytorch")

SHAPES = [(6, 4), (3, 8), (7,), (), (2, 3, 5), (2, 2, 3, 4)]
STEPS = 8
LRS = (0.01, 0.03, 0.005)      # the learning rate of step k is LRS[k % 3]
WD = 0.05
TOL = dict(rtol=1e-10, atol=1e-12)

# (came-pytorch's keywords, the MXNet-style ones)
SETTINGS = [
    ({}, {}),
    ({"betas": (0.8, 0.95, 0.99), "eps": (1e-3, 1e-3), "clip_threshold": 1e6},
     {"beta1": 0.8, "beta2": 0.95, "beta3": 0.99, "epsilon1": 1e-3, "epsilon2": 1e-3, "clip_threshold": 1e6}),
]
IDS = ["defaults-clipped", "betas-eps-unclipped"]


def _data(seed):
    rng = np.random.default_rng(seed)
    weights = [np.asarray(rng.standard_normal(s)) for s in SHAPES]     # (a 0-d array, not a float)
    grads = [[np.asarray(rng.standard_normal(s) * 2) for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def _peer(weights, grads, settings):
    """came-pytorch's weights after each step, and its final states."""
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = came_pytorch.CAME(params, lr=LRS[0], weight_decay=WD, **settings)
    history = []
    for step, step_grads in enumerate(grads):
        opt.param_groups[0]["lr"] = LRS[step % 3]
        for p, g in zip(params, step_grads):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history, [opt.state[p] for p in params]


def _compare(history, ours, step, weights):
    for i, (a, b) in enumerate(zip(ours, history[step])):
        np.testing.assert_allclose(a, b, err_msg=f"param {i} {SHAPES[i]} after step {step + 1}", **TOL)
    if step == STEPS - 1:      # the run moved every parameter well beyond the tolerance
        assert all(np.abs(a - w).max() > 1e-3 for a, w in zip(ours, weights))


@pytest.mark.parametrize("theirs, _", SETTINGS, ids=IDS)
def test_torch_came_equals_came_pytorch_in_float64(theirs, _):
    import optforge.torch as ot
    weights, grads = _data(1)
    history, peer_states = _peer(weights, grads, theirs)
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = ot.CAME(params, lr=LRS[0], weight_decay=WD, **theirs)
    for step, step_grads in enumerate(grads):
        opt.param_groups[0]["lr"] = LRS[step % 3]
        for p, g in zip(params, step_grads):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        _compare(history, [p.detach().numpy() for p in params], step, weights)
    # the same states under came-pytorch's names; row and column factors keep their
    # reduced axis as size 1 (matrix = "last_two"), which came-pytorch drops
    for p, peer in zip(params, peer_states):
        ours = opt.state[p]
        assert set(ours) == set(peer) - {"RMS"}
        for key in set(ours) - {"step"}:
            np.testing.assert_allclose(ours[key].numpy().reshape(peer[key].shape), peer[key].numpy(),
                                       err_msg=key, **TOL)


@pytest.mark.parametrize("theirs, hyper", SETTINGS, ids=IDS)
def test_mxnet_style_came_equals_came_pytorch_in_float64(theirs, hyper):
    weights, grads = _data(2)
    history, _ = _peer(weights, grads, theirs)
    opt = optforge.create("came", learning_rate=LRS[0], wd=WD, rescale_grad=1.0, **hyper)
    ours = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(ours)]
    for step, step_grads in enumerate(grads):
        opt.set_learning_rate(LRS[step % 3])
        opt.update(list(range(len(ours))), ours, [g.copy() for g in step_grads], states)
        _compare(history, ours, step, weights)


@pytest.mark.parametrize("theirs, _", SETTINGS, ids=IDS)
def test_params_style_came_equals_came_pytorch_in_float64(theirs, _):
    weights, grads = _data(3)
    history, _ = _peer(weights, grads, theirs)
    ours = [w.copy() for w in weights]
    opt = optforge.optim.CAME(ours, lr=LRS[0], weight_decay=WD, **theirs)
    for step, step_grads in enumerate(grads):
        opt.param_groups[0]["lr"] = LRS[step % 3]
        opt.step([g.copy() for g in step_grads])
        _compare(history, ours, step, weights)


def test_native_stage_kernels_equal_step_in_float32(monkeypatch):
    from optforge.runtime.backends import native
    ran = count_stage_runs(monkeypatch)
    monkeypatch.setenv(native.BACKEND_ENV, "native")
    shapes = SHAPES[:3] + SHAPES[4:] + [(130, 600)]     # a 0-d weight has no matrix view
    rng = np.random.default_rng(4)
    fused, plain = (optforge.create("came", learning_rate=LRS[0], wd=WD, rescale_grad=0.7, clip_gradient=0.6,
                                    use_fused_step=flag) for flag in (True, False))
    theirs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [w.copy() for w in theirs]
    s_ours = [fused.create_state(i, w) for i, w in enumerate(ours)]
    s_theirs = [plain.create_state(i, w) for i, w in enumerate(theirs)]
    indices = list(range(len(shapes)))
    for step in range(6):
        for opt in (fused, plain):
            opt.set_learning_rate(LRS[step % 3])
        grads = [(rng.standard_normal(s) * 2).astype(np.float32) for s in shapes]
        fused.update(indices, ours, [g.copy() for g in grads], s_ours)
        plain.update(indices, theirs, grads, s_theirs)
        for i in indices:
            np.testing.assert_array_equal(ours[i], theirs[i], err_msg=f"weight {i} after step {step + 1}")
            for a, b in zip(s_ours[i], s_theirs[i], strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"state of {i} after step {step + 1}")
    assert ran == [True] * (6 * len(shapes))      # every parameter step ran the stage kernels


def test_a_came_pytorch_state_dict_is_refused_before_anything_changes():
    """The spec's stated deviation: came-pytorch's row and column factors drop the reduced
    axis, so a step from its state dict raises (rather than broadcasting the factors) and
    leaves every weight as it was."""
    import optforge.torch as ot
    weights, grads = _data(5)
    peer_params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights[:3]]
    peer = came_pytorch.CAME(peer_params, lr=LRS[0])
    for p, g in zip(peer_params, grads[0]):
        p.grad = torch.from_numpy(g.copy())
    peer.step()
    params = [torch.nn.Parameter(p.detach().clone()) for p in peer_params]
    opt = ot.CAME(params, lr=LRS[0])
    opt.load_state_dict(peer.state_dict())
    before = [p.detach().clone() for p in params]
    for p, g in zip(params, grads[1]):
        p.grad = torch.from_numpy(g.copy())
    with pytest.raises(ValueError, match="exp_avg_sq_row"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before))
