"""Hand-written references for MXNet 2.0 optimizer semantics.

Written from shared/reference/mxnet-optimizers.md (sections 2.0 and 3, the 2.0
column), in plain NumPy, independently of specs/ and generated/. Each function
takes the weight, the gradient and the state of one parameter and returns the
new weight and state (nothing is modified in place). States have optforge's
layout: None, one array, or a tuple in the documented order.

g' denotes the 2.0 gradient: clip(rescale_grad * g, clip_gradient) + wd * w.
"""
import math

import numpy as np


def clip(x, c):
    return x if c is None else np.clip(x, -c, c)


def grad20(w, g, rescale_grad, clip_gradient, wd):
    """2.0's g' = clip(r g, c) + wd w (wd added after clipping)."""
    return clip(g * rescale_grad, clip_gradient) + wd * w


def sgd(w, g, mom, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0):
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    if momentum == 0:
        return w - lr * g, None
    mom = momentum * mom - lr * g
    return w + mom, mom


def nag(w, g, mom, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.9):
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    if momentum == 0:
        return w - lr * g, None
    mom = momentum * mom - lr * g
    return w + momentum * mom - lr * g, mom


def signum(w, g, mom, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.9, wd_lh=0.0):
    if momentum == 0:  # signSGD: rescale and clip do not change the sign
        return (1 - lr * (wd + wd_lh)) * w - lr * np.sign(g), None
    mom = momentum * mom - (1 - momentum) * grad20(w, g, rescale_grad, clip_gradient, wd)
    return (1 - lr * wd_lh) * w + lr * np.sign(mom), mom


def ftml(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.6, beta2=0.999, epsilon=1e-8):
    d, v, z = state
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    v = beta2 * v + (1 - beta2) * g * g
    d_t = (1 - beta1 ** t) / lr * (np.sqrt(v / (1 - beta2 ** t)) + epsilon)
    z = beta1 * z + (1 - beta1) * g - (d_t - beta1 * d) * w
    return -z / d_t, (d_t, v, z)


def dcasgd(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0, lamda=0.04):
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    if momentum == 0:
        prev = state
        d = g + lamda * g * g * (w - prev)
        return w - lr * d, w.copy()
    mom, prev = state
    d = g + lamda * g * g * (w - prev)
    mom = momentum * mom - lr * d
    return w + mom, (mom, w.copy())


def sgld(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, noise):
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    w = w - lr / 2 * g
    return w + noise * math.sqrt(lr), None


def adam(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999, epsilon=1e-8):
    m, v = state
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - lr_t * m / (np.sqrt(v) + epsilon), (m, v)


def adamw(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999,
          epsilon=1e-6, correct_bias=True):
    """The 2.0 class's fused path: decoupled wd scaled by the bias-corrected lr, no wd in g."""
    if rescale_grad == 0 or not math.isfinite(rescale_grad):
        return w, state
    m, v = state
    g = clip(g * rescale_grad, clip_gradient)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    eta = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) if correct_bias else lr
    return w - eta * (m / (np.sqrt(v) + epsilon) + wd * w), (m, v)


def adamax(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999, epsilon=1e-8):
    m, u = state
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    m = beta1 * m + (1 - beta1) * g
    u = np.maximum(beta2 * u, np.abs(g))
    return w - lr / (1 - beta1 ** t) * m / (u + epsilon), (m, u)


def nadam(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999,
          epsilon=1e-8, schedule_decay=0.004):
    """m_schedule per parameter (the documented deviation from MXNet's shared scalar)."""
    m, v, m_schedule = state
    m_schedule = float(m_schedule)
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * schedule_decay))
    mu_t1 = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * schedule_decay))
    m_schedule = m_schedule * mu_t
    m_schedule_next = m_schedule * mu_t1
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    g_prime = g / (1 - m_schedule)
    m_prime = m / (1 - m_schedule_next)
    v_prime = v / (1 - beta2 ** t)
    m_bar = (1 - mu_t) * g_prime + mu_t1 * m_prime
    return w - lr * m_bar / (np.sqrt(v_prime) + epsilon), (m, v, np.array(m_schedule))


def adagrad(w, g, h, *, lr, wd, t, rescale_grad, clip_gradient, epsilon=1e-6):
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    h = h + g * g
    return w - lr * g / (np.sqrt(h) + epsilon), h


def adadelta(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, rho=0.9, epsilon=1e-6):
    acc_g, acc_delta = state
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    acc_g = rho * acc_g + (1 - rho) * g * g
    delta = np.sqrt(acc_delta + epsilon) / np.sqrt(acc_g + epsilon) * g
    acc_delta = rho * acc_delta + (1 - rho) * delta * delta
    return w - lr * delta, (acc_g, acc_delta)


def rmsprop(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, rho=0.9, momentum=0.9,
            epsilon=1e-8, centered=False, clip_weights=None):
    g = grad20(w, g, rescale_grad, clip_gradient, wd)
    if centered:
        mean, var, mom = state
        mean = rho * mean + (1 - rho) * g
        var = rho * var + (1 - rho) * g * g
        mom = momentum * mom - lr * g / np.sqrt(var - mean * mean + epsilon)
        w = w + mom
        new_state = (mean, var, mom)
    else:
        var = rho * state + (1 - rho) * g * g
        w = w - lr * g / (np.sqrt(var) + epsilon)
        new_state = var
    if clip_weights is not None:
        w = np.clip(w, -clip_weights, clip_weights)
    return w, new_state


def ftrl(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, lamda1=0.01, beta=1.0):
    z, n = state
    g = clip(g * rescale_grad, clip_gradient)
    z = z + g - (np.sqrt(n + g * g) - np.sqrt(n)) * w / lr
    n = n + g * g
    # 1.x writes the same thing as (sign(z) * lamda1 - z) / (...) * (|z| > lamda1)
    w = (np.sign(z) * lamda1 - z) / ((beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > lamda1)
    return w, (z, n)


def test(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient):
    return w - lr * (g * rescale_grad + wd * w), None


def l2(x):
    """The L2 norm, accumulated in float64 (the implementation uses float32 or wider)."""
    return float(np.sqrt(np.sum(np.asarray(x, dtype=np.float64) ** 2)))


def lamb(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999, epsilon=1e-6,
         lower_bound=None, upper_bound=None, bias_correction=True):
    m, v = state
    g = clip(g * rescale_grad, clip_gradient)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    if bias_correction:
        u = (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + epsilon) + wd * w
    else:
        u = m / (np.sqrt(v) + epsilon) + wd * w
    r1 = l2(w)
    if lower_bound is not None:
        r1 = max(r1, lower_bound)
    if upper_bound is not None:
        r1 = min(r1, upper_bound)
    r2 = l2(u)
    trust = 1.0 if r1 == 0 or r2 == 0 else r1 / r2
    return w - lr * trust * u, (m, v)


def lans(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999, epsilon=1e-6,
         lower_bound=None, upper_bound=None):
    m, v = state
    g = g * rescale_grad
    norm_g = l2(g)
    g = clip(g / norm_g if norm_g > 0 else g * 0, clip_gradient)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    d = np.sqrt(v / (1 - beta2 ** t)) + epsilon
    u_m = (m / (1 - beta1 ** t)) / d + wd * w
    u_g = g / d + wd * w
    r1 = l2(w)
    if lower_bound is not None:
        r1 = max(r1, lower_bound)
    if upper_bound is not None:
        r1 = min(r1, upper_bound)
    tau_m = 1.0 if r1 == 0 or l2(u_m) == 0 else r1 / l2(u_m)
    tau_g = 1.0 if r1 == 0 or l2(u_g) == 0 else r1 / l2(u_g)
    return w - lr * (beta1 * tau_m * u_m + (1 - beta1) * tau_g * u_g), (m, v)


def lars(w, g, mom, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0, eta=0.001, epsilon=1e-8,
         name=""):
    if not name.endswith(("gamma", "beta", "bias")):
        w_norm, g_norm = l2(w), l2(g * rescale_grad)
        if w_norm > 0 and g_norm > 0:
            lr = lr * eta * w_norm / (g_norm + wd * w_norm + epsilon)
    return sgd(w, g, mom, lr=lr, wd=wd, t=t, rescale_grad=rescale_grad, clip_gradient=clip_gradient,
               momentum=momentum)


def groupadagrad(w, g, h, *, lr, wd, t, rescale_grad, clip_gradient, epsilon=1e-6):
    assert wd == 0
    g = clip(g * rescale_grad, clip_gradient)
    h = h + np.mean(g * g, axis=tuple(range(1, g.ndim)), keepdims=True)
    return w - lr * g / (np.sqrt(h) + epsilon), h


def adabelief(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999,
              epsilon=1e-6, correct_bias=True):
    if rescale_grad == 0 or not math.isfinite(rescale_grad):
        return w, state
    m, s = state
    g = clip(g * rescale_grad + wd * w, clip_gradient)   # wd before clipping
    m = beta1 * m + (1 - beta1) * g
    s = beta2 * s + (1 - beta2) * (g - m) ** 2 + epsilon
    eta = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) if correct_bias else lr
    return w - eta * m / (np.sqrt(s) + epsilon), (m, s)


RULES = {
    "sgd": sgd, "nag": nag, "signum": signum, "ftml": ftml, "dcasgd": dcasgd, "sgld": sgld,
    "adam": adam, "adamw": adamw, "adamax": adamax, "nadam": nadam, "adagrad": adagrad,
    "adadelta": adadelta, "rmsprop": rmsprop, "ftrl": ftrl, "test": test,
    "lamb": lamb, "lans": lans, "lars": lars, "groupadagrad": groupadagrad, "adabelief": adabelief,
}
