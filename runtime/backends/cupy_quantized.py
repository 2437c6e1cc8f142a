"""The CUDA kernels of stored states on CuPy arrays (codegen/emitters/cuda_quantized.py).

A group of parameters whose states are stored quantized (suffix f32_q8, f32_qbf16 or
f32_qbf16sr, `launch_table.suffix_of`) runs its variant's kernel under "quantized_cuda" in
the launch metadata: the grid-stride kernel for one tensor, the multi-tensor kernel for
several. The f32_q8 kernels take the reference's code maps and lookup tables
(`quantized.code_table`, `lookup_table`, uploaded once per device) and run one block of 256
elements per thread block; the f32_qbf16sr kernels take one rounding key per stored state
(`launch_table.rounding_keys`, the reference's keys) after the scalars, or at the end of
each table row.
"""
import numpy

from . import launch_table, quantized

SUFFIXES = launch_table.QUANTIZED
BLOCKS_PER_SM = 32      # f32_q8 single tensor: thread blocks of 256 per SM (a block each 256 elements)

_TABLES = {}            # device id -> the maps and lookup tables on that device


def available(meta):
    """Whether every variant of a rule's launch metadata with states to store has CUDA
    kernels for them."""
    return all(v.get("quantized_cuda", True) is not None for v in meta.VARIANTS.values())


def tables(cupy, device):
    """The f32_q8 kernels' arguments after the scalars on `device`: signed and unsigned map,
    signed and unsigned lookup table (the reference's arrays)."""
    held = _TABLES.get(device.id)
    if held is None:
        held = _TABLES[device.id] = [cupy.asarray(a) for a in (
            quantized.code_table(True), quantized.code_table(False),
            quantized.lookup_table(True), quantized.lookup_table(False))]
    return held


def launch(cupy, kernels, meta, variant, suffix, sms, grid_per_sm, device, engine, members, weights, plans,
           tensors):
    """One group's launch: `tensors` are `launch_table.tensor_entry`'s of `members`."""
    quant = variant["quantized_cuda"]
    name = quant["kernels"][suffix]
    eight = suffix == "f32_q8"
    entries = [([p.data.ptr for p in pointers], pointers[0].size, scalars, None, None)
               for pointers, scalars, _, _ in tensors if pointers[0].size > 0]
    if not entries:
        return
    keys = launch_table.rounding_keys(engine, variant, members, weights, plans) if suffix == "f32_qbf16sr" else None
    extra = tables(cupy, device) if eight else []
    if len(entries) == 1:
        pointers, scalars = next((p, s) for p, s, _, _ in tensors if p[0].size > 0)
        numel = pointers[0].size
        if eight:
            threads = quant["q8_threads"]
            blocks = max(1, min(quantized.blocks(numel), sms * BLOCKS_PER_SM))
        else:
            threads = meta.BLOCK
            blocks = max(1, min(-(-numel // threads), sms * grid_per_sm))
        args = list(pointers) + [numpy.int64(numel)] + launch_table.kernel_scalars(variant, scalars, "f32")
        if keys is not None:
            args += [numpy.uint64(k) for k in keys[0]]
        kernels.get_function(name)((blocks,), (threads,), tuple(args + extra))
        return
    table = launch_table.table(variant, entries, meta.CHUNK)
    words = table.words
    if keys is not None:        # the rows end with the keys
        words = numpy.ascontiguousarray(numpy.concatenate(
            [words, numpy.array(keys, dtype=numpy.uint64).reshape(len(entries), -1)], axis=1))
    threads = quant["q8_threads"] if eight else meta.MULTI_BLOCK
    blocks = max(1, min(table.chunks, sms * grid_per_sm))
    kernels.get_function(name + "_multi")(
        (blocks,), (threads,), (cupy.asarray(words), numpy.int32(len(entries)), numpy.int64(table.chunks), *extra))
