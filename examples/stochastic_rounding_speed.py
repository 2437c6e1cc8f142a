"""The native kernels of stochastically rounded bfloat16 states against the NumPy code they
replace (not installed; run from a checkout).

AdamW (torch flavor) on one float32 tensor of 2^k parameters with state_storage=
"bfloat16_stochastic", three ways, interleaved step by step, `repeat` steps each:
- kernels: the native f32_qbf16sr kernel (load, math and stochastic store in one pass);
- numpy: the NumPy code between `quantized.load` and `quantized.store`, what ran before
  these kernels existed (the engine told there are no quantized kernels);
- nearest: state_storage="bfloat16", the f32_qbf16 kernel, for the cost of the random bits.
Before timing, one step of each of the first two from the same arrays must give the same
bits. Prints the load average first: other jobs on the machine bias every number.

    python examples/stochastic_rounding_speed.py [--threads N] [--repeat R] [log2 ...]
"""
import argparse
import contextlib
import os
import statistics
import time

import numpy as np

import optforge
from optforge.runtime.backends import native
from optforge.runtime.engine import engine as engine_module


def _setup(storage, n, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    opt = optforge.create("adamw", flavor="torch", learning_rate=1e-3, wd=0.01, state_storage=storage)
    w = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32) * 1e-2
    return opt, w, g, opt.create_state(0, w)


@contextlib.contextmanager
def _numpy_path():
    """Stored states run the NumPy code inside: the engine finds no quantized kernels."""
    saved = engine_module._quantized_kernels
    engine_module._quantized_kernels = lambda *a: False
    try:
        yield
    finally:
        engine_module._quantized_kernels = saved


def _bits(w, state):
    return [w.view(np.uint32).copy()] + [s.view(np.uint16).copy() for s in state]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("log2", nargs="*", type=int, default=[16, 20, 22])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    native.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f}, threads {native.num_threads()}")
    for k in args.log2:
        n = 1 << k
        # the same bits: one step of the kernels and one of the NumPy code from the same arrays
        opt, w, g, state = _setup("bfloat16_stochastic", n)
        ref_opt, ref_w, _, ref_state = _setup("bfloat16_stochastic", n)
        opt.update([0], [w], [g], [state])
        with _numpy_path():
            ref_opt.update([0], [ref_w], [g], [ref_state])
        for x, y in zip(_bits(w, state), _bits(ref_w, ref_state)):
            assert np.array_equal(x, y), "the kernels and the NumPy code disagree"
        sides = {"kernels": _setup("bfloat16_stochastic", n), "numpy": _setup("bfloat16_stochastic", n),
                 "nearest": _setup("bfloat16", n)}
        times = {name: [] for name in sides}
        for step in range(args.repeat + 1):         # step 0 warms up: kernels loaded, pages touched
            for name, (opt, w, g, state) in sides.items():
                with _numpy_path() if name == "numpy" else contextlib.nullcontext():
                    start = time.perf_counter()
                    opt.update([0], [w], [g], [state])
                    if step:
                        times[name].append(time.perf_counter() - start)
        line = "  ".join(f"{name} min {min(ts) * 1e3:8.3f} / med {statistics.median(ts) * 1e3:8.3f} ms"
                         for name, ts in times.items())
        print(f"2^{k}: {line}  numpy / kernels {min(times['numpy']) / min(times['kernels']):.1f}x")


if __name__ == "__main__":
    main()
