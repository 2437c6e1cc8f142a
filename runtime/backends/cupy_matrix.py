"""Matrix rules (Muon, Adafactor) on CuPy arrays: the generated stage kernels between cuBLAS products.

The spec's generated stage driver (`VARIANTS[key]["stages"]`, the same one the native CPU
backend runs: `native_matrix.py`) is called with `xp = cupy`, so its products, transposes
and reductions are CuPy calls (cuBLAS), and with a `stage` that launches the stage's kernel
of `generated/cuda/<spec>.stages.cu` (NVRTC through `kernel_cache`, a variant's kernels of
one math type on first use: `one_kernel`). Every operand is
passed as a pointer and its (batch, rows, cols) element strides (0 on a broadcast axis),
every scalar as a float64 kernel argument; stored values go into arrays kept between steps
(`native_matrix._outputs`, per device) or into the output's own array. Nothing waits for
the GPU inside a step: norms stay 0-d device arrays read by the next stage's kernel.
Float32 and float64 weights only (anything else runs the NumPy kernel on the CuPy arrays).
"""
import math
from pathlib import Path

import numpy

from . import kernel_cache
from .native_matrix import SUFFIX, _outputs

SOURCE_SUFFIX = ".stages.cu"
BLOCK = 256           # the kernels' __launch_bounds__ (codegen/emitters/cuda_matrix.py)
GRID_PER_SM = 8


def source_of(module):
    """generated/cuda/<spec>.stages.cu beside the NumPy module's folder (package or load_spec cache)."""
    parts = list(Path(module.__file__).parts)
    at = len(parts) - 1 - parts[::-1].index("numpy")
    parts[at] = "cuda"
    path = Path(*parts)
    return path.with_name(path.stem + SOURCE_SUFFIX)


def run(module, variant, weight, grad, arrays, scalars):
    """Run one parameter's step through the variant's stage driver on the GPU; False
    (nothing done) when it does not apply: no driver or no source, arrays that are not
    CuPy arrays of one float32/float64 dtype on one device, or arrays sharing memory."""
    driver = variant.get("stages")
    if driver is None:
        return False
    import cupy
    dtype = weight.dtype
    suffix = SUFFIX.get(dtype)
    operands = (weight, grad, *arrays)
    if suffix is None or any(type(a) is not cupy.ndarray or a.dtype != dtype or a.device != weight.device
                             for a in operands):
        return False
    if any(cupy.may_share_memory(a, b) for k, a in enumerate(operands) for b in operands[k + 1:]):
        return False        # the stages write outputs in place: the NumPy kernel defines overlaps
    source = source_of(module)
    if not source.is_file():
        return False
    from .cupy_backend import fmad
    device = weight.device
    with device:
        kernels = kernel_cache.module(source, device.compute_capability, device.id, fmad(),
                                      one_kernel(module, variant, suffix))
        launch = _Launcher(kernels, device.attributes["MultiProcessorCount"] * GRID_PER_SM)
        driver(cupy, Stages(cupy, launch, (module.__name__, device.id), suffix), weight, grad, *arrays, **scalars)
    return True


def one_kernel(module, variant, suffix):
    """The macros that compile only the variant's entry points of one math type ("f32",
    "f64"): a fraction of the file's NVRTC time (the mxnet2 Adafactor's whole file: 19 s)."""
    return ("OM_ONE_KERNEL", f"OM_KERNEL_{module.SPEC['key']}_{variant['name']}_stages_{suffix}")


class _Launcher:
    """`launch(name, n, args)`: one grid-stride launch of a stage kernel over n elements."""

    def __init__(self, kernels, max_blocks):
        self.kernels, self.max_blocks = kernels, max_blocks

    def __call__(self, name, n, args):
        blocks = max(1, min(-(-n // BLOCK), self.max_blocks))
        self.kernels.get_function(name)((blocks,), (BLOCK,), tuple(args))


class Stages:
    """The driver's `stage(name, operands, scalars, into)` and `stage.norm(x)` for any array
    module `xp` and any `launch(name, n, args)`: the kernel arguments are built here, so the
    CPU tests run this very code with the kernels compiled for the host."""

    def __init__(self, xp, launch, key, suffix):
        self.xp, self.launch, self.key, self.suffix = xp, launch, key, suffix
        self.dtype = numpy.dtype("float32" if suffix == "f32" else "float64")

    def __call__(self, name, operands, values, into):
        xp, dtype = self.xp, self.dtype
        shape = numpy.broadcast_shapes(*(a.shape for a in operands))
        nr, nc = shape[-2:] if len(shape) >= 2 else (1, 1)
        nb = math.prod(shape[:-2])
        args = [numpy.int64(nb), numpy.int64(nr), numpy.int64(nc)]
        for a in operands:
            if a.dtype != dtype:
                raise TypeError(f"stage {name}: operand of dtype {a.dtype}, not {dtype}")
            # (batch, rows, cols) view of the broadcast operand: a view where the batch axes
            # merge (always, for the matrix view's arrays), else a copy (read only: same values)
            view = xp.broadcast_to(a, shape).reshape(nb, nr, nc)
            args.append(view)
            args += [numpy.int64(s // dtype.itemsize if n > 1 else 0) for s, n in zip(view.strides, view.shape)]
        outs = _outputs(self.key, name, shape, dtype, len(into), xp.empty)
        for k, target in enumerate(into):
            # an output's final value, written into its array: directly where the array is
            # C-contiguous (a view of the value's shape), else copied in after the launch
            if target is not None and target.flags.c_contiguous:
                outs[k] = target.reshape(shape)
        args += outs
        args += [numpy.float64(math.inf if v is None else v) for v in values]
        n = nb * nr * nc
        if n:
            self.launch(f"{name}_{self.suffix}", n, args)
        for target, out in zip(into, outs):
            if target is not None and not target.flags.c_contiguous:
                xp.copyto(target, out.reshape(target.shape))
        return outs

    def norm(self, x):
        """The NumPy kernel's `sqrt(sum(square(x)))`, a 0-d array left where it is computed."""
        xp = self.xp
        return xp.asarray(xp.sqrt(xp.sum(xp.square(x))))
