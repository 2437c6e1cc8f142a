"""PSGD-Kron (specs/kron.toml): triangular Kronecker factors fitted to random probes, in
every API family, against pytorch_optimizer's Kron and against a NumPy reference written
here from the papers (Li 2018, Algorithm of the Kronecker-product preconditioner; Li 2024,
the update on the group of upper triangular matrices) with the reference implementation's
conventions (bias-corrected momentum, the step's RMS capped at 1.1, weight decay only on
tensors of two or more axes).

The probes are random: each run records the probes optforge draws (runtime/noise.py) and
injects the very same ones into the peer (torch.randn_like) and the reference.

The float64 comparisons run the NumPy code (OPTFORGE_CPU_BACKEND=numpy: no native build of
their variants); the native CPU and CUDA stage kernels equal it bit for bit in the verifier
(`optforge check --verify specs/kron.toml`, and its run of every shipped spec in
tests/test_verify.py), and float32 runs through the native stage kernels below.

Tolerances: float64 runs agree to 1e-10 of the largest weight. The peer solves its
triangular systems by LAPACK's substitution and contracts with einsum, optforge by blocked
substitution and multiplies in another order; the factors stay within a few units of the identity here, so
the two agree to about 1e-15 (measured 4e-16 over 10 steps). The peer rounds its
triangular solves to float32 whatever the dtype; the comparison runs them in float64 (it
would otherwise differ by ~1e-7). A wrong term (a missing triu, the wrong side of a
solve, an update on the wrong steps) is off by 1e-3 or more.
"""
import numpy as np
import pytest

import optforge
from optforge.runtime import noise
from support import assert_close_to_largest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
psgd = pytest.importorskip("pytorch_optimizer.optimizer.psgd")

SHAPES = [(5, 7), (6,), (4, 4), (), (1, 5)]
STEPS = 10
RTOL = 1e-10
TINY = float(np.finfo(np.float32).tiny)


def _lr(step):
    return 0.05 * (1 - 0.05 * step)       # a changing learning rate


def _problem(seed, shapes=SHAPES, dtype=np.float64):
    rng = np.random.default_rng(seed)
    weights = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in shapes]
    grads = [[np.asarray(3 * rng.standard_normal(s), dtype=dtype) for s in shapes] for _ in range(STEPS)]
    return weights, grads


@pytest.fixture(autouse=True)
def numpy_code(monkeypatch):
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "numpy")


@pytest.fixture
def probes(monkeypatch):
    """The probes optforge draws, one list per step call, in the order drawn."""
    drawn = []
    normal = noise.Noise.normal

    def recording(self, tag, mean, std, like, out=None):
        result = normal(self, tag, mean, std, like, out)
        drawn[-1].append(np.array(result, dtype=np.float64))
        return result

    monkeypatch.setattr(noise.Noise, "normal", recording)
    return drawn


def _lower_bound(a):
    """A lower bound of ||a||_2 (Li's estimate): scaled by max|a|, the column (or row) of the
    largest norm x gives ||x^T a a^T|| / ||x^T a|| (or ||a^T a x|| / ||a x||)."""
    m = np.abs(a).max()
    if m == 0:
        return 0.0
    s = a / m
    cols, rows = (s * s).sum(axis=0), (s * s).sum(axis=1)
    if cols.max() > rows.max():
        x = s[:, cols.argmax()] @ s
        return m * np.linalg.norm((x / np.linalg.norm(x)) @ s.T)
    x = s @ s[rows.argmax()]
    return m * np.linalg.norm(s.T @ (x / np.linalg.norm(x)))


def _reference(weights, grads, lrs, probes, *, momentum=0.9, wd=0.0, decouple=True, into=True,
               probability=None, schedule=(1.0, 0.03, 0.001, 500), precondition_lr=0.1, rescale=1.0, clip=None):
    """PSGD-Kron on the matrix view (first axis against the rest); `probes[step]`: one
    probe per parameter that updates its preconditioner that step, in order."""
    w = [x.astype(np.float64) for x in weights]
    state = [{"m": np.zeros(x.shape), "QL": np.eye(x.shape[0]) if x.ndim >= 2 else None,
              "QR": np.eye(x.size // x.shape[0]) if x.ndim >= 2 else None, "q": np.ones(x.shape)} for x in w]
    counter = 0
    for step, (gs, lr) in enumerate(zip(grads, lrs)):
        max_prob, min_prob, decay, flat_start = schedule
        prob = probability or min(max(max_prob * np.exp(-decay * (step - flat_start)), min_prob), max_prob)
        counter += 1
        refresh = counter >= 1 / prob
        if refresh:
            counter = 0
        drawn = iter(probes[step]) if refresh else None
        for i, (x, g) in enumerate(zip(w, gs)):
            s = state[i]
            g = g.astype(np.float64) * rescale
            if clip is not None:
                g = np.clip(g, -clip, clip)
            if x.ndim >= 2 and not decouple:
                g = g + wd * x
            s["m"] = momentum * s["m"] + (1 - momentum) * g
            m = s["m"] / (1 - momentum ** (step + 1))
            h = m if into else g
            if x.ndim >= 2:
                m, h = m.reshape(x.shape[0], -1), h.reshape(x.shape[0], -1)
                QL, QR = s["QL"], s["QR"]
                if refresh:
                    v = next(drawn).reshape(h.shape)
                    A = QL @ h @ QR.T
                    B = np.linalg.inv(QL).T @ v @ np.linalg.inv(QR)      # Q_L^-T V Q_R^-1
                    for side, (a, b) in (("QL", (A @ A.T, B @ B.T)), ("QR", (A.T @ A, B.T @ B))):
                        s[side] = s[side] - precondition_lr * np.triu(a - b) @ s[side] / (_lower_bound(a + b) + TINY)
                u = (s["QL"].T @ s["QL"] @ m @ s["QR"].T @ s["QR"]).reshape(x.shape)
            else:
                if refresh:
                    v = next(drawn).reshape(h.shape)
                    a, b = s["q"] * h, v / s["q"]
                    s["q"] = s["q"] - precondition_lr * (a * a - b * b) * s["q"] / ((a * a + b * b).max() + TINY)
                u = s["q"] ** 2 * m
            u = u * min(1.0, 1.1 / (np.sqrt(np.mean(u * u)) + 1e-6))
            if x.ndim >= 2 and decouple:
                u = u + wd * x
            w[i] = x - lr * u
    return w


def _close(ours, expected, rtol=RTOL):
    assert_close_to_largest(ours, expected, rtol)


def _float64_solves(x, a):
    return torch.linalg.solve_triangular(a, x.reshape(-1, x.size(-1)), upper=True, left=False).reshape_as(x)


# (optforge keywords, the peer's, the reference's, the steps that update the preconditioner)
SETTINGS = [
    (dict(weight_decay=0.1), dict(weight_decay=0.1), dict(wd=0.1), 10),
    (dict(momentum=0.5, weight_decay=0.05, weight_decouple=False, momentum_into_precondition_update=False,
          pre_conditioner_update_probability=0.5),
     dict(momentum=0.5, weight_decay=0.05, weight_decouple=False, momentum_into_precondition_update=False,
          pre_conditioner_update_probability=0.5),
     dict(momentum=0.5, wd=0.05, decouple=False, into=False, probability=0.5), 5),
    (dict(max_prob=0.9, min_prob=0.3, decay=0.4, flat_start=2, precondition_lr=0.3),
     dict(pre_conditioner_update_probability=psgd.precondition_update_prob_schedule(0.9, 0.3, 0.4, 2)),
     dict(schedule=(0.9, 0.3, 0.4, 2), precondition_lr=0.3), 3),     # steps 1, 3 and 7
]


@pytest.mark.parametrize("ours, theirs, reference, updates", SETTINGS)
def test_torch_kron_equals_pytorch_optimizer_in_float64(ours, theirs, reference, updates, probes, monkeypatch):
    monkeypatch.setattr(psgd, "solve_triangular_right", _float64_solves)
    weights, grads = _problem(1)
    mine = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    peers = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = optforge.torch.Kron(mine, lr=_lr(0), **ours)
    peer = pytorch_optimizer.Kron(peers, lr=_lr(0), balance_prob=0.0, precondition_dtype=torch.float64, **theirs)
    if "precondition_lr" in ours:
        peer.param_groups[0]["precondition_lr"] = ours["precondition_lr"]     # not a constructor keyword there
    for step, gs in enumerate(grads):
        for group in (opt.param_groups[0], peer.param_groups[0]):
            group["lr"] = _lr(step)
        for p, q, g in zip(mine, peers, gs):
            p.grad = torch.from_numpy(g.copy())
            q.grad = torch.from_numpy(g.copy())
        probes.append([])
        opt.step()
        drawn = iter(torch.from_numpy(v) for v in probes[-1])
        with monkeypatch.context() as patch:
            patch.setattr(torch, "randn_like", lambda x, dtype=None: next(drawn).reshape(x.shape))
            peer.step()
        assert next(drawn, None) is None            # the peer took every probe drawn
    assert sum(bool(p) for p in probes) == updates
    _close([p.detach().numpy() for p in mine], [q.detach().numpy() for q in peers])
    # and the peer equals the reference written here (so the two checks agree)
    _close([q.detach().numpy() for q in peers],
           _reference(weights, grads, [_lr(k) for k in range(STEPS)], probes, **reference))


def test_mxnet_style_kron_equals_the_paper_reference(probes):
    """rescale_grad != 1, clip_gradient (values beyond it), begin_num_update > 0, a changing
    lr, coupled wd > 0, and a tensor of three axes (preconditioned as its (4, 6) view)."""
    shapes = [(4, 3, 2), (5,), (3, 6)]
    weights, grads = _problem(2, shapes)
    opt = optforge.Kron(learning_rate=_lr(0), momentum=0.8, wd=0.02, weight_decouple=False, probability=0.5,
                        rescale_grad=0.5, clip_gradient=2.0, begin_num_update=5)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    for step, gs in enumerate(grads):
        opt.lr = _lr(step)
        probes.append([])
        opt.update(list(range(len(current))), current, [g.copy() for g in gs], states)
    assert any(np.abs(g * 0.5).max() > 2.0 for gs in grads for g in gs)      # the clip bound is reached
    assert [len(p) for p in probes] == [0, 3] * (STEPS // 2)                # every second step
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], probes, momentum=0.8, wd=0.02,
                               decouple=False, probability=0.5, rescale=0.5, clip=2.0))


def test_params_style_kron_equals_the_paper_reference(probes):
    weights, grads = _problem(3)
    current = [w.copy() for w in weights]
    opt = optforge.optim.Kron(current, lr=_lr(0), momentum=0.7, weight_decay=0.03)
    for step, gs in enumerate(grads):
        opt.param_groups[0]["lr"] = _lr(step)
        probes.append([])
        opt.step([g.copy() for g in gs])
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], probes, momentum=0.7, wd=0.03))


def test_float32_through_the_native_stage_kernels_stays_near_float64(probes, monkeypatch):
    """float32 weights through the native stage driver (OPTFORGE_CPU_BACKEND=native: no
    fallback): float32 roundings of the fit and the step stay within 1e-5 of the float64
    reference over 10 steps (measured ~1e-7); a wrong term is off by 1e-3 or more."""
    monkeypatch.setenv("OPTFORGE_CPU_BACKEND", "native")
    weights, grads = _problem(4, dtype=np.float32)
    opt = optforge.Kron(learning_rate=_lr(0), wd=0.01)
    current = [w.copy() for w in weights]
    states = [opt.create_state(i, w) for i, w in enumerate(current)]
    for step, gs in enumerate(grads):
        opt.lr = _lr(step)
        probes.append([])
        opt.update(list(range(len(current))), current, gs, states)
    assert all(w.dtype == np.float32 for w in current)
    _close(current, _reference(weights, grads, [_lr(k) for k in range(STEPS)], probes, wd=0.01), rtol=1e-5)


def test_the_probes_follow_the_seed():
    """The same seed draws the same probes (a rerun is the same run), another seed others."""
    def run(seed):
        weights, grads = _problem(5, [(4, 3)])
        current = [w.copy() for w in weights]
        opt = optforge.optim.Kron(current, lr=0.05, seed=seed)
        for gs in grads[:3]:
            opt.step([g.copy() for g in gs])
        return current[0]

    np.testing.assert_array_equal(run(1), run(1))
    assert np.abs(run(1) - run(2)).max() > 1e-6


def test_trains_as_pytorch_optimizers_kron_does():
    """By behaviour against the package as it is (its own probes from torch's generator, its
    balancing, its float32 solves): a 2-layer network regressing a fixed linear map, 150 full
    steps in float32 from the same initial weights. Both bring the loss below 5% of its start,
    and optforge's final loss is within a factor 1.5 of the package's (the probes differ, so
    the runs do; measured: 0.028 and 0.028 of the start). A wrong fit (no triu, the wrong
    side) or a missing cap diverges or stalls above that."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=generator)
    y = x @ torch.randn(16, 8, generator=generator) + 0.1 * torch.randn(256, 8, generator=generator)

    def train(cls, **keywords):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8))
        opt = cls(model.parameters(), lr=0.01, **keywords)
        losses = []
        for _ in range(150):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    ours, theirs = train(optforge.torch.Kron), train(pytorch_optimizer.Kron)
    assert ours[0] == theirs[0]
    assert ours[-1] < 0.05 * ours[0] and theirs[-1] < 0.05 * theirs[0], (ours[-1], theirs[-1], ours[0])
    assert 1 / 1.5 < ours[-1] / theirs[-1] < 1.5, (ours[-1], theirs[-1])


@pytest.mark.parametrize("shape", [(300, 300), (2, 260, 260)], ids=["one", "batch"])
def test_solve_substitutes_through_blocks_for_triangular_matrices(shape):
    """The generated `_solve` (templates/numpy_solve.py.j2) of a triangular matrix above the
    128-row blocks it hands to LAPACK: upper, lower and a full matrix (LU) equal
    numpy.linalg.solve in float64 to 1e-12 relative (well-conditioned factors near I), and
    float32 stays float32 within 1e-5."""
    from optforge.generated.numpy import kron
    rng = np.random.default_rng(6)
    full = np.eye(shape[-1]) + 0.3 * rng.standard_normal(shape) / np.sqrt(shape[-1])
    rhs = rng.standard_normal(shape[:-1] + (7,))
    for a in (np.triu(full), np.tril(full), full):
        expected = np.linalg.solve(a, rhs)
        np.testing.assert_allclose(kron._solve(np, a, rhs), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
        single = kron._solve(np, a.astype(np.float32), rhs.astype(np.float32))
        assert single.dtype == np.float32
        np.testing.assert_allclose(single, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
