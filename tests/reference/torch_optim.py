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
