"""Time small MXNet-style updates on NumPy arrays: the Python overhead of a step.

A 784-128-256-10 MLP's 6 float32 arrays, updated again and again with the same arrays
(`optforge.create(name, flavor=..., learning_rate=0.01)`; the default `aggregate_num`,
one `update` call for all 6 arrays): the minimum over `--repeat` back-to-back updates, per
optimizer, in microseconds. Uses only the public API, so the same script times any
installed optforge (BENCHMARKS.md, "small updates").

    python examples/small_updates.py [--repeat 2000] [--rounds 5]
"""
import argparse
import time

import numpy as np

import optforge

SHAPES = [(784, 128), (128,), (128, 256), (256,), (256, 10), (10,)]
CASES = [("sgd", "mxnet2", {"momentum": 0.9}), ("sgd", "torch", {"momentum": 0.9}),
         ("adam", "mxnet2", {}), ("adam", "torch", {})]


def time_updates(name, flavor, hyper, repeat):
    rng = np.random.default_rng(0)
    opt = optforge.create(name, flavor=flavor, learning_rate=0.01, **hyper)
    weights = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [rng.standard_normal(s).astype(np.float32) * 1e-3 for s in SHAPES]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    indices = list(range(len(SHAPES)))
    for _ in range(20):     # kernels built and loaded, launches kept
        opt.update(indices, weights, grads, states)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        opt.update(indices, weights, grads, states)
        best = min(best, time.perf_counter_ns() - start)
    return best / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole table (the VM drifts)")
    args = parser.parse_args()
    for _ in range(args.rounds):
        row = [f"{name}-{flavor}: {time_updates(name, flavor, hyper, args.repeat):.1f} us"
               for name, flavor, hyper in CASES]
        print("  ".join(row), flush=True)


if __name__ == "__main__":
    main()
