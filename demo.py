"""`optforge demo`: train one small model with every registered optimizer.

The model is a two-layer MLP (tanh hidden layer, softmax output) classifying a
seeded synthetic dataset of Gaussian clusters, written in plain NumPy. Every
optimizer starts from the same weights and sees the same minibatches through
MXNet's Updater API. The last HELD_OUT samples are held out; the table shows the
training loss after N/10 and N steps, the accuracy on the held-out split and the
steps per second, and checks each run against the pass rule of its family
(PASS_RULES). `--plot FILE` draws the loss curves (matplotlib).
"""
import sys
import time

import numpy

from .runtime import registry

# Sensible settings per optimizer for this problem (anything not listed uses its defaults).
SETTINGS = {
    "adabound": dict(learning_rate=0.01),
    "adadelta": dict(learning_rate=1.0),
    "adagrad": dict(learning_rate=0.1),
    "adam": dict(learning_rate=0.01),
    "adamax": dict(learning_rate=0.02),
    "adamw": dict(learning_rate=0.01, wd=0.01),
    "clippedadamw": dict(learning_rate=0.01, wd=0.01),
    # D-Adaptation overshoots on this small problem at lr = 1 (its default): half of it
    "dadaptadam": dict(learning_rate=0.5),
    "dcasgd": dict(learning_rate=0.1, momentum=0.9),
    "ftml": dict(learning_rate=0.01),
    "ftrl": dict(learning_rate=0.1, lamda1=0.0001),
    "adan": dict(learning_rate=0.01),
    "ademamix": dict(learning_rate=0.01),
    "adopt": dict(learning_rate=0.01),
    "aggmo": dict(learning_rate=0.05),
    "amsgrad": dict(learning_rate=0.01),
    "asgd": dict(learning_rate=0.3),
    "cadamw": dict(learning_rate=0.01, wd=0.01),
    "groupadagrad": dict(learning_rate=0.1),
    "kron": dict(learning_rate=0.01),
    "lion": dict(learning_rate=0.002),
    "muon": dict(learning_rate=0.02),
    "lamb": dict(learning_rate=0.02, wd=0.01),
    "lans": dict(learning_rate=0.02, wd=0.01),
    "lars": dict(learning_rate=1.0, momentum=0.9, eta=0.01),
    "nadam": dict(learning_rate=0.01),
    "nag": dict(learning_rate=0.1, momentum=0.9),
    "radam": dict(learning_rate=0.01),
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
HELD_OUT = 200     # of the 1200 samples: never trained on, scored for accuracy

# Families with their own pass rule; every other optimizer is "adaptive".
FAMILIES = {
    "momentum": {"sgd", "nag", "signum", "dcasgd", "lars", "lbsgd", "ccsgd", "test", "asgd", "aggmo"},
    "sampling": {"sgld"},      # Langevin dynamics: samples the posterior, noisy by design
}
# family: (the training loss after N/10 steps and after N steps are at most these fractions
# of the initial loss, the least held-out accuracy). Adaptive rules may start slowly (warm-up,
# accumulators); Langevin noise keeps SGLD's loss up.
PASS_RULES = {
    "adaptive": (0.9, 0.2, 0.90),
    "momentum": (0.5, 0.15, 0.90),
    "sampling": (0.9, 0.4, 0.85),
}


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


class Result:
    """One optimizer's run: the training loss along the way, and what it ends with."""

    def __init__(self, flavor, name, curve, early, final, accuracy, rate):
        self.flavor, self.name = flavor, name
        self.curve = curve          # [(step, training loss)], from step 0
        self.early = early          # training loss after steps // 10 steps
        self.final = final          # training loss after all steps
        self.accuracy = accuracy    # fraction of the held-out split classified right
        self.rate = rate            # optimizer steps per second (gradients included)


def split(x, labels, held_out=HELD_OUT):
    """(training x, labels), (held-out x, labels): the last `held_out` samples are never trained on."""
    return (x[:-held_out], labels[:-held_out]), (x[-held_out:], labels[-held_out:])


def accuracy(params, x, labels):
    w1, b1, w2, b2 = params
    predicted = (numpy.tanh(x @ w1 + b1) @ w2 + b2).argmax(axis=1)
    return float((predicted == labels).mean())


def train(flavor, name, steps, seed, data, **options):
    """Train with one optimizer; the training loss is recorded about 50 times along the way
    and at steps // 10 (outside the timed steps). `options`: further constructor arguments
    (state_storage="8bit", min_8bit_size=0: the same run with 8-bit states)."""
    (x, labels), (x_held, labels_held) = data
    settings = {"rescale_grad": 1.0 / BATCH, **SETTINGS.get(name, {}),
                **FLAVOR_SETTINGS.get((flavor, name), {}), **options}
    optimizer = registry.create(name, flavor=flavor, **settings)
    updater = _updater(optimizer)
    params = init_params(seed)
    trained = trained_params(optimizer, params)
    early_step = max(1, steps // 10)
    every = max(1, steps // 50)
    curve = [(0, loss_and_grads(params, x, labels)[0])]
    rng = numpy.random.default_rng(seed + 2)
    elapsed = 0.0
    for step in range(1, steps + 1):
        batch = rng.integers(0, len(labels), size=BATCH)
        start = time.perf_counter()
        _, grads = loss_and_grads(params, x[batch], labels[batch])
        updater(trained, [grads[i] for i in trained], [params[i] for i in trained])
        elapsed += time.perf_counter() - start
        if step % every == 0 or step in (early_step, steps):
            curve.append((step, loss_and_grads(params, x, labels)[0]))
    losses = dict(curve)
    return Result(flavor, name, curve, losses[early_step], losses[steps], accuracy(params, x_held, labels_held),
                  steps / elapsed)


def matrices_only(optimizer):
    """Whether the rule takes 2-D parameters only (Muon, as torch's): the demo then trains the
    MLP's two weight matrices with it and leaves the biases at their initial values."""
    return optimizer.SPEC.get("requires") == "ndim == 2"


def trained_params(optimizer, params):
    return [i for i, p in enumerate(params) if p.ndim == 2 or not matrices_only(optimizer)]


def _updater(optimizer):
    from .runtime.updater import get_updater
    return get_updater(optimizer)


def family(name):
    return next((f for f, names in FAMILIES.items() if name in names), "adaptive")


def verdict(result, initial):
    """'' when the run passes its family's rule (PASS_RULES), else what it missed."""
    early, final, least_accuracy = PASS_RULES[family(result.name)]
    misses = []
    if not (numpy.isfinite(result.early) and result.early <= early * initial):
        misses.append(f"loss at N/10 above {early:g} x initial")
    if not (numpy.isfinite(result.final) and result.final <= final * initial):
        misses.append(f"final loss above {final:g} x initial")
    if not result.accuracy >= least_accuracy:
        misses.append(f"held-out accuracy below {least_accuracy:.0%}")
    return "; ".join(misses)


def run(steps=300, seed=0, out=sys.stdout, plot=None):
    if steps < 10:
        raise ValueError(f"the demo needs at least 10 steps, got {steps}")
    pyplot = _pyplot() if plot is not None else None     # a missing matplotlib fails before training
    x, labels = make_data(seed)
    data = split(x, labels)
    initial = loss_and_grads(init_params(seed), *data[0])[0]
    optimizers = sorted(registry.registered(), key=lambda fn: (fn[0] != "mxnet2", fn))
    print(f"optforge demo: 2-layer MLP (8-32-4) on 4 Gaussian clusters: {len(data[0][1])} training and "
          f"{len(data[1][1])} held-out samples, {steps} steps of batch {BATCH}, seed {seed}; "
          f"initial training loss {initial:.4f} for every optimizer\n", file=out)
    header = (f"{'optimizer':<13} {'flavor':<7} {'family':<9} {'loss@' + str(max(1, steps // 10)):>9} "
              f"{'final loss':>10} {'held-out acc':>12} {'steps/s':>8}")
    print(header, file=out)
    print("-" * len(header), file=out)
    failed, results = [], []
    for flavor, name in optimizers:
        result = train(flavor, name, steps, seed, data)
        results.append(result)
        missed = verdict(result, initial)
        if missed:
            failed.append(f"{name} ({flavor})")
        print(f"{name:<13} {flavor:<7} {family(name):<9} {result.early:>9.4f} {result.final:>10.4f} "
              f"{result.accuracy:>12.1%} {result.rate:>8.0f}" + (f"   <- {missed}" if missed else ""), file=out)
    print(file=out)
    matrix_only = sorted({name for flavor, name in optimizers
                          if matrices_only(registry.lookup(name, flavor))})
    if matrix_only:
        print(f"{', '.join(matrix_only)}: 2-D parameters only (as torch.optim.Muon): trains the two weight "
              "matrices; the biases keep their initial zeros\n", file=out)
    if plot is not None:
        write_plot(results, plot, steps, pyplot)
        print(f"wrote the loss curves to {plot}", file=out)
    if failed:
        print(f"FAILED: {', '.join(failed)} missed the pass rule of their family", file=out)
        return 1
    print(f"all {len(optimizers)} optimizers passed the rule of their family", file=out)
    return 0


PLOT_SIZE = (12, 7)     # inches, at PLOT_DPI: a 1200 x 700 pixel image
PLOT_DPI = 100


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("optforge demo --plot needs matplotlib: pip install 'optforge[plot]'") from None
    matplotlib.use("Agg")    # files only: no display needed
    from matplotlib import pyplot
    return pyplot


def write_plot(results, path, steps, pyplot=None):
    """A PNG of every run's training loss, one panel per family (needs matplotlib)."""
    pyplot = pyplot or _pyplot()
    families = sorted({family(r.name) for r in results})
    figure, axes = pyplot.subplots(1, len(families), figsize=PLOT_SIZE, dpi=PLOT_DPI, squeeze=False)
    for ax, name in zip(axes[0], families):
        for r in results:
            if family(r.name) == name:
                ax.plot(*zip(*r.curve), label=f"{r.name} ({r.flavor})", linewidth=1)
        ax.set_title(f"{name} family")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.set_xlim(0, steps)
        ax.legend(fontsize=5, ncol=2)
    axes[0][0].set_ylabel("training loss (cross-entropy)")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=PLOT_DPI)
    pyplot.close(figure)
