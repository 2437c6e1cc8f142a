"""Hand-written references for the PyTorch / MindSpore semantics (the `torch` flavor).

Written from the algorithm boxes of the torch.optim documentation (Adam, AdamW,
Adamax, SGD, RMSprop, Adagrad, Adadelta, NAdam, RAdam) and the
mindspore.experimental.optim.Adamax page, and ASGD and SparseAdam from the
algorithm their torch.optim pages document (neither page has an algorithm box), in plain NumPy, independently of
specs/ and generated/. Each function takes one parameter's weight, gradient and
state (a dict keyed by torch's state names, empty before the first step) and
returns the new weight and state; nothing is modified in place. `t` is the step
count (1 at the first step).
"""
import math

import numpy as np


def _grad(g, maximize):
    return -g if maximize else g


def sgd(w, g, s, *, lr, wd, t, momentum=0.0, dampening=0.0, nesterov=False, maximize=False):
    g = _grad(g, maximize) + wd * w
    s = dict(s)
    if momentum != 0:
        if "momentum_buffer" not in s:          # a new buffer takes the gradient as it is
            b = g.copy()
        else:
            b = momentum * s["momentum_buffer"] + (1 - dampening) * g
        s["momentum_buffer"] = b
        g = g + momentum * b if nesterov else b
    return w - lr * g, s


def _adam_core(w, g, s, lr, t, beta1, beta2, epsilon, amsgrad):
    m = beta1 * s.get("exp_avg", 0 * w) + (1 - beta1) * g
    v = beta2 * s.get("exp_avg_sq", 0 * w) + (1 - beta2) * g * g
    out = {"exp_avg": m, "exp_avg_sq": v}
    m_hat = m / (1 - beta1 ** t)
    if amsgrad:
        v_max = np.maximum(s.get("max_exp_avg_sq", 0 * w), v)
        out["max_exp_avg_sq"] = v_max
        v_hat = v_max / (1 - beta2 ** t)
    else:
        v_hat = v / (1 - beta2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + epsilon), out


def adam(w, g, s, *, lr, wd, t, beta1=0.9, beta2=0.999, epsilon=1e-8, amsgrad=False, maximize=False):
    g = _grad(g, maximize) + wd * w
    return _adam_core(w, g, s, lr, t, beta1, beta2, epsilon, amsgrad)


def adamw(w, g, s, *, lr, wd, t, beta1=0.9, beta2=0.999, epsilon=1e-8, amsgrad=False, maximize=False):
    w = w - lr * wd * w                      # decoupled decay first
    return _adam_core(w, _grad(g, maximize), s, lr, t, beta1, beta2, epsilon, amsgrad)


def adamax(w, g, s, *, lr, wd, t, beta1=0.9, beta2=0.999, epsilon=1e-8, maximize=False):
    """MindSpore seed: u = max(beta2 * u, |g| + eps); theta -= lr * m / ((1 - beta1**t) * u)."""
    g = _grad(g, maximize) + wd * w
    m = beta1 * s.get("exp_avg", 0 * w) + (1 - beta1) * g
    u = np.maximum(beta2 * s.get("exp_inf", 0 * w), np.abs(g) + epsilon)
    return w - lr * m / ((1 - beta1 ** t) * u), {"exp_avg": m, "exp_inf": u}


def rmsprop(w, g, s, *, lr, wd, t, alpha=0.99, epsilon=1e-8, momentum=0.0, centered=False, maximize=False):
    g = _grad(g, maximize) + wd * w
    out = {"square_avg": alpha * s.get("square_avg", 0 * w) + (1 - alpha) * g * g}
    v = out["square_avg"]
    if centered:
        out["grad_avg"] = alpha * s.get("grad_avg", 0 * w) + (1 - alpha) * g
        v = v - out["grad_avg"] ** 2
    denom = np.sqrt(v) + epsilon
    if momentum > 0:
        out["momentum_buffer"] = momentum * s.get("momentum_buffer", 0 * w) + g / denom
        return w - lr * out["momentum_buffer"], out
    return w - lr * g / denom, out


def adagrad(w, g, s, *, lr, wd, t, lr_decay=0.0, epsilon=1e-10, maximize=False):
    g = _grad(g, maximize) + wd * w
    clr = lr / (1 + (t - 1) * lr_decay)
    total = s.get("sum", 0 * w) + g * g
    return w - clr * g / (np.sqrt(total) + epsilon), {"sum": total}


def adadelta(w, g, s, *, lr, wd, t, rho=0.9, epsilon=1e-6, maximize=False):
    g = _grad(g, maximize) + wd * w
    v = rho * s.get("square_avg", 0 * w) + (1 - rho) * g * g
    u_prev = s.get("acc_delta", 0 * w)
    dx = np.sqrt(u_prev + epsilon) / np.sqrt(v + epsilon) * g
    u = rho * u_prev + (1 - rho) * dx * dx
    return w - lr * dx, {"square_avg": v, "acc_delta": u}


def nadam(w, g, s, *, lr, wd, t, beta1=0.9, beta2=0.999, epsilon=1e-8, momentum_decay=4e-3,
          decoupled_weight_decay=False, maximize=False):
    g = _grad(g, maximize)
    if decoupled_weight_decay:
        w = w * (1 - lr * wd)
    else:
        g = g + wd * w
    mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_t1 = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    prod = float(s.get("mu_product", 1.0)) * mu_t      # prod_{i <= t} mu_i
    m = beta1 * s.get("exp_avg", 0 * w) + (1 - beta1) * g
    v = beta2 * s.get("exp_avg_sq", 0 * w) + (1 - beta2) * g * g
    m_hat = mu_t1 * m / (1 - prod * mu_t1) + (1 - mu_t) * g / (1 - prod)
    v_hat = v / (1 - beta2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + epsilon), {"exp_avg": m, "exp_avg_sq": v, "mu_product": prod}


def radam(w, g, s, *, lr, wd, t, beta1=0.9, beta2=0.999, epsilon=1e-8, decoupled_weight_decay=False,
          maximize=False):
    g = _grad(g, maximize)
    if decoupled_weight_decay:
        w = w * (1 - lr * wd)
    else:
        g = g + wd * w
    m = beta1 * s.get("exp_avg", 0 * w) + (1 - beta1) * g
    v = beta2 * s.get("exp_avg_sq", 0 * w) + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
    if rho_t > 5:
        l_t = math.sqrt(1 - beta2 ** t) / (np.sqrt(v) + epsilon)
        r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        w = w - lr * m_hat * l_t * r_t
    else:
        w = w - lr * m_hat
    return w, {"exp_avg": m, "exp_avg_sq": v}


def _pre(g, rescale_grad, clip_gradient, maximize):
    """MXNet-style gradient preprocessing (identity with the defaults, as optforge.optim calls)."""
    g = g * rescale_grad
    if clip_gradient is not None:
        g = np.clip(g, -clip_gradient, clip_gradient)
    return _grad(g, maximize)


def asgd(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, lambd=1e-4, alpha=0.75, t0=1e6,
         maximize=False):
    """torch.optim.ASGD (Polyak-Juditsky averaging): the step uses eta and mu kept from the
    previous step (eta starts at lr, mu at 1):
    g += wd w; w = w (1 - lambd eta) - eta g; ax = w if mu == 1 else ax + mu (w - ax);
    then eta = lr / (1 + lambd lr t)^alpha and mu = 1 / max(1, t - t0) for the next step."""
    g = _pre(g, rescale_grad, clip_gradient, maximize) + wd * w
    eta = s["eta"] if "eta" in s else lr
    mu = s.get("mu", 1.0)
    w = w * (1 - lambd * eta) - eta * g
    ax = w.copy() if mu == 1 else s["ax"] + mu * (w - s["ax"])
    return w, {"eta": lr / (1 + lambd * lr * t) ** alpha, "mu": 1 / max(1, t - t0), "ax": ax}


def sparseadam(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta1=0.9, beta2=0.999,
               epsilon=1e-8, maximize=False, rows=None):
    """torch.optim.SparseAdam: Adam on the gradient's rows only (all rows for a dense gradient),
    step size lr sqrt(1 - b2^t) / (1 - b1^t), epsilon added to sqrt(v); no weight decay."""
    assert wd == 0, "SparseAdam has no weight decay"
    rows = np.arange(w.shape[0]) if rows is None else rows
    g = _pre(g, rescale_grad, clip_gradient, maximize)[rows]
    m, v, w = s.get("exp_avg", np.zeros_like(w)).copy(), s.get("exp_avg_sq", np.zeros_like(w)).copy(), w.copy()
    m[rows] = beta1 * m[rows] + (1 - beta1) * g
    v[rows] = beta2 * v[rows] + (1 - beta2) * g * g
    step = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    w[rows] = w[rows] - step * m[rows] / (np.sqrt(v[rows]) + epsilon)
    return w, {"exp_avg": m, "exp_avg_sq": v}


RULES = {"sgd": sgd, "adam": adam, "adamw": adamw, "adamax": adamax, "rmsprop": rmsprop,
         "adagrad": adagrad, "adadelta": adadelta, "nadam": nadam, "radam": radam,
         "asgd": asgd, "sparseadam": sparseadam}


# -- matrix rules ---------------------------------------------------------------------------
# Written from torch.optim.Muon's and torch.optim.Adafactor's documented algorithms (their
# documentation pages and the algorithm their step follows), in float64 NumPy; Muon's
# Newton-Schulz iteration without torch's bfloat16 cast.

def newton_schulz(g, a=3.4445, b=-4.7750, c=2.0315, steps=5, eps=1e-7):
    """NS_k^{(a,b,c)}(G; eps): X = G / max(||G||_F, eps) (through G^T when G is tall, so that
    X X^T is the smaller Gram matrix); k times X <- a X + (b A + c A^2) X with A = X X^T."""
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / max(np.linalg.norm(x), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.T if tall else x


def muon(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, momentum=0.95, nesterov=True,
         ns_a=3.4445, ns_b=-4.7750, ns_c=2.0315, epsilon=1e-7, ns_steps=5, adjust_lr_fn="original"):
    """torch.optim.Muon: B <- lerp(B, g, 1 - mu); U = lerp(g, B, mu) with nesterov, else B;
    O = NS(U); w <- w (1 - lr wd); w <- w - lr * ratio * O with ratio sqrt(max(1, A / B))
    ("original") or 0.2 sqrt(max(A, B)) ("match_rms_adamw") for a weight of shape (A, B)."""
    assert w.ndim == 2, "Muon takes 2-D parameters"
    g = _pre(g, rescale_grad, clip_gradient, False)
    buf = s.get("momentum_buffer", np.zeros_like(w))
    buf = buf + (1 - momentum) * (g - buf)
    u = g + momentum * (buf - g) if nesterov else buf
    o = newton_schulz(u, ns_a, ns_b, ns_c, ns_steps, epsilon)
    rows, cols = w.shape
    ratio = math.sqrt(max(1.0, rows / cols)) if adjust_lr_fn == "original" else 0.2 * math.sqrt(max(rows, cols))
    w = w * (1 - lr * wd)
    return w - lr * ratio * o, {"momentum_buffer": buf}


def adafactor(w, g, s, *, lr, wd, t, rescale_grad=1.0, clip_gradient=None, beta2_decay=-0.8,
              epsilon1=None, epsilon2=1e-3, d=1.0, maximize=False):
    """torch.optim.Adafactor: beta2_t = 1 - t^beta2_decay; rho = min(lr, 1/sqrt(t));
    alpha = max(eps2, RMS(w)) rho; w <- w (1 - lr wd); for ndim >= 2, factored along the last
    two axes: R <- lerp(R, mean_{last}(g^2), 1 - beta2_t), C <- lerp(C, mean_{second last}(g^2), ...),
    V = R C / max(mean_{second last}(R), eps1); else V <- lerp(V, g^2, 1 - beta2_t);
    U = g / sqrt(max(V, eps1^2)); w <- w - alpha / max(1, RMS(U) / d) U."""
    g = _pre(g, rescale_grad, clip_gradient, maximize)
    eps1 = np.finfo(w.dtype).eps if epsilon1 is None else epsilon1
    decay = t ** beta2_decay        # 1 - beta2_t
    rho = min(lr, 1 / math.sqrt(t))
    alpha = max(epsilon2, np.sqrt(np.mean(w * w))) * rho
    w = w * (1 - lr * wd)
    s = dict(s)
    if w.ndim >= 2:
        r = s.get("row_var", np.zeros(w.shape[:-1] + (1,), w.dtype))
        c = s.get("col_var", np.zeros(w.shape[:-2] + (1, w.shape[-1]), w.dtype))
        r = r + decay * ((g * g).mean(axis=-1, keepdims=True) - r)
        c = c + decay * ((g * g).mean(axis=-2, keepdims=True) - c)
        s["row_var"], s["col_var"] = r, c
        v = (r @ c) / np.maximum(r.mean(axis=-2, keepdims=True), eps1)
    else:
        v = s.get("variance", np.zeros_like(w))
        v = v + decay * (g * g - v)
        s["variance"] = v
    u = g / np.sqrt(np.maximum(v, eps1 * eps1))
    rms_u = np.sqrt(np.mean(u * u))
    return w - alpha / max(1.0, rms_u / d) * u, s


MATRIX_RULES = {"muon": muon, "adafactor": adafactor}
