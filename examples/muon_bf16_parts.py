"""Where a Muon step with ns_dtype="bfloat16" spends its time against torch.optim.Muon (not
installed; run from a checkout).

Times optforge.torch.Muon(ns_dtype="bfloat16"), torch.optim.Muon and torch's Newton-Schulz
function alone (the part both sides share, operation for operation) on one float32 matrix,
interleaved, 2 threads; min and median. With `ns_steps` 1 the element-wise work around the
iteration weighs most: a step's time less the iteration's is that work.

    python examples/muon_bf16_parts.py 1024 4096 20 1
    python examples/muon_bf16_parts.py 4096 4096 4 1
"""
import sys
import time

import torch
from torch.optim._muon import _zeropower_via_newtonschulz

import optforge.torch
from optforge.runtime.backends import native


def main(rows=1024, cols=4096, rounds=20, ns_steps=5):
    torch.set_num_threads(2)
    native.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)

    def made(cls, **kwargs):
        p = torch.randn(rows, cols, generator=gen).requires_grad_()
        p.grad = torch.randn(rows, cols, generator=gen)
        return cls([p], ns_steps=ns_steps, **kwargs)

    ours, theirs = made(optforge.torch.Muon, ns_dtype="bfloat16"), made(torch.optim.Muon)
    update = torch.randn(rows, cols, generator=gen)
    parts = {"optforge step": ours.step, "torch step": theirs.step,
             "torch iteration": lambda: _zeropower_via_newtonschulz(update, (3.4445, -4.7750, 2.0315),
                                                                      ns_steps, 1e-7)}
    for run in parts.values():     # warm-up: states, kernels, pages
        run()
    times = {name: [] for name in parts}
    for _ in range(rounds):        # interleaved: each part sees the same machine state
        for name, run in parts.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    for name, spent in times.items():
        spent.sort()
        print(f"{rows}x{cols} ns_steps={ns_steps} {name:16s} min {spent[0] * 1e3:9.1f} ms  "
              f"median {spent[len(spent) // 2] * 1e3:9.1f} ms")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:5]))
