"""`optforge demo`: train one small model with every registered optimizer.

The model is a two-layer MLP (tanh hidden layer, softmax output) classifying a
seeded synthetic dataset of Gaussian clusters, written in plain NumPy. Every
optimizer starts from the same weights and sees the same minibatches through
MXNet's Updater API; the table shows how far each one brings the loss.
"""
import sys
import time

import numpy

from .runtime import registry

# Sensible settings per optimizer for this problem (anything not listed uses its defaults).
SETTINGS = {
    "adadelta": dict(learning_rate=1.0),
    "adagrad": dict(learning_rate=0.1),
    "adam": dict(learning_rate=0.01),
    "adamax": dict(learning_rate=0.02),
    "adamw": dict(learning_rate=0.01, wd=0.01),
    "dcasgd": dict(learning_rate=0.1, momentum=0.9),
    "ftml": dict(learning_rate=0.01),
    "ftrl": dict(learning_rate=0.1, lamda1=0.0001),
    "adan": dict(learning_rate=0.01),
    "ademamix": dict(learning_rate=0.01),
    "adopt": dict(learning_rate=0.01),
    "amsgrad": dict(learning_rate=0.01),
    "cadamw": dict(learning_rate=0.01, wd=0.01),
    "groupadagrad": dict(learning_rate=0.1),
    "lion": dict(learning_rate=0.002),
    "lamb": dict(learning_rate=0.02, wd=0.01),
    "lans": dict(learning_rate=0.02, wd=0.01),
    "lars": dict(learning_rate=1.0, momentum=0.9, eta=0.01),
    "nadam": dict(learning_rate=0.01),
    "nag": dict(learning_rate=0.1, momentum=0.9),
    "rmsprop": dict(learning_rate=0.005),
    "sgd": dict(learning_rate=0.1, momentum=0.9),
    # Langevin dynamics samples the posterior of all N examples: the gradient is the
    # sum over the dataset (rescale_grad = N / batch) and the noise has variance lr.
    "sgld": dict(learning_rate=1e-4, seed=1, rescale_grad=1200 / 64),
    "signum": dict(learning_rate=0.005),
    "sparseadam": dict(learning_rate=0.01),
    "test": dict(learning_rate=0.1),
}
# Where a flavor's rule needs other settings than its MXNet 2.0 counterpart.
FLAVOR_SETTINGS = {
    # MXNet 1.x's Test optimizer adds rescale_grad * grad: a negative scale descends
    ("mxnet1", "test"): dict(rescale_grad=-0.1 / 64),
    ("mxnet1", "lbsgd"): dict(learning_rate=0.1, momentum=0.9, batch_scale=2, warmup_epochs=1,
                              updates_per_epoch=20),
    ("mxnet1", "ccsgd"): dict(learning_rate=0.1, momentum=0.9),
    ("mxnet1", "lars"): dict(learning_rate=1.0, momentum=0.9, eta=0.01),
}
BATCH = 64


def make_data(seed, n=1200, features=8, classes=4):
    rng = numpy.random.default_rng(seed)
    centers = rng.normal(0.0, 2.0, size=(classes, features))
    labels = rng.integers(0, classes, size=n)
    x = centers[labels] + rng.normal(0.0, 1.5, size=(n, features))
    return x.astype(numpy.float32), labels


def init_params(seed, features=8, hidden=32, classes=4):
    rng = numpy.random.default_rng(seed + 1)
    return [
        (rng.normal(0, 1 / numpy.sqrt(features), (features, hidden))).astype(numpy.float32),
        numpy.zeros(hidden, numpy.float32),
        (rng.normal(0, 1 / numpy.sqrt(hidden), (hidden, classes))).astype(numpy.float32),
        numpy.zeros(classes, numpy.float32),
    ]


def loss_and_grads(params, x, labels):
    """Mean cross-entropy and the gradients of its sum over the batch."""
    w1, b1, w2, b2 = params
    h = numpy.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    logits -= logits.max(axis=1, keepdims=True)
    p = numpy.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -numpy.log(p[numpy.arange(n), labels] + 1e-12).mean()
    dlogits = p
    dlogits[numpy.arange(n), labels] -= 1
    dw2 = h.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dh = (dlogits @ w2.T) * (1 - h * h)
    dw1 = x.T @ dh
    db1 = dh.sum(axis=0)
    grads = [dw1, db1, dw2, db2]
    return float(loss), [g.astype(numpy.float32) for g in grads]


def train(flavor, name, steps, seed, x, labels):
    settings = {"rescale_grad": 1.0 / BATCH, **SETTINGS.get(name, {}),
                **FLAVOR_SETTINGS.get((flavor, name), {})}
    optimizer = registry.create(name, flavor=flavor, **settings)
    updater = _updater(optimizer)
    params = init_params(seed)
    first, _ = loss_and_grads(params, x, labels)
    rng = numpy.random.default_rng(seed + 2)
    start = time.perf_counter()
    for _ in range(steps):
        batch = rng.integers(0, len(labels), size=BATCH)
        _, grads = loss_and_grads(params, x[batch], labels[batch])
        updater(list(range(len(params))), grads, params)
    elapsed = time.perf_counter() - start
    last, _ = loss_and_grads(params, x, labels)
    return first, last, steps / elapsed


def _updater(optimizer):
    from .runtime.updater import get_updater
    return get_updater(optimizer)


def run(steps=300, seed=0, out=sys.stdout):
    x, labels = make_data(seed)
    optimizers = sorted(registry.registered(), key=lambda fn: (fn[0] != "mxnet2", fn))
    print(f"optforge demo: 2-layer MLP (8-32-4), {len(labels)} samples in 4 Gaussian clusters, "
          f"{steps} steps of batch {BATCH}, seed {seed}\n", file=out)
    header = (f"{'optimizer':<13} {'flavor':<7} {'initial loss':>12} {'final loss':>10} "
              f"{'reduction':>9} {'steps/s':>9}")
    print(header, file=out)
    print("-" * len(header), file=out)
    failed = []
    for flavor, name in optimizers:
        first, last, rate = train(flavor, name, steps, seed, x, labels)
        reduction = 100.0 * (first - last) / first
        ok = numpy.isfinite(last) and last < first
        if not ok:
            failed.append(f"{name} ({flavor})")
        print(f"{name:<13} {flavor:<7} {first:>12.4f} {last:>10.4f} {reduction:>8.1f}% {rate:>9.0f}"
              + ("" if ok else "   <- did not reduce the loss"), file=out)
    print(file=out)
    if failed:
        print(f"FAILED: {', '.join(failed)} did not reduce the loss", file=out)
        return 1
    print(f"all {len(optimizers)} optimizers reduced the loss", file=out)
    return 0
