"""Where a step of a rule with group reductions spends its time: the partials stage against
the update (not installed; run from a checkout).

A step of Prodigy, DAdaptAdam or ClippedAdamW (MXNet style, `optforge.create(name)`, one
`update` over every parameter: the group) runs in three parts, timed here step by step by
wrapping the engine's functions (nothing else changes):
- partials: `runtime.engine.group.values`, the partials stage (a generated rule of its own,
  `generated/*/_group_<spec>`, launched like any rule: its native multi-tensor reduction
  pass) and the float64 sums over the group;
- plan: the rest of `Launch.plan` (host scalars per parameter, the kernels looked up);
- update: `Launch.run`, the native multi-tensor kernels;
- other: the rest of `update` (the MXNet-style call's checks and bookkeeping);
and for comparison AdamW (torch flavor, wd 0.01), whose step is the update alone (a kept launch: its
parts are not split). Every optimizer is created with aggregate_num = the tensor count, as
`optforge bench` does, so that each step is one launch. Layouts:
ResNet-50's 161 tensors, 2^k parameters in one tensor, and 161 one-element tensors (the
per-tensor Python cost, where the arrays' cost is negligible). Interleaved: each step of
each rule in turn, `repeat` steps after one warm-up. Prints min and median ms of each part
and the partials' share of the step's median. Prints the load average first: other jobs on
the machine bias every number.

    python examples/group_stage_split.py [--threads N] [--repeat R] [log2 ...]
"""
import argparse
import os
import statistics
import time

import numpy as np

import optforge
from optforge.bench import resnet50_shapes
from optforge.runtime.backends import native
from optforge.runtime.engine import engine as engine_module
from optforge.runtime.engine import group

RULES = {"prodigy": {"learning_rate": 1.0}, "dadaptadam": {"learning_rate": 1.0},
         "clippedadamw": {"learning_rate": 1e-3, "wd": 0.01, "max_norm": 1.0}}
PARTS = ("partials", "plan", "update")
COLUMNS = ("step",) + PARTS + ("other",)


class Stopwatch:
    """Seconds spent in each wrapped function since the last `take()`, exclusive of the
    wrapped calls inside it: the partials stage runs inside the step's `Launch.plan`, as a
    launch of its own (its plan and run count as partials, not as the step's)."""

    def __init__(self):
        self.spent = dict.fromkeys(PARTS, 0.0)
        self.stack = []     # [part, seconds spent in wrapped calls inside it]

    def wrap(self, owner, attr, part):
        inner = getattr(owner, attr)

        def timed(*args, **kwargs):
            counted = "partials" if any(frame[0] == "partials" for frame in self.stack) else part
            self.stack.append([counted, 0.0])
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                _, nested = self.stack.pop()
                self.spent[counted] += elapsed - nested
                if self.stack:
                    self.stack[-1][1] += elapsed
        setattr(owner, attr, timed)

    def take(self):
        spent, self.spent = self.spent, dict.fromkeys(PARTS, 0.0)
        return spent


def _setup(name, flavor, hyper, shapes, rng):
    opt = optforge.create(name, flavor=flavor, aggregate_num=len(shapes), **hyper)
    weights = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    indices = list(range(len(shapes)))
    return lambda: opt.update(indices, weights, grads, states)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("log2", nargs="*", type=int, default=[20, 22])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    native.set_num_threads(args.threads)
    watch = Stopwatch()
    watch.wrap(group, "values", "partials")     # (engine.Launch.plan calls group.values through the module)
    watch.wrap(engine_module.Launch, "plan", "plan")
    watch.wrap(engine_module.Launch, "run", "update")
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {native.num_threads()} threads "
          f"({native.backend()} kernels); min / median ms of {args.repeat} steps")
    print(f"{'rule':<14}{'layout':>9}" + "".join(f"{c:>20}" for c in COLUMNS) + f"{'partials/step':>15}")
    layouts = [("resnet50", resnet50_shapes())] + [(f"2^{k}", [(1 << k,)]) for k in args.log2] \
        + [("161 x 1", [(1,)] * 161)]
    rng = np.random.default_rng(0)
    for label, shapes in layouts:
        steps = {name: _setup(name, "mxnet2", hyper, shapes, rng) for name, hyper in RULES.items()}
        steps["adamw (torch)"] = _setup("adamw", "torch", {"learning_rate": 1e-3, "wd": 0.01}, shapes, rng)
        times = {name: {part: [] for part in COLUMNS} for name in steps}
        for step in steps.values():
            step()                               # warm up: kernels built or loaded, pages touched
        watch.take()
        for _ in range(args.repeat):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name]["step"].append(time.perf_counter() - start)
                for part, seconds in watch.take().items():
                    times[name][part].append(seconds)
                # (each part's time is its own: the plan's leaves out the partials it called)
                times[name]["other"].append(times[name]["step"][-1] - sum(times[name][p][-1] for p in PARTS))
        for name, found in times.items():
            split = any(found["update"])
            cells = [f"{min(found[k]) * 1e3:.3f} / {statistics.median(found[k]) * 1e3:.3f}"
                     if split or k == "step" else "-" for k in COLUMNS]
            share = f"{statistics.median(found['partials']) / statistics.median(found['step']):.2f}" if split else "-"
            print(f"{name:<14}{label:>9}" + "".join(f"{c:>20}" for c in cells) + f"{share:>15}")
        del steps


if __name__ == "__main__":
    main()
