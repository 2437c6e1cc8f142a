"""`fused_step` on CuPy arrays: the generated CUDA kernels, one launch per group.

The optimizer plans every parameter's step on the host first (variant, float64 host
scalars; errors raise before anything changes). This module then checks the arrays,
groups the parameters by (variant, storage dtype) and launches, per group, the
grid-stride kernel for a single tensor or the multi-tensor kernel for several (one
launch whatever the number of tensors), or for rules with reductions their passes, with
their per-tensor and per-row values kept in device buffers. Kernels come from `kernel_cache` (NVRTC, in
memory and on disk). Row-sparse gradients, and rules the CUDA emitter does not cover
(`codegen/targets.py`), run the generated NumPy code on the CuPy arrays instead;
states stored quantized run their own kernels (`cupy_quantized.py`) where the rule has
them, else the NumPy code between load and store;
matrix rules run their stage kernels between cuBLAS products (`cupy_matrix.py`).

OPTFORGE_CUDA_FMAD=0 compiles without FMA contraction (bit-for-bit comparisons with the
NumPy code in the GPU tests); the default keeps FMA.
"""
import os
from pathlib import Path

import numpy

from . import cupy_quantized, launch_table, kernel_cache

GRID_PER_SM = 8


def cupy_module():
    """CuPy, with a GPU: a clear error otherwise."""
    try:
        import cupy
    except ImportError as err:
        raise RuntimeError("fused_step on the GPU needs CuPy: pip install 'optforge[cuda]'") from err
    if not cupy.cuda.is_available():
        raise RuntimeError("fused_step got CuPy arrays but CuPy finds no usable CUDA GPU or driver "
                           "(cupy.cuda.is_available() is False)")
    return cupy


def has_kernels(module):
    try:
        launch_table.metadata(module)
    except ModuleNotFoundError:
        return False
    return True


def quantized_kernels(module):
    """Whether a rule has CUDA kernels for its stored states (every variant with states to
    store: codegen/emitters/cuda_quantized.py); else its NumPy code runs between load and store."""
    return has_kernels(module) and cupy_quantized.available(launch_table.metadata(module))


def check(indices, weights, grads, states, masters=None):
    """Everything a launch needs, checked before anything changes."""
    cupy_module()
    device = weights[0].device
    for k, (index, weight, grad) in enumerate(zip(indices, weights, grads)):
        arrays = [("weight", weight), ("gradient", grad)]
        if masters is not None:
            arrays.append(("master copy", masters[k]))
        arrays += [("state", s) for s in launch_table.flat_parts(states[k]) if getattr(s, "ndim", 0) > 0]
        for what, array in arrays:
            if type(array).__module__.split(".")[0] != "cupy":
                continue    # row-sparse gradients and host scalar states are handled apart
            if array.device != device:
                raise ValueError(f"parameter {index!r}: {what} is on {array.device}, the first weight of "
                                 f"this update on {device}; one update runs on one device")
            if not array.flags.c_contiguous:
                raise ValueError(f"parameter {index!r}: {what} is not C-contiguous; the CUDA kernels "
                                 "need contiguous arrays (use cupy.ascontiguousarray)")


def fmad():
    return os.environ.get("OPTFORGE_CUDA_FMAD", "1") != "0"


def execute(engine, indices, weights, grads, plans, masters=None):
    """Run planned steps: `plans[k]` is the engine's Plan for weights[k] (None: skipped).
    With `masters`, weights are float16/bfloat16 and the master copies float32."""
    cupy = cupy_module()
    meta = launch_table.metadata(engine.module)
    source = Path(meta.__file__).with_name(meta.SOURCE)
    device = weights[0].device
    with device:
        kernels = kernel_cache.module(source, device.compute_capability, device.id, fmad())
        _launch_all(cupy, meta, kernels, device, engine, indices, weights, grads, plans, masters)
    for plan in plans:
        if plan is not None:
            for name, value in plan.updates.items():
                plan.scalar_arrays[name][...] = value


def _launch_all(cupy, meta, kernels, device, engine, indices, weights, grads, plans, masters):
    sms = device.attributes["MultiProcessorCount"]
    for (key, suffix), members in launch_table.groups(engine.module, weights, plans, masters, engine.storage).items():
        variant = meta.VARIANTS[key]
        if suffix in launch_table.QUANTIZED:
            cupy_quantized.launch(cupy, kernels, meta, variant, suffix, sms, GRID_PER_SM, device, engine, members,
                                  weights, plans, [launch_table.tensor_entry(k, indices, weights, grads, plans, masters,
                                                                             variant, engine) for k in members])
        elif variant["passes"]:
            _passes(cupy, kernels, meta, variant, suffix, sms,
                    [launch_table.tensor_entry(k, indices, weights, grads, plans, masters, variant, engine) for k in members])
        elif len(members) == 1:
            _single(kernels, meta, variant, suffix, sms,
                    *launch_table.tensor_entry(members[0], indices, weights, grads, plans, masters, variant, engine))
        else:
            _multi(cupy, kernels, meta, variant, suffix, sms,
                   [launch_table.tensor_entry(k, indices, weights, grads, plans, masters, variant, engine) for k in members])


def _single(kernels, meta, variant, suffix, sms, pointers, scalars, noise, rows):
    numel = pointers[0].size
    if numel == 0:
        return
    width = 16 // numpy.dtype(launch_table.math_dtype(suffix)).itemsize
    blocks = max(1, min(-(-numel // (meta.BLOCK * width)), sms * GRID_PER_SM))
    args = list(pointers) + [numpy.int64(numel)] + launch_table.kernel_scalars(variant, scalars, suffix)
    if variant["noise"]:
        args += [numpy.uint64(noise[0]), numpy.uint64(noise[1])]
    kernels.get_function(variant["kernels"][suffix])((blocks,), (meta.BLOCK,), tuple(args))


def _device_table(cupy, meta, variant, tensors):
    """(device table, tensors, Table) of the non-empty tensors; None when all are empty."""
    entries = [([p.data.ptr for p in pointers], pointers[0].size, scalars, noise, rows)
               for pointers, scalars, noise, rows in tensors if pointers[0].size > 0]
    if not entries:
        return None
    table = launch_table.table(variant, entries, meta.CHUNK)
    return cupy.asarray(table.words), len(entries), table   # uploaded on the current stream, no sync


def _multi(cupy, kernels, meta, variant, suffix, sms, tensors):
    launch = _device_table(cupy, meta, variant, tensors)
    if launch is None:
        return
    table, count, layout = launch
    blocks = max(1, min(layout.chunks, sms * GRID_PER_SM))
    kernels.get_function(variant["kernels"][suffix] + "_multi")(
        (blocks,), (meta.MULTI_BLOCK,), (table, numpy.int32(count), numpy.int64(layout.chunks)))


def _passes(cupy, kernels, meta, variant, suffix, sms, tensors):
    """A rule with reductions: its passes in order, each pass that finishes whole-tensor
    reductions followed by the kernel that combines their chunk partials and finishes them
    (norms, sums, maxima, minima in `reduced`); those and the per-row values (`rowred`) stay
    on the device."""
    launch = _device_table(cupy, meta, variant, tensors)
    if launch is None:
        return
    table, count, layout = launch
    partials = cupy.empty(max(1, layout.chunks * variant["reductions"]), cupy.float64)
    reduced = cupy.empty(max(1, count * variant["reductions"]), cupy.float64)
    rowred = cupy.empty(max(1, layout.rows * variant["row_reductions"]), cupy.float64)
    name = variant["kernels"][suffix]
    for j, stage in enumerate(variant["passes"]):
        units = layout.rows if stage["by_rows"] else layout.chunks
        blocks = max(1, min(units, sms * GRID_PER_SM))
        kernels.get_function(f"{name}_pass{j}")(
            (blocks,), (meta.MULTI_BLOCK,), (table, numpy.int32(count), numpy.int64(layout.chunks), reduced, partials,
                                             rowred, numpy.int64(layout.rows)))
        if stage["finish"]:
            kernels.get_function(f"{name}_finish{j}")(
                (max(1, min(count, sms * GRID_PER_SM)),), (meta.REDUCE_THREADS,),
                (table, numpy.int32(count), partials, reduced))
