"""`optforge bench`: optimizer step bandwidth against the same machine's copy bandwidth.

For fp32 Adam (28 bytes per parameter), SGD with momentum (20) and LAMB (40, its 2-pass
minimum) at 2^20 .. 2^28 parameters and for a ResNet-50-shaped list of 161 tensors, it
prints the achieved GB/s (bytes the step must move / time), the device-to-device copy
GB/s measured in the same run, their ratio and, when torch is installed, the ratio
against torch's fused Adam/SGD on the same sizes. On the GPU (CuPy arrays) the steps run
`fused_step`; with --device cpu the NumPy code on NumPy arrays (fused_step: in
cache-sized blocks on every core).
"""
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
