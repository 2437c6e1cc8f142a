"""CPU optimizer-step throughput: optforge's step and fused_step against the machine's copy
bandwidth and, when torch is installed, torch's fused and foreach CPU optimizers, all
measured in the same run.

    python benchmarks/cpu_step.py [--sizes 20,22,24] [--repeat 5] [--threads 2]

An optimizer step is memory-bound, so the figure that matters is achieved bandwidth:
the minimum bytes a step must move (Adam fp32: read w, g, m, v and write w, m, v =
28 B/param; SGD with momentum 20; LAMB 40 in two passes) divided by the step time.
"""
import argparse
import os
import platform
import time

import numpy

import optforge

BYTES_PER_PARAM = {"adam": 28, "sgd": 20, "lamb": 40}
SETTINGS = {"adam": dict(learning_rate=1e-3), "sgd": dict(learning_rate=0.1, momentum=0.9),
            "lamb": dict(learning_rate=1e-3)}


def best_time(fn, repeat):
    fn()   # warm up (allocations, caches)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth(n, repeat):
    """Read + write GB/s of a float32 copy on every core (halves copied in parallel threads,
    NumPy releases the GIL), the roofline a step is compared with."""
    from concurrent.futures import ThreadPoolExecutor
    src = numpy.random.default_rng(0).standard_normal(n, dtype=numpy.float32)
    dst = numpy.empty_like(src)
    workers = os.cpu_count() or 1
    bounds = [(k * n // workers, (k + 1) * n // workers) for k in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        def copy():
            list(pool.map(lambda b: numpy.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]), bounds))
        seconds = best_time(copy, repeat)
    return 2 * 4 * n / seconds / 1e9


def optforge_step(name, n, fused, rng):
    opt = optforge.create(name, use_fused_step=fused, **SETTINGS[name])
    w = rng.standard_normal(n, dtype=numpy.float32)
    g = rng.standard_normal(n, dtype=numpy.float32)
    state = opt.create_state(0, w)
    return lambda: opt.update(0, w, g, state)


def torch_step(name, n, mode):
    import torch
    cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}.get(name)
    if cls is None:
        return None
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n)
    kwargs = dict(lr=1e-3) if name == "adam" else dict(lr=0.1, momentum=0.9)
    opt = cls([p], **kwargs, **{mode: True})
    return opt.step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,22,24", help="log2 of the parameter counts")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--optimizers", default="adam,sgd,lamb")
    args = parser.parse_args(argv)
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; numpy {numpy.__version__}; "
          f"torch {torch_version or 'not installed'}")
    rng = numpy.random.default_rng(0)
    header = f"{'optimizer':<9} {'params':>10} {'path':<18} {'ms/step':>9} {'ns/param':>9} {'GB/s':>7} " \
             f"{'vs copy':>8} {'vs torch fused':>15}"
    for exponent in (int(e) for e in args.sizes.split(",")):
        n = 2 ** exponent
        copy = copy_bandwidth(n, args.repeat)
        print(f"\n2^{exponent} = {n} params: copy bandwidth {copy:.1f} GB/s (float32, all cores)")
        print(header)
        for name in args.optimizers.split(","):
            rows = [("optforge step", optforge_step(name, n, False, rng)),
                    ("optforge fused", optforge_step(name, n, True, rng))]
            if torch_version:
                rows += [("torch fused", torch_step(name, n, "fused")),
                         ("torch foreach", torch_step(name, n, "foreach"))]
            times = {label: best_time(fn, args.repeat) for label, fn in rows if fn is not None}
            for label, seconds in times.items():
                gbs = BYTES_PER_PARAM[name] * n / seconds / 1e9
                vs_torch = times.get("torch fused")
                ratio = f"{vs_torch / seconds:>14.2f}x" if vs_torch else f"{'-':>15}"
                print(f"{name:<9} {n:>10} {label:<18} {seconds * 1e3:>9.2f} {seconds / n * 1e9:>9.2f} "
                      f"{gbs:>7.1f} {gbs / copy:>7.2f}x {ratio}")


if __name__ == "__main__":
    main()
