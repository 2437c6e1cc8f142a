"""Times a compiled optimizer step on the CPU: torch.compile over a function calling
opt.step(), for optforge.torch.Adam (its step is one custom op running the native kernels)
and torch.optim.Adam (Inductor compiles its step into fused C++ loops), interleaved in one
process, plus optforge.torch.Adam's eager step.

    python examples/compiled_step.py [--sizes 1048576 16777216] [--tensors 8] [--repeats 5]
                                     [--only optforge|torch|eager]

Each size is split into `--tensors` float32 parameters; each cell is the min and median
over `--repeats` rounds of 20 timed steps (after 5 warm-up steps, which compile).
torch's kernels and the native ones run on two OpenMP thread pools (torch's bundled
libgomp and the system's); interleaved in one process, the pool that ran last keeps
spinning into the other's step, so `--only` times one column per process."""
import argparse
import statistics
import time

import torch

import optforge.torch as ot


def _make(cls, shapes, **kwargs):
    params = [torch.zeros(n).requires_grad_() for n in shapes]
    for p in params:
        p.grad = torch.randn(p.shape) * 1e-3
    return cls(params, lr=1e-3, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1 << 20, 1 << 24])
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["optforge", "torch", "eager"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for size in args.sizes:
        shapes = [size // args.tensors] * args.tensors
        ours, theirs, eager = _make(ot.Adam, shapes), _make(torch.optim.Adam, shapes), \
            _make(ot.Adam, shapes)
        runs = {"optforge compiled": torch.compile(lambda: ours.step(), fullgraph=True),
                # (torch.optim's step breaks the graph once, in its grad-mode wrapper: no fullgraph)
                "torch compiled": torch.compile(lambda: theirs.step()),
                "optforge eager": eager.step}
        if args.only:
            runs = {name: run for name, run in runs.items() if name.startswith(args.only) or
                    (args.only == "eager" and name == "optforge eager")}
            runs = {name: run for name, run in runs.items() if args.only != "optforge" or "compiled" in name}
        for run in runs.values():
            for _ in range(5):
                run()
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():     # interleaved: a load change hits every column
                start = time.perf_counter()
                for _ in range(20):
                    run()
                times[name].append((time.perf_counter() - start) / 20 * 1e3)
        cells = "  ".join(f"{name}: {min(t):.2f} / {statistics.median(t):.2f} ms" for name, t in times.items())
        print(f"{size:>10} params  {cells}")


if __name__ == "__main__":
    main()
