"""`optforge bench`: optimizer step bandwidth against the same machine's copy bandwidth.

GPU (default): for fp32 Adam (28 bytes per parameter), SGD with momentum (20) and LAMB
(40, its 2-pass minimum) at 2^20 .. 2^28 parameters and for a ResNet-50-shaped list of
161 tensors, it prints the achieved GB/s (bytes the step must move / time), the
device-to-device copy GB/s measured in the same run, their ratio and, when torch is
installed, the ratio against torch's fused Adam/SGD on the same sizes.

CPU (`--device cpu`, `run_cpu`): `fused_step` on NumPy arrays (the native CPU kernels)
against torch.optim on the same sizes, interleaved step by step in the same process with
the same thread count (torch.set_num_threads and the kernels' set_num_threads): torch's
fused CPU optimizers for Adam, AdamW, SGD and Adagrad, its foreach implementation for
RMSprop, Adamax, NAdam, RAdam and Adadelta (torch has no fused one), LAMB without a
torch peer, and the rules with group reductions against their authors' packages (Prodigy
against prodigyopt.Prodigy, DAdaptAdam against dadaptation.DAdaptAdam) and ClippedAdamW
against torch.nn.utils.clip_grad_norm_ (foreach) followed by torch's fused AdamW. Per
optimizer and layout (2^16 .. 2^26 parameters, ResNet-50's 161 tensors,
1000 tensors of 4096): min and median of the timed steps, GB/s of the bytes the rule must
move, that over the all-core streaming copy bandwidth measured in the same run (a native
copy, `bench_copy.cpp`, on the kernels' threads), and the
speed ratio torch time / optforge time. `--plot FILE` draws GB/s against size (needs
matplotlib: pip install 'optforge[plot]').
"""
import os
import statistics
import time

import numpy

BYTES = {"adam": 28, "sgd": 20, "lamb": 40}
SETTINGS = {"adam": {}, "sgd": {"momentum": 0.9}, "lamb": {}}


def resnet50_shapes():
    """Parameter shapes of torchvision's ResNet-50: 161 tensors, 25.6 M parameters."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += [(planes, inplanes, 1, 1), (planes,), (planes,), (planes, planes, 3, 3), (planes,), (planes,),
                       (planes * 4, planes, 1, 1), (planes * 4,), (planes * 4,)]
            if block == 0:
                shapes += [(planes * 4, inplanes, 1, 1), (planes * 4,), (planes * 4,)]
            inplanes = planes * 4
    return shapes + [(1000, 2048), (1000,)]


class Clock:
    """Best-of-n wall time of a callable: CUDA events on the GPU, perf_counter on the CPU."""

    def __init__(self, xp):
        self.xp = xp

    def best(self, fn, repeat):
        fn()   # warm up (compiles kernels on first use)
        times = []
        for _ in range(repeat):
            if self.xp is numpy:
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            else:
                start, stop = self.xp.cuda.Event(), self.xp.cuda.Event()
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                times.append(self.xp.cuda.get_elapsed_time(start, stop) / 1e3)
        return min(times)


def copy_gbs(xp, clock, n, repeat):
    """Read + write GB/s of a float32 copy. On the CPU every core copies its own part (the
    fused CPU step also runs on every core), so the roofline is comparable."""
    src = xp.asarray(numpy.random.default_rng(1).standard_normal(n, dtype=numpy.float32))
    dst = xp.empty_like(src)
    if xp is numpy:
        import os
        from concurrent.futures import ThreadPoolExecutor
        workers = os.cpu_count() or 1
        parts = [slice(k * n // workers, (k + 1) * n // workers) for k in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            def copy():
                list(pool.map(lambda part: numpy.copyto(dst[part], src[part]), parts))
            return 8 * n / clock.best(copy, repeat) / 1e9
    return 8 * n / clock.best(lambda: xp.copyto(dst, src), repeat) / 1e9


def optforge_step(xp, name, shapes, rng):
    import optforge
    opt = optforge.create(name, use_fused_step=True, aggregate_num=len(shapes), **SETTINGS[name])
    weights = [xp.asarray(rng.standard_normal(s).astype(numpy.float32)) for s in shapes]
    grads = [xp.asarray(rng.standard_normal(s).astype(numpy.float32)) for s in shapes]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    indices = list(range(len(shapes)))
    return lambda: opt.update(indices, weights, grads, states)


def torch_step(name, shapes, device):
    try:
        import torch
    except ImportError:
        return None
    if name not in ("adam", "sgd") or (device == "cuda" and not torch.cuda.is_available()):
        return None
    params = [torch.randn(s, device=device, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(params, fused=True) if name == "adam" \
        else torch.optim.SGD(params, lr=0.1, momentum=0.9, fused=True)
    opt.step()
    return opt.step


def run(device="gpu", min_log2=20, max_log2=28, repeat=10, out=print):
    if device == "gpu":
        try:
            import cupy as xp
        except ImportError:
            raise SystemExit("optforge bench: the GPU benchmark needs CuPy (pip install 'optforge[cuda]'); "
                             "--device cpu times the NumPy code") from None
        if not xp.cuda.is_available():
            raise SystemExit("optforge bench: no usable CUDA GPU (use --device cpu)")
        name = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)["name"].decode()
    else:
        xp, name = numpy, "CPU (NumPy)"
    clock = Clock(xp)
    rng = numpy.random.default_rng(0)
    copy = copy_gbs(xp, clock, 1 << max(min(max_log2, 28), 24), repeat)
    out(f"device: {name}; device-to-device copy: {copy:.1f} GB/s (read + write of a float32 array)")
    out(f"{'optimizer':<10}{'params':>22}{'tensors':>9}{'ms':>10}{'GB/s':>9}{'/copy':>8}{'torch ms':>10}{'torch/ours':>11}")
    layouts = [(f"2^{k}", [(1 << k,)]) for k in range(min_log2, max_log2 + 1)] + [("resnet50", resnet50_shapes())]
    for opt_name in BYTES:
        for label, shapes in layouts:
            params = sum(int(numpy.prod(s)) for s in shapes)
            seconds = clock.best(optforge_step(xp, opt_name, shapes, rng), repeat)
            gbs = BYTES[opt_name] * params / seconds / 1e9
            peer = torch_step(opt_name, shapes, "cuda" if device == "gpu" else "cpu")
            peer_s = clock_torch(peer, device, repeat) if peer is not None else None
            peer_text = f"{peer_s * 1e3:>10.3f}{peer_s / seconds:>11.2f}" if peer_s else f"{'-':>10}{'-':>11}"
            out(f"{opt_name:<10}{label + f' ({params})':>22}{len(shapes):>9}{seconds * 1e3:>10.3f}{gbs:>9.1f}"
                f"{gbs / copy:>8.2f}{peer_text}")


def clock_torch(step, device, repeat):
    import torch
    if device != "gpu":
        return Clock(numpy).best(step, repeat)
    step()
    times = []
    for _ in range(repeat):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return min(times)


# -- CPU: the native kernels against torch.optim ------------------------------------------

# name: (optforge flavor, optforge hyperparameters, torch class, torch keyword arguments, tier)
CPU_OPTIMIZERS = {
    "adam": ("torch", {}, "Adam", {}, "fused"),
    "adamw": ("torch", {}, "AdamW", {}, "fused"),
    "sgd": ("torch", {"momentum": 0.9}, "SGD", {"lr": 0.01, "momentum": 0.9}, "fused"),
    "adagrad": ("torch", {}, "Adagrad", {}, "fused"),
    "rmsprop": ("torch", {}, "RMSprop", {}, "foreach"),
    "adamax": ("torch", {}, "Adamax", {}, "foreach"),
    "nadam": ("torch", {}, "NAdam", {}, "foreach"),
    "radam": ("torch", {}, "RAdam", {}, "foreach"),
    "adadelta": ("torch", {}, "Adadelta", {}, "foreach"),
    "lamb": ("mxnet2", {}, None, {}, "-"),
    # group reductions: the partials stage over every parameter, then the update. A dotted
    # peer is a class of another package (its per-tensor loop of torch operations: "single");
    # a row is left without a peer when that package is not installed
    "prodigy": ("mxnet2", {"learning_rate": 1.0}, "prodigyopt.Prodigy", {"lr": 1.0}, "single"),
    "dadaptadam": ("mxnet2", {"learning_rate": 1.0}, "dadaptation.DAdaptAdam", {"lr": 1.0}, "single"),
    "clippedadamw": ("mxnet2", {"wd": 0.01, "max_norm": 1.0}, "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, "fused"),
    # matrix rules (their generated NumPy code: products through BLAS) on matrix layouts
    "muon": ("torch", {}, "Muon", {}, "single"),
    # optforge.torch.Muon with torch's bfloat16 Newton-Schulz (its products through torch):
    # runs after muon's rows whenever muon is named
    "muon-bf16": ("torch", {"ns_dtype": "bfloat16"}, "Muon", {}, "single"),
    "adafactor": ("torch", {}, "Adafactor", {}, "foreach"),
    # Shampoo against torch-optimizer's: every step a refresh (update_freq = 1, both defaults:
    # two inverse roots per step), and, run after it, steps between refreshes (the roots kept)
    "shampoo": ("mxnet2", {}, "torch_optimizer.Shampoo", {}, "single"),
    "shampoo-kept": ("mxnet2", {"update_freq": 10 ** 6}, "torch_optimizer.Shampoo", {"update_freq": 10 ** 6},
                     "single"),
    # SOAP against pytorch_optimizer's: the steps between refreshes (precondition_frequency
    # = 10, both defaults: the timed steps 2-6 rotate into the kept bases), and every step a
    # refresh (the sorted power iteration's QR of both bases)
    "soap": ("mxnet2", {}, "pytorch_optimizer.SOAP", {}, "single"),
    "soap-refresh": ("mxnet2", {"precondition_frequency": 1}, "pytorch_optimizer.SOAP",
                     {"precondition_frequency": 1}, "single"),
    # PSGD-Kron against pytorch_optimizer's: both update the preconditioner on every step of
    # the timed ones (their schedules' first 500 steps): two triangular solves, the fit's
    # products and the preconditioned step
    "kron": ("mxnet2", {}, "pytorch_optimizer.Kron", {}, "single"),
}
MATRIX_OPTIMIZERS = ("muon", "muon-bf16", "adafactor", "shampoo", "shampoo-kept", "soap", "soap-refresh", "kron")
# rows of optforge.torch on torch tensors (the name of its rule), not of the MXNet-style class on NumPy arrays
TORCH_FRONTEND = {"muon-bf16": "muon", "shampoo": "shampoo", "shampoo-kept": "shampoo", "soap": "soap",
                  "soap-refresh": "soap", "kron": "kron"}
COMPANIONS = {"muon": "muon-bf16", "shampoo": "shampoo-kept", "soap": "soap-refresh"}   # measured with the rule named
# A Muon step on a 4096 x 4096 matrix takes seconds on the CPU: the matrix rules sweep up
# to 2^22 parameters (2048 x 2048) besides the two matrices, with at most 5 steps
# per side, so that both rules' rows finish in one run of a few minutes
MATRIX_MAX_LOG2 = 22
MATRIX_REPEAT = 5
# Rules with reductions: the bytes of their minimum number of passes (codegen/stages.py
# plans LAMB in 2 passes: read p, g, m, v and write m, v; then read p, m, v and write p).
# Group reductions need a pass over the group before the update (28 B for Adam's update,
# 36 B with s as well): Prodigy's partials read g, p0, p and s (16 B; p0 is never written),
# DAdaptAdam's g, s and v (12 B; with wd = 0, as benchmarked), ClippedAdamW's g (4 B).
PASS_BYTES = {"lamb": 40, "prodigy": 52, "dadaptadam": 48, "clippedadamw": 32,
              # compute-bound (products, eigendecompositions): the weight and gradient alone; the
              # step time, not GB/s, is the measure
              "shampoo": 12, "shampoo-kept": 12, "soap": 12, "soap-refresh": 12, "kron": 12}
# Peers whose step is torch.nn.utils.clip_grad_norm_(params, max_norm) and then the optimizer's
CLIP_FIRST = {"clippedadamw": 1.0}


def cpu_layouts(min_log2=16, max_log2=26, models=True, matrices=False):
    if matrices:   # one matrix of 2**k parameters per size, and the two matrices of the benchmark
        layouts = [(f"{1 << k // 2}x{1 << (k - k // 2)}", [(1 << k // 2, 1 << (k - k // 2))])
                   for k in range(min_log2, min(max_log2, MATRIX_MAX_LOG2) + 1)]
        return layouts + ([("1024x4096", [(1024, 4096)]), ("4096x4096", [(4096, 4096)])] if models else [])
    layouts = [(f"2^{k}", [(1 << k,)]) for k in range(min_log2, max_log2 + 1)]
    if models:
        layouts += [("resnet50", resnet50_shapes()), ("1000x4096", [(4096,)] * 1000)]
    return layouts


def bytes_per_parameter(name, opt, weight):
    """Bytes an fp32 step must move per parameter: weight and gradient read, weight written,
    every weight-sized state read and written (or the 2-pass minimum of a rule with norms)."""
    if name in PASS_BYTES:
        return PASS_BYTES[name]
    if name in TORCH_FRONTEND:      # the same rule's traffic
        import optforge
        rule = TORCH_FRONTEND[name]
        return bytes_per_parameter(rule, optforge.create(rule, flavor=CPU_OPTIMIZERS[name][0]), weight)
    states = [s for s in _parts(opt.create_state(0, weight)) if getattr(s, "size", 0) == weight.size]
    return 4 * (3 + 2 * len(states))


def _parts(state):
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_optforge(name, shapes, rng):
    import optforge
    flavor, hyper, _, _, _ = CPU_OPTIMIZERS[name]
    if name in TORCH_FRONTEND:      # optforge.torch's class on torch tensors (their memory)
        import torch
        import optforge.torch
        params = [torch.from_numpy(rng.standard_normal(s, dtype=numpy.float32)).requires_grad_() for s in shapes]
        for p in params:
            p.grad = torch.from_numpy(rng.standard_normal(p.shape, dtype=numpy.float32))
        opt = optforge.torch.create(TORCH_FRONTEND[name], params, flavor=flavor, lr=1e-3, **hyper)
        return opt, opt.step
    opt = optforge.create(name, flavor=flavor, aggregate_num=len(shapes), **{"learning_rate": 1e-3, **hyper})
    weights = [rng.standard_normal(s, dtype=numpy.float32) for s in shapes]
    grads = [rng.standard_normal(s, dtype=numpy.float32) for s in shapes]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    indices = list(range(len(shapes)))
    return opt, (lambda: opt.update(indices, weights, grads, states))


def _peer_failed(step, label, out):
    """Run the peer's step; on a RuntimeError (torch-optimizer's Shampoo: an SVD that does
    not converge on a preconditioner with repeated eigenvalues) say so and return True."""
    try:
        step()
    except RuntimeError as err:
        out(f"{label}: the peer's step failed: {str(err).splitlines()[0]}")
        return True
    return False


def _cpu_torch(name, shapes):
    _, _, cls, kwargs, tier = CPU_OPTIMIZERS[name]
    if cls is None:
        return None
    import torch
    if "." in cls:
        import importlib
        package, _, cls_name = cls.rpartition(".")
        try:
            cls = getattr(importlib.import_module(package), cls_name)
        except ImportError:
            return None
    else:
        cls = getattr(torch.optim, cls)
    params = [torch.randn(s) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    tiers = {"fused": {"fused": True}, "foreach": {"foreach": True}, "single": {}}   # Muon has one implementation
    opt = cls(params, **dict(kwargs, **tiers[tier]))
    if name not in CLIP_FIRST:
        return opt.step
    max_norm = CLIP_FIRST[name]

    def clipped_step():
        torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        opt.step()
    return clipped_step


def peers_text(names):
    """The peers outside torch.optim among these optimizers, with their versions: '' if none."""
    from importlib import metadata
    found = []
    for name in names:
        cls = CPU_OPTIMIZERS[name][2]
        if cls is not None and "." in cls:
            package = cls.split(".")[0]
            try:
                found.append(f"{name}: {package} {metadata.version(package)} {cls.split('.')[-1]}")
            except metadata.PackageNotFoundError:
                found.append(f"{name}: {package} not installed")
        elif name in CLIP_FIRST:
            found.append(f"{name}: clip_grad_norm_(max_norm={CLIP_FIRST[name]}, foreach) then {cls} "
                         f"({CPU_OPTIMIZERS[name][4]})")
    return "; peers " + ", ".join(found) if found else ""


def streaming_gbs(threads, n=1 << 25, repeat=5):
    """All-core streaming bandwidth: read + write GB/s of a float32 copy by native code
    (`bench_copy.cpp`, built and cached by native_build as the kernels are) on `threads`
    OpenMP threads, split as the kernels split a tensor; the faster of ordinary and
    non-temporal stores. NaN where the native kernels do not run (no compiler)."""
    import ctypes
    from pathlib import Path
    from .runtime.backends import native, native_build
    if native.backend() != "native":
        return float("nan")
    lib = native_build.load(Path(__file__).with_name("bench_copy.cpp"))
    src = numpy.random.default_rng(1).standard_normal(n, dtype=numpy.float32)
    dst = numpy.zeros_like(src)             # written once: its pages exist before the timing
    args = (ctypes.c_void_p(src.ctypes.data), ctypes.c_void_p(dst.ctypes.data), ctypes.c_longlong(n),
            ctypes.c_int(threads))
    best = float("inf")
    for copy in (lib.stream_copy, lib.stream_copy_nt):
        copy(*args)
        best = min([best] + [_timed(lambda: copy(*args)) for _ in range(repeat)])
    if not numpy.array_equal(src, dst):
        raise RuntimeError("the streaming copy did not copy")
    return 8 * n / best / 1e9


def run_cpu(min_log2=16, max_log2=26, repeat=20, threads=None, optimizers=None, models=True, plot=None, out=print):
    """The CPU benchmark; returns the rows (dicts) it printed."""
    from .runtime.backends import native
    threads = threads or os.cpu_count() or 1
    native.set_num_threads(threads)
    try:
        import torch
        torch.set_num_threads(threads)
        peer = f"torch {torch.__version__}"
    except ImportError:
        torch, peer = None, "torch not installed"
    backend = native.backend()
    roofline = streaming_gbs(threads)
    names = optimizers or [n for n in CPU_OPTIMIZERS if n not in MATRIX_OPTIMIZERS]
    names = [m for n in names for m in (n, COMPANIONS.get(n)) if m is not None]
    names = [n for k, n in enumerate(names) if n not in names[:k]]
    if torch is not None:
        peer += peers_text(names)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())    # other jobs on the machine bias every number
    out(f"device: CPU ({os.cpu_count()} cores, {threads} threads each side; optforge {backend} kernels; {peer}); "
        f"load average {load}; streaming copy: {roofline:.1f} GB/s (read + write, all threads)")
    out(f"{'optimizer':<13}{'layout':>11}{'params':>10}{'tensors':>8}{'B/p':>5}{'min ms':>10}{'med ms':>10}"
        f"{'GB/s':>9}{'/copy':>8}{'torch':>9}{'min ms':>10}{'med ms':>10}{'GB/s':>9}{'speed':>8}")
    rng = numpy.random.default_rng(0)
    rows = []
    # the matrix rules run only when named: a Newton-Schulz step on a 4096 x 4096 matrix
    # takes seconds on the CPU, minutes for the whole sweep
    for name in names:
        for label, shapes in cpu_layouts(min_log2, max_log2, models, matrices=name in MATRIX_OPTIMIZERS):
            params = sum(int(numpy.prod(s)) for s in shapes)
            opt, ours = _cpu_optforge(name, shapes, rng)
            sample = numpy.zeros((2, 2) if name in MATRIX_OPTIMIZERS else 4, numpy.float32)
            moved = bytes_per_parameter(name, opt, sample) * params
            theirs = _cpu_torch(name, shapes) if torch is not None else None
            ours()                          # warm up: builds or loads the kernels, touches the pages
            mine, peer_times = [], []
            if theirs is not None and _peer_failed(theirs, f"{name} {label}", out):
                theirs = None
            steps = min(repeat, MATRIX_REPEAT) if name in MATRIX_OPTIMIZERS else repeat
            for _ in range(steps):          # interleaved: both sides see the same machine state
                mine.append(_timed(ours))
                if theirs is not None:
                    start = time.perf_counter()
                    if _peer_failed(theirs, f"{name} {label}", out):
                        theirs = None       # the steps it finished keep their times
                    else:
                        peer_times.append(time.perf_counter() - start)
            row = {"optimizer": name, "layout": label, "params": params, "tensors": len(shapes),
                   "bytes": moved // params, "min": min(mine), "median": statistics.median(mine),
                   "gbs": moved / min(mine) / 1e9, "tier": CPU_OPTIMIZERS[name][4] if theirs else "-"}
            row["roofline"] = row["gbs"] / roofline
            if peer_times:
                row.update(torch_min=min(peer_times), torch_median=statistics.median(peer_times),
                           torch_gbs=moved / min(peer_times) / 1e9, speed=min(peer_times) / min(mine))
                peer_text = (f"{row['tier']:>9}{row['torch_min'] * 1e3:>10.3f}{row['torch_median'] * 1e3:>10.3f}"
                             f" {row['torch_gbs']:>8.3g} {row['speed']:>7.3g}")
            else:
                peer_text = f"{'-':>9}{'-':>10}{'-':>10}{'-':>9}{'-':>8}"
            out(f"{name:<13}{label:>11}{params:>10}{len(shapes):>8}{row['bytes']:>5}{row['min'] * 1e3:>10.3f}"
                f"{row['median'] * 1e3:>10.3f} {row['gbs']:>8.3g} {row['roofline']:>7.3g}{peer_text}")
            rows.append(row)
            del opt, ours, theirs
    native.set_num_threads(None)
    if plot:
        plot_cpu(rows, roofline, plot)
        out(f"plot: {plot}")
    return rows


def plot_cpu(rows, roofline, path):
    """GB/s against parameters per optimizer (single-tensor sizes): optforge, torch and the
    streaming copy roofline, one panel per optimizer."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("optforge bench --plot needs matplotlib: pip install 'optforge[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    columns = min(len(names), 4)
    lines = -(-len(names) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4 * columns, 3.2 * lines), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names):
        sized = [r for r in rows if r["optimizer"] == name and r["tensors"] == 1]
        x = [r["params"] for r in sized]
        ax.plot(x, [r["gbs"] for r in sized], "o-", label="optforge")
        if any("torch_gbs" in r for r in sized):
            ax.plot(x, [r.get("torch_gbs", float("nan")) for r in sized], "s--", label=f"torch {sized[0]['tier']}")
        ax.axhline(roofline, color="grey", linestyle=":", label="streaming copy")
        ax.set_xscale("log", base=2)
        ax.set_title(name)
        ax.set_xlabel("parameters")
        ax.set_ylabel("GB/s")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- CPU: optforge.torch against torch.optim's fused optimizers in a torch loop -----------

# name: (optforge.torch / torch.optim class, keyword arguments of both)
TORCH_LOOP_OPTIMIZERS = {"adam": ("Adam", {"lr": 1e-3}), "adamw": ("AdamW", {"lr": 1e-3}),
                         "sgd": ("SGD", {"lr": 0.01, "momentum": 0.9})}
MLP_SIZES = (784, 128, 256, 10)     # 136,074 parameters in 6 tensors
LOOP_BLOCK = 10     # consecutive steps of one side before the other's (run_torch_loop)


def overhead_target_us(tensors):
    """The Python overhead a step may have (issue 9): 30 us plus 1 us per tensor."""
    return 30.0 + tensors


def mlp(torch):
    """The benchmark's MLP: Linear layers of MLP_SIZES with ReLU between them."""
    layers = []
    for fan_in, fan_out in zip(MLP_SIZES, MLP_SIZES[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def run_torch_loop(repeat=20, threads=None, optimizers=None, out=print):
    """optforge.torch against torch.optim (fused=True) on CPU tensors, each optimizer in a
    fresh process (its figures do not depend on what ran before it: after Adam's and
    AdamW's cases in the same process, both sides' 1000-tensor SGD steps took 1.7-1.8x their
    time in a fresh process), both sides in one process there, in alternating blocks of LOOP_BLOCK steps
    (`repeat` steps per side, rounded up to whole blocks) with equal thread counts (one
    OpenMP pool: both libraries use torch's libgomp); returns the rows it printed. Cases: a
    training step of a 136 k-parameter MLP (forward, backward, step), the MLP's step alone,
    the step alone over ResNet-50's 161 parameter shapes, and the Python overhead (the step
    over 161 and 1000 one-element tensors, where the kernels' time is negligible) with the
    target 30 us + 1 us per tensor."""
    import concurrent.futures
    import multiprocessing

    threads = threads or os.cpu_count() or 1
    rows = []
    for k, name in enumerate(optimizers or TORCH_LOOP_OPTIMIZERS):
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            header, lines, found = pool.submit(_torch_loop_one, name, repeat, threads).result()
        for line in (header if k == 0 else []) + lines:
            out(line)
        rows += found
    return rows


def _torch_loop_one(name, repeat, threads):
    """One optimizer's rows of run_torch_loop: (header lines, row lines, rows)."""
    import torch

    import optforge.torch as oftorch

    from .runtime.backends import native
    native.set_num_threads(threads)
    torch.set_num_threads(threads)
    header = [f"device: CPU ({os.cpu_count()} cores, {threads} threads each side; optforge {native.backend()} "
              f"kernels; torch {torch.__version__} fused); min and median of {repeat} steps per side, "
              f"alternating blocks of {LOOP_BLOCK}, each optimizer in a fresh process",
              f"{'optimizer':<10}{'case':>15}{'tensors':>8}{'min ms':>10}{'med ms':>10}{'torch min':>11}"
              f"{'med ms':>10}{'speed':>8}{'overhead us':>13}{'target us':>11}"]
    lines = []
    out = lines.append
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, MLP_SIZES[0], generator=generator)
    labels = torch.randint(0, MLP_SIZES[-1], (64,), generator=generator)
    rows = []
    cls, kwargs = TORCH_LOOP_OPTIMIZERS[name]

    def make(kind, shapes=None):
        """(ours, theirs): the two timed callables of one case."""
        sides = []
        for factory in (lambda p: getattr(oftorch, cls)(p, **kwargs),
                        lambda p: getattr(torch.optim, cls)(p, fused=True, **kwargs)):
            torch.manual_seed(0)
            if shapes is None:
                model = mlp(torch)
                params = list(model.parameters())
            else:
                model, params = None, [torch.randn(s, generator=generator).requires_grad_() for s in shapes]
            opt = factory(params)
            if kind == "train":
                def train(model=model, opt=opt):
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(model(inputs), labels).backward()
                    opt.step()
                sides.append(train)
            else:
                for p in params:
                    p.grad = torch.randn(p.shape, generator=generator) * 1e-3
                sides.append(opt.step)
        return sides

    cases = [("mlp-train", "train", None), ("mlp-step", "step", None),
             ("resnet50-step", "step", resnet50_shapes()),
             ("overhead-161", "step", [(1,)] * 161), ("overhead-1000", "step", [(1,)] * 1000)]
    for label, kind, shapes in cases:
        ours, theirs = make(kind, shapes)
        ours(), theirs()                 # warm up: kernels loaded, states made
        mine, peer = [], []
        # alternating blocks of consecutive steps: both sides see the same machine state,
        # and each step follows its own side's step, as in a training loop (a step right
        # after the other side's finds the caches holding that side's tensors)
        for _ in range(-(-repeat // LOOP_BLOCK)):
            for side, times in ((ours, mine), (theirs, peer)):
                times.extend(_timed(side) for _ in range(LOOP_BLOCK))
        count = len(shapes) if shapes is not None else len(MLP_SIZES) * 2 - 2
        row = {"optimizer": name, "case": label, "tensors": count, "min": min(mine),
               "median": statistics.median(mine), "torch_min": min(peer), "torch_median": statistics.median(peer),
               "speed": min(peer) / min(mine)}
        overhead = target = "-"
        if label.startswith("overhead"):
            row["overhead_us"], row["target_us"] = min(mine) * 1e6, overhead_target_us(count)
            overhead, target = f"{row['overhead_us']:.0f}", f"{row['target_us']:.0f}"
        out(f"{name:<10}{label:>15}{count:>8}{row['min'] * 1e3:>10.3f}{row['median'] * 1e3:>10.3f}"
            f"{row['torch_min'] * 1e3:>11.3f}{row['torch_median'] * 1e3:>10.3f}{row['speed']:>8.3g}"
            f"{overhead:>13}{target:>11}")
        rows.append(row)
    return header, lines, rows
