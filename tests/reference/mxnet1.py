"""Hand-written references for MXNet 1.x semantics (the 1.x column of
shared/reference/mxnet-optimizers.md, sections 2 and 3), in plain NumPy.

Where 1.x fails outright (DCASGD with momentum, Signum with momentum 0 and wd_lh)
the reference is the formula the code intends. Rules identical to 2.0 (Signum,
SGLD, Ftrl) are taken from the 2.0 references.
"""
import math

import numpy as np

from . import mxnet2
from .mxnet2 import clip, l2


def sgd(w, g, mom, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0):
    g = clip(g * rescale_grad, clip_gradient)           # wd stays outside the clipped gradient
    if momentum == 0:
        return (1 - lr * wd) * w - lr * g, None
    mom = momentum * mom - lr * wd * w - lr * g
    return w + mom, mom


def nag(w, g, mom, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0):
    g = clip(g * rescale_grad, clip_gradient)
    if momentum == 0:
        return (1 - lr * wd) * w - lr * g, None
    # the in-place kernel: weight first, then the momentum reads the updated weight
    w_new = w + momentum * momentum * mom - (1 + momentum) * lr * (g + wd * w)
    mom = momentum * mom - lr * (g + wd * w_new)
    return w_new, mom


def ftml(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.6, beta2=0.999, epsilon=1e-8):
    d, v, z = state
    g = clip(g * rescale_grad + wd * w, clip_gradient)   # wd before clipping
    v = beta2 * v + (1 - beta2) * g * g
    d_t = (1 - beta1 ** t) / lr * (np.sqrt(v / (1 - beta2 ** t)) + epsilon)
    z = beta1 * z + (1 - beta1) * g - (d_t - beta1 * d) * w
    return -z / d_t, (d_t, v, z)


def dcasgd(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0, lamda=0.04):
    g = clip(g * rescale_grad, clip_gradient)
    if momentum == 0:
        prev = state
        step = -lr * (g + wd * w + lamda * g * g * (w - prev))
        return w + step, w.copy()
    mom, prev = state
    step = -lr * (g + wd * w + lamda * g * g * (w - prev))
    mom = momentum * mom + step
    return w + mom, (mom, w.copy())


def adam(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999, epsilon=1e-8):
    m, v = state
    g = clip(g * rescale_grad + wd * w, clip_gradient)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - lr_t * m / (np.sqrt(v) + epsilon), (m, v)


def adagrad(w, g, h, *, lr, wd, t, rescale_grad, clip_gradient, eps=1e-7):
    g = clip(g * rescale_grad, clip_gradient)
    h = h + g * g
    return w - lr * (g / np.sqrt(h + eps) + wd * w), h


def rmsprop(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, gamma1=0.9, gamma2=0.9,
            epsilon=1e-8, centered=False, clip_weights=None):
    g = clip(g * rescale_grad + wd * w, clip_gradient)
    if centered:
        n, gbar, delta = state
        n = (1 - gamma1) * g * g + gamma1 * n
        gbar = (1 - gamma1) * g + gamma1 * gbar
        delta = gamma2 * delta - lr * g / np.sqrt(n - gbar * gbar + epsilon)
        w = w + delta
        new_state = (n, gbar, delta)
    else:
        n = (1 - gamma1) * g * g + gamma1 * state
        w = w - lr * g / np.sqrt(n + epsilon)
        new_state = n
    if clip_weights is not None:
        w = np.clip(w, -clip_weights, clip_weights)
    return w, new_state


def adadelta(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, rho=0.9, epsilon=1e-5):
    acc_g, acc_delta = state
    g = clip(g * rescale_grad, clip_gradient)
    acc_g = rho * acc_g + (1 - rho) * g * g
    delta = np.sqrt(acc_delta + epsilon) / np.sqrt(acc_g + epsilon) * g
    acc_delta = rho * acc_delta + (1 - rho) * delta * delta
    return w - delta - wd * w, (acc_g, acc_delta)      # lr is ignored


def adamax(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999):
    m, u = state
    g = clip(g * rescale_grad + wd * w, clip_gradient)
    m = beta1 * m + (1 - beta1) * g
    u = np.maximum(beta2 * u, np.abs(g))
    return w - lr / (1 - beta1 ** t) * m / u, (m, u)   # no epsilon


def nadam(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, beta1=0.9, beta2=0.999,
          epsilon=1e-8, schedule_decay=0.004):
    # 1.x differs from 2.0 only in adding wd before clipping: feed the 2.0 reference g' directly
    pre = clip(g * rescale_grad + wd * w, clip_gradient)
    return mxnet2.nadam(w, pre, state, lr=lr, wd=0.0, t=t, rescale_grad=1.0, clip_gradient=None,
                        beta1=beta1, beta2=beta2, epsilon=epsilon, schedule_decay=schedule_decay)


def test(w, g, state, *, lr, wd, t, rescale_grad, clip_gradient):
    w = w + rescale_grad * g
    return w, w.copy()


def groupadagrad(w, g, h, *, lr, wd, t, rescale_grad, clip_gradient, eps=1e-5):
    g = clip(g * rescale_grad, clip_gradient)
    h = h + np.mean(g * g, axis=tuple(range(1, g.ndim)), keepdims=True)
    return w - lr * g / np.sqrt(h + eps), h


def lamb(w, g, state, **kw):
    return mxnet2.lamb(w, g, state, **kw)


class Lars:
    """1.x LARS keeps the previous learning rate for its momentum correction."""

    def __init__(self):
        self.last_lr = {}

    def __call__(self, w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0, eta=0.001,
                 eps=0.0, momentum_correction=True, name="", named=False, index=0):
        if named and not name.endswith("_weight"):   # 1.x LARS: only *_weight parameters decay
            wd = 0.0
        mu = momentum
        last = self.last_lr.get(index, 0.0)
        if momentum_correction and last != 0:
            mu = momentum * lr / last
        self.last_lr[index] = lr
        if not name.endswith(("gamma", "beta", "bias")):
            w_norm, g_norm = l2(w), l2(g * rescale_grad)
            if w_norm > 0 and g_norm > 0:
                lr = lr * eta * w_norm / (g_norm + wd * w_norm + eps)
        g = clip(g * rescale_grad, clip_gradient)
        if momentum == 0:
            return (1 - lr * wd) * w - lr * g, None
        mom = state[0] if momentum_correction else state
        mom = mu * mom - lr * wd * w - lr * g
        new_state = (mom, np.array(self.last_lr[index])) if momentum_correction else mom
        return w + mom, new_state


class Lbsgd:
    """1.x LBSGD: gradients summed over batch_scale calls, warmup multiplier on the lr."""

    def __init__(self):
        self.num_cums = {}
        self.cum_grad = {}

    def __call__(self, w, g, state, *, lr, wd, t, rescale_grad, clip_gradient, momentum=0.0,
                 warmup_strategy="linear", warmup_epochs=5, batch_scale=1, updates_per_epoch=32,
                 begin_epoch=0, num_epochs=60, index=0):
        n = self.num_cums.get(index, 0)
        n = n + 1 if n > 0 else begin_epoch * updates_per_epoch + 1
        self.num_cums[index] = n
        cum = self.cum_grad.get(index, 0) + g
        mom = state[0] if momentum != 0 else None
        if n % batch_scale == 0:
            g = cum / batch_scale
            cum = np.zeros_like(w)
            if warmup_strategy == "lars":
                w2, g2 = l2(w) ** 2, l2(g) ** 2
                mult = min(max(math.sqrt(w2 / (g2 + wd * w2 + 1e-18)), 0.01), 100)
            else:
                nwup = warmup_epochs * updates_per_epoch
                if n >= nwup:
                    mult = batch_scale
                elif nwup <= 1:
                    mult = 1.0
                elif warmup_strategy == "linear":
                    mult = 1.0 + (batch_scale - 1) * n / nwup
                elif warmup_strategy == "power2":
                    mult = 1.0 + (batch_scale - 1) * (n * n) / (nwup * nwup)
                else:
                    mult = 1.0 + (batch_scale - 1) * math.sqrt(n / nwup)
            w, mom = sgd(w, g, mom, lr=lr * mult, wd=wd, t=t, rescale_grad=rescale_grad,
                         clip_gradient=clip_gradient, momentum=momentum)
        self.cum_grad[index] = cum
        parts = ([mom] if momentum != 0 else []) + [cum, np.array(float(n))]
        return w, tuple(parts)


RULES = {
    "sgd": sgd, "ccsgd": sgd, "nag": nag, "signum": mxnet2.signum, "ftml": ftml, "dcasgd": dcasgd,
    "sgld": mxnet2.sgld, "adam": adam, "adagrad": adagrad, "rmsprop": rmsprop, "adadelta": adadelta,
    "ftrl": mxnet2.ftrl, "adamax": adamax, "nadam": nadam, "test": test, "groupadagrad": groupadagrad,
    "lamb": lamb, "lars": Lars, "lbsgd": Lbsgd,
}
