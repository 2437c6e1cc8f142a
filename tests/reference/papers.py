"""Hand-written references for the optimizers MXNet lacks, from their papers.

Plain NumPy, independent of specs/ and generated/; same calling convention as
torch_optim.py (state: a dict, empty before the first step; returns new weight
and state). `rescale_grad` and `clip_gradient` are MXNet's gradient preprocessing,
applied first: g = clip(rescale_grad * g, clip_gradient).
"""
import math

import numpy as np


def _pre(g, rescale_grad, clip_gradient, maximize):
    g = g * rescale_grad
    if clip_gradient is not None:
        g = np.clip(g, -clip_gradient, clip_gradient)
    return -g if maximize else g


def lion(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.99, maximize=False):
    """Chen et al. 2023, Algorithm 2: update = sign(b1 m + (1 - b1) g); w -= lr (update + wd w);
    m = b2 m + (1 - b2) g."""
    g = _pre(g, rescale_grad, clip_gradient, maximize)
    m = s.get("exp_avg", np.zeros_like(w))
    update = np.sign(beta1 * m + (1 - beta1) * g)
    w = w - lr * (update + wd * w)
    return w, {"exp_avg": beta2 * m + (1 - beta2) * g}


def amsgrad(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.999,
            epsilon=1e-8, maximize=False):
    """Reddi et al. 2018, Algorithm 2 (v_hat = max(v_hat, v)), with Adam's bias correction."""
    g = _pre(g, rescale_grad, clip_gradient, maximize) + wd * w
    m = beta1 * s.get("mean", 0 * w) + (1 - beta1) * g
    v = beta2 * s.get("var", 0 * w) + (1 - beta2) * g ** 2
    v_hat = np.maximum(s.get("var_max", 0 * w), v)
    alpha_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - alpha_t * m / (np.sqrt(v_hat) + epsilon), {"mean": m, "var": v, "var_max": v_hat}


def yogi(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.999,
         epsilon=1e-3, maximize=False):
    """Zaheer et al. 2018, Algorithm 2: v_t = v_{t-1} - (1 - b2) sign(v_{t-1} - g^2) g^2."""
    g = _pre(g, rescale_grad, clip_gradient, maximize) + wd * w
    m = beta1 * s.get("mean", 0 * w) + (1 - beta1) * g
    v_prev = s.get("var", 0 * w)
    v = v_prev - (1 - beta2) * np.sign(v_prev - g ** 2) * g ** 2
    return w - lr * m / (np.sqrt(v) + epsilon), {"mean": m, "var": v}


def adan(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.98, beta2=0.92, beta3=0.99,
         epsilon=1e-8, maximize=False):
    """Xie et al., Algorithm 1, in the (1 - beta) convention of the authors' code, with bias
    correction and g_0 = g_1 at the state's first update (the authors' code sets pre_grad = g
    when its state has none); weight decay as the proximal step w / (1 + lr wd)."""
    g = _pre(g, rescale_grad, clip_gradient, maximize)
    g_prev = s["prev_grad"] if s else g
    d = g - g_prev
    m = beta1 * s.get("exp_avg", 0 * w) + (1 - beta1) * g
    v = beta2 * s.get("exp_avg_diff", 0 * w) + (1 - beta2) * d
    n = beta3 * s.get("exp_avg_sq", 0 * w) + (1 - beta3) * (g + beta2 * d) ** 2
    m_hat, v_hat, n_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t), n / (1 - beta3 ** t)
    eta = lr / (np.sqrt(n_hat) + epsilon)
    w = (w - eta * (m_hat + beta2 * v_hat)) / (1 + lr * wd)
    return w, {"exp_avg": m, "exp_avg_diff": v, "exp_avg_sq": n, "prev_grad": g.copy(), "started": 1.0}


def rprop(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, etaminus=0.5, etaplus=1.2,
          step_size_min=1e-6, step_size_max=50.0, maximize=False):
    """Riedmiller and Braun 1993 (Rprop without weight backtracking, as torch.optim.Rprop):
    grow the step while the gradient keeps its sign, shrink it and skip the element when it flips."""
    g = _pre(g, rescale_grad, clip_gradient, maximize) + wd * w
    prev = s.get("prev", 0 * w)
    step = s.get("step_size", np.full_like(w, lr)) if t > 1 else np.full_like(w, lr)
    same = g * prev > 0
    flipped = g * prev < 0
    step = np.where(same, step * etaplus, np.where(flipped, step * etaminus, step))
    step = np.clip(step, step_size_min, step_size_max)
    g = np.where(flipped, 0, g)
    return w - np.sign(g) * step, {"prev": g, "step_size": step}


def novograd(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.95, beta2=0.98,
             epsilon=1e-8, maximize=False):
    """Ginsburg et al. 2019, Algorithm 1, per layer (here: per parameter):
    v_1 = ||g_1||^2, m_1 = g_1 / (sqrt(v_1) + eps) + d w_1;
    v_t = b2 v_{t-1} + (1 - b2) ||g_t||^2, m_t = b1 m_{t-1} + g_t / (sqrt(v_t) + eps) + d w_t;
    w <- w - lr m_t. Step 1 is the layer's first update (an empty state), whatever t is."""
    g = _pre(g, rescale_grad, clip_gradient, maximize)
    norm_sq = float(np.sum(g.astype(np.float64) ** 2))
    if not s:
        v = norm_sq
        m = g / (np.sqrt(v) + epsilon) + wd * w
    else:
        v = beta2 * float(s["v"]) + (1 - beta2) * norm_sq
        m = beta1 * s["mean"] + g / (np.sqrt(v) + epsilon) + wd * w
    return w - lr * m, {"mean": m, "v": v}


def adopt(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.9999, epsilon=1e-6,
          use_clipping=True, nesterov=False):
    """Taniguchi et al. 2024, as optax.contrib.adopt: v_0 = g_0^2 at the state's first update
    (optax: count == 0 of a fresh state; nothing else changes); afterwards, with n = t - 1,
    m = b1 m + (1 - b1) clip(g / max(sqrt(v_prev), eps), n^(1/4)); w -= lr m; v = b2 v + (1 - b2) g^2.
    Weight decay as L2 (added to g), the authors' default."""
    g = _pre(g, rescale_grad, clip_gradient, False) + wd * w
    if not s:
        return w, {"exp_avg": np.zeros_like(w), "exp_avg_sq": g * g, "started": 1.0}
    m, v = s["exp_avg"], s["exp_avg_sq"]
    n = t - 1
    x = g / np.maximum(np.sqrt(v), epsilon)
    if use_clipping:
        x = np.clip(x, -n ** 0.25, n ** 0.25)
    m = beta1 * m + (1 - beta1) * x
    direction = beta1 * m + (1 - beta1) * x if nesterov else m
    return w - lr * direction, {"exp_avg": m, "exp_avg_sq": beta2 * v + (1 - beta2) * g * g, "started": 1.0}


def ademamix(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.999, beta3=0.9999,
             alpha=5.0, epsilon=1e-8, warmup=None):
    """Pagliardini et al., Algorithm 1 with the paper's alpha and beta3 schedulers:
    alpha(t) = min(t alpha / T, alpha),
    beta3(t) = min(exp(ln(b_start) ln(b3) / ((1 - t/T) ln(b3) + (t/T) ln(b_start))), b3), b_start = b1;
    w -= lr ((m1 / (1 - b1^t) + alpha(t) m2) / (sqrt(v / (1 - b2^t)) + eps) + wd w)."""
    g = _pre(g, rescale_grad, clip_gradient, False)
    a, b3 = alpha, beta3
    if warmup is not None:
        a = min(t * alpha / warmup, alpha)
        frac = t / warmup
        b3 = min(math.exp(math.log(beta1) * math.log(beta3) / ((1 - frac) * math.log(beta3) + frac * math.log(beta1))),
                 beta3)
    m1 = beta1 * s.get("exp_avg_fast", np.zeros_like(w)) + (1 - beta1) * g
    m2 = b3 * s.get("exp_avg_slow", np.zeros_like(w)) + (1 - b3) * g
    v = beta2 * s.get("exp_avg_sq", np.zeros_like(w)) + (1 - beta2) * g * g
    m1_hat, v_hat = m1 / (1 - beta1 ** t), v / (1 - beta2 ** t)
    w = w - lr * ((m1_hat + a * m2) / (np.sqrt(v_hat) + epsilon) + wd * w)
    return w, {"exp_avg_fast": m1, "exp_avg_slow": m2, "exp_avg_sq": v}


def cadamw(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.999, epsilon=1e-8,
           mask_epsilon=1.0):
    """Liang et al. 2024, C-AdamW (the authors' AdamW form): u = m / (sqrt(v) + eps);
    phi = 1[u * g > 0]; w -= lr sqrt(1 - b2^t) / (1 - b1^t) * phi * u * numel / (sum(phi) + mask_eps);
    then the unmasked decoupled decay w *= 1 - lr wd."""
    g = _pre(g, rescale_grad, clip_gradient, False)
    m = beta1 * s.get("exp_avg", np.zeros_like(w)) + (1 - beta1) * g
    v = beta2 * s.get("exp_avg_sq", np.zeros_like(w)) + (1 - beta2) * g * g
    u = m / (np.sqrt(v) + epsilon)
    phi = (u * g > 0).astype(w.dtype)
    scale = phi.size / (float(phi.sum(dtype=np.float64)) + mask_epsilon)
    w = w - lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * scale * (phi * u)
    w = w - lr * wd * w
    return w, {"exp_avg": m, "exp_avg_sq": v}


def schedulefreeadamw(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.999,
                      epsilon=1e-8, warmup_steps=0, r=0.0, weight_lr_power=2.0, decay_at_z=False):
    """Defazio et al. 2024, as the schedulefree package's AdamWScheduleFree 1.4 (k = t - 1
    earlier steps): lr_k = lr * min(1, (k+1) / warmup); lr_max = max(lr_max, lr_k);
    c = (k+1)^r lr_max^p / sum of those weights; v = b2 v + (1 - b2) g^2;
    d = g / (sqrt(v / (1 - b2^(k+1))) + eps) + wd (y or z); z -= lr_k d;
    x = (1 - c) x + c z; y = b1 x + (1 - b1) z (the weight)."""
    g = _pre(g, rescale_grad, clip_gradient, False)
    k = t - 1
    sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
    lr_k = lr * sched
    lr_max = max(lr_k, s.get("lr_max", -1.0))
    weight = (k + 1) ** r * lr_max ** weight_lr_power
    weight_sum = s.get("weight_sum", 0.0) + weight
    c = weight / weight_sum if weight_sum != 0 else 0.0
    y = w
    z, x = s.get("z", w.copy()), s.get("x", w.copy())
    v = beta2 * s.get("exp_avg_sq", np.zeros_like(w)) + (1 - beta2) * g * g
    d = g / (np.sqrt(v / (1 - beta2 ** (k + 1))) + epsilon) + wd * (z if decay_at_z else y)
    z = z - lr_k * d
    x = (1 - c) * x + c * z
    y = beta1 * x + (1 - beta1) * z
    return y, {"z": z, "x": x, "exp_avg_sq": v, "lr_max": lr_max, "weight_sum": weight_sum}


def schedulefree_eval(y, z, *, beta1):
    """The reference implementation's AdamWScheduleFree.eval(): p.lerp_(z, 1 - 1/beta1), i.e.
    x = (y - (1 - beta1) z) / beta1, recovered from the weight y and the state z."""
    return y + (1 - 1 / beta1) * (z - y)


def schedulefree_train(x, z, *, beta1):
    """AdamWScheduleFree.train(): p.lerp_(z, 1 - beta1), i.e. y = beta1 x + (1 - beta1) z."""
    return x + (1 - beta1) * (z - x)


def adabound(w, g, s, *, lr, wd, t, learning_rate, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.999,
             final_lr=0.1, gamma=1e-3, epsilon=1e-8, amsbound=False):
    """Luo et al. 2019, Algorithm 2 (AdaBound; AMSBound with the running maximum of v), with
    the authors' code's Adam bias corrections in the step size and final_lr scaled by
    lr / learning_rate (the rate the optimizer was created with); L2 weight decay:
    g += wd w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    w -= clip(lr sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps), lo_t, hi_t) m with
    lo_t = f (1 - 1 / (gamma t + 1)), hi_t = f (1 + 1 / (gamma t)), f = final_lr lr / learning_rate."""
    g = _pre(g, rescale_grad, clip_gradient, False) + wd * w
    m = beta1 * s.get("exp_avg", np.zeros_like(w)) + (1 - beta1) * g
    v = beta2 * s.get("exp_avg_sq", np.zeros_like(w)) + (1 - beta2) * g * g
    out = {"exp_avg": m, "exp_avg_sq": v}
    if amsbound:
        v = out["max_exp_avg_sq"] = np.maximum(s.get("max_exp_avg_sq", np.zeros_like(w)), v)
    size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    f = final_lr * lr / learning_rate
    lower, upper = f * (1 - 1 / (gamma * t + 1)), f * (1 + 1 / (gamma * t))
    return w - np.clip(size / (np.sqrt(v) + epsilon), lower, upper) * m, out


def aggmo(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, betas=(0.0, 0.9, 0.99)):
    """Lucas et al. 2019, Algorithm 1 with K velocities: g += wd w; v_i = beta_i v_i + g;
    w -= lr / K sum_i v_i."""
    g = _pre(g, rescale_grad, clip_gradient, False) + wd * w
    out = {f"v{k}": beta * s.get(f"v{k}", np.zeros_like(w)) + g for k, beta in enumerate(betas)}
    return w - lr / len(betas) * sum(out.values()), out


RULES = {"novograd": novograd, "lion": lion, "amsgrad": amsgrad, "yogi": yogi, "adan": adan, "rprop": rprop,
         "adopt": adopt, "ademamix": ademamix, "cadamw": cadamw,
         "schedulefreeadamw": schedulefreeadamw, "adabound": adabound, "aggmo": aggmo}


def adafactor(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, epsilon1=1e-30, epsilon2=1e-3,
              d=1.0, decay_rate=-0.8, beta1=None, relative_step=True, scale_parameter=True, warmup_init=False):
    """Shazeer and Stern 2018, Algorithms 4 (matrices) and 5 (vectors), with the step-size
    options of Section 8 (the relative step min(1e-2, 1/sqrt(t)), its warm-up form
    min(1e-6 t, 1/sqrt(t)), parameter scaling by max(eps2, RMS(X_{t-1}))) and the optional
    first moment of the clipped update; matrices factored along the last two axes:
    beta2_t = 1 - t^decay_rate; R_t = beta2_t R + (1 - beta2_t) mean_cols(G^2 + eps1),
    C_t = beta2_t C + (1 - beta2_t) mean_rows(G^2 + eps1), V = R C / mean(R);
    U = G / sqrt(V); U <- alpha U / max(1, RMS(U) / d); X <- X - wd alpha X - U."""
    g = _pre(g, rescale_grad, clip_gradient, False)
    if relative_step:
        rho = min(1e-6 * t if warmup_init else 1e-2, 1 / math.sqrt(t))
    else:
        rho = lr
    alpha = max(epsilon2, float(np.sqrt(np.mean(w * w)))) * rho if scale_parameter else rho
    beta2 = 1 - t ** decay_rate
    g2 = g * g + epsilon1
    s = dict(s)
    if w.ndim >= 2:
        r = s.get("row_var", np.zeros(w.shape[:-1] + (1,), w.dtype))
        c = s.get("col_var", np.zeros(w.shape[:-2] + (1, w.shape[-1]), w.dtype))
        r = beta2 * r + (1 - beta2) * g2.mean(axis=-1, keepdims=True)
        c = beta2 * c + (1 - beta2) * g2.mean(axis=-2, keepdims=True)
        s["row_var"], s["col_var"] = r, c
        v = r * c / r.mean(axis=-2, keepdims=True)
    else:
        v = beta2 * s.get("variance", np.zeros_like(w)) + (1 - beta2) * g2
        s["variance"] = v
    u = g / np.sqrt(v)
    u = alpha * u / max(1.0, float(np.sqrt(np.mean(u * u))) / d)
    if beta1 is not None:
        u = beta1 * s.get("exp_avg", np.zeros_like(w)) + (1 - beta1) * u
        s["exp_avg"] = u
    return w - wd * alpha * w - u, s


def sm3(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, momentum=0.0, beta=0.0, epsilon=1e-30):
    """Anil et al. 2019, SM3-II with the cover {rows, columns} of the (first axis, rest) matrix
    (a vector is a column: each element its own row), and pytorch_optimizer's beta > 0 form:
    nu = min(r_i, c_j) + g^2 (beta = 0) or beta min(r_i, c_j) + (1 - beta) g^2; r_i = max_j nu
    (beta > 0: max with the old r_i), c_j likewise; u = g / sqrt(nu + eps); with momentum,
    m = momentum m + (1 - momentum) u and u = m; w -= lr u. L2 weight decay."""
    g = _pre(g, rescale_grad, clip_gradient, False) + wd * w
    m2 = g.reshape(g.shape[0] if g.ndim else 1, -1)
    rows = s.get("acc_rows", np.zeros((m2.shape[0], 1), w.dtype)).reshape(m2.shape[0], 1)
    cols = s.get("acc_cols", np.zeros((1, m2.shape[1]), w.dtype)).reshape(1, m2.shape[1])
    if beta > 0:
        nu = beta * np.minimum(rows, cols) + (1 - beta) * m2 * m2
        rows, cols = np.maximum(rows, nu.max(axis=1, keepdims=True)), np.maximum(cols, nu.max(axis=0, keepdims=True))
    else:
        nu = np.minimum(rows, cols) + m2 * m2
        rows, cols = nu.max(axis=1, keepdims=True), nu.max(axis=0, keepdims=True)
    u = (m2 / np.sqrt(nu + epsilon)).reshape(w.shape)
    out = {"acc_rows": rows.reshape((w.shape[0],) + (1,) * (w.ndim - 1)) if w.ndim else rows.reshape(()),
           "acc_cols": cols.reshape((1,) + w.shape[1:]) if w.ndim else cols.reshape(())}
    if momentum > 0:
        u = out["mom"] = momentum * s.get("mom", np.zeros_like(w)) + (1 - momentum) * u
    return w - lr * u, out


MATRIX_RULES = {"adafactor": adafactor, "sm3": sm3}   # tested on matrices of both orientations in test_matrix_rules.py
