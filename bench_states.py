"""`optforge bench --device cpu --state-storage 8bit|bfloat16|bfloat16_stochastic`: steps with
quantized states (bfloat16_stochastic: bfloat16 rounded stochastically).

Per optimizer (Adam, AdamW) and layout (2^k parameters in one tensor, ResNet-50's 161
tensors): optforge's native kernels with the states stored in 8 bits or bfloat16 against
torch's fused fp32 optimizer and, for 8-bit states, bitsandbytes' 8-bit optimizer on CPU
tensors, all in this process with the same thread count, interleaved step by step (each
side runs while the others' thread pools are idle), so a change of the machine's load
shows on every side alike. Printed per row: the bytes per parameter a step moves (weight
and gradient read, weight written, each stored state read and written: codes and absmax,
or bfloat16), the state memory per parameter, min and median times, GB/s against the
streaming copy measured in the same run (bench.streaming_gbs), the speed over torch as
min / min and the range of the per-step ratios (this shared machine's speed varies), and
bitsandbytes' min time with optforge's speed over it. The load average (os.getloadavg) is
printed first: other jobs on the machine bias every number.
"""
import os
import statistics

import numpy

from . import bench

OPTIMIZERS = {"adam": ("Adam", "Adam8bit"), "adamw": ("AdamW", "AdamW8bit")}
PEER_MAX_LOG2 = 22      # bitsandbytes' CPU step takes about 0.3 s per 2^20 parameters: larger ones are not run
PEER_REPEAT = 3


def _stored_bytes(state):
    parts = state if isinstance(state, tuple) else (state,)
    return sum(getattr(p, "nbytes", 0) for p in parts)


def _ours(name, shapes, storage, rng):
    import optforge
    opt = optforge.create(name, flavor="torch", learning_rate=1e-3, aggregate_num=len(shapes),
                          state_storage=storage)
    weights = [rng.standard_normal(s, dtype=numpy.float32) for s in shapes]
    grads = [rng.standard_normal(s, dtype=numpy.float32) * 1e-2 for s in shapes]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    indices = list(range(len(shapes)))
    params = sum(w.size for w in weights)
    state_bytes = sum(_stored_bytes(s) for s in states)
    moved = 12 * params + 2 * state_bytes        # weight read and written, gradient read; states both ways
    return (lambda: opt.update(indices, weights, grads, states)), moved / params, state_bytes / params


def _bitsandbytes(name, shapes):
    try:
        import bitsandbytes
        import torch
    except ImportError:
        return None
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2
    return getattr(bitsandbytes.optim, OPTIMIZERS[name][1])(params, lr=1e-3).step


def run(storage="8bit", min_log2=20, max_log2=24, repeat=20, threads=None, optimizers=None, models=True,
        out=print):
    """The CPU benchmark of quantized states; returns the rows (dicts) it printed."""
    from .runtime.backends import native
    threads = threads or os.cpu_count() or 1
    native.set_num_threads(threads)
    import torch
    torch.set_num_threads(threads)
    roofline = bench.streaming_gbs(threads)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out(f"device: CPU ({os.cpu_count()} cores, {threads} threads each side; optforge {native.backend()} kernels; "
        f"torch {torch.__version__}); load average {load}; streaming copy: {roofline:.1f} GB/s")
    out(f"state storage {storage}; speed = torch fused fp32 time / optforge time (min / min, and the range of "
        f"the {repeat} interleaved steps' ratios); bnb = bitsandbytes' 8-bit optimizer on CPU tensors")
    out(f"{'optimizer':<10}{'layout':>10}{'params':>10}{'B/p':>7}{'state B/p':>10}{'min ms':>9}{'med ms':>9}"
        f"{'GB/s':>7}{'/copy':>7}{'torch ms':>9}{'speed':>7}{'range':>13}{'bnb ms':>9}{'x bnb':>8}")
    rng = numpy.random.default_rng(0)
    layouts = [(label, shapes) for label, shapes in bench.cpu_layouts(min_log2, max_log2, models)
               if label != "1000x4096"]
    rows = []
    for name in optimizers or list(OPTIMIZERS):
        for label, shapes in layouts:
            params = sum(int(numpy.prod(s)) for s in shapes)
            ours, moved, state = _ours(name, shapes, storage, rng)
            theirs = bench._cpu_torch(name, shapes)
            peer = _bitsandbytes(name, shapes) if storage == "8bit" and params <= 1 << PEER_MAX_LOG2 else None
            ours(), theirs()                 # warm up: kernels loaded, pages touched
            mine, torch_times, peer_times = [], [], []
            for k in range(repeat):          # interleaved: every side sees the same machine state
                mine.append(bench._timed(ours))
                torch_times.append(bench._timed(theirs))
                if peer is not None and k < PEER_REPEAT:
                    peer_times.append(bench._timed(peer))
            ratios = [t / m for t, m in zip(torch_times, mine)]
            row = {"optimizer": name, "layout": label, "params": params, "bytes": moved, "state_bytes": state,
                   "min": min(mine), "median": statistics.median(mine), "gbs": moved * params / min(mine) / 1e9,
                   "torch_min": min(torch_times), "speed": min(torch_times) / min(mine),
                   "speed_range": (min(ratios), max(ratios)), "bnb_min": min(peer_times) if peer_times else None}
            row["roofline"] = row["gbs"] / roofline
            bnb_text = (f"{row['bnb_min'] * 1e3:>9.1f}{row['bnb_min'] / row['min']:>8.0f}" if peer_times
                        else f"{'-':>9}{'-':>8}")
            out(f"{name:<10}{label:>10}{params:>10}{moved:>7.2f}{state:>10.3f}{row['min'] * 1e3:>9.3f}"
                f"{row['median'] * 1e3:>9.3f}{row['gbs']:>7.2f}{row['roofline']:>7.2f}"
                f"{row['torch_min'] * 1e3:>9.3f}{row['speed']:>7.2f}"
                f"{f'{min(ratios):.2f}-{max(ratios):.2f}':>13}{bnb_text}")
            rows.append(row)
            del ours, theirs, peer
    native.set_num_threads(None)
    return rows
