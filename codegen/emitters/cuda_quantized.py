"""CUDA kernels of element-wise variants whose states are stored quantized.

The CUDA counterpart of `cpu_quantized.py` (docs/architecture.md, "Quantized optimizer
states"), for the same variants (`cpu_quantized.eligible`) and the same suffixes: `f32_q8`
(8-bit states: codes and a float32 absmax per block of 256), `f32_qbf16` (bfloat16 rounded
to nearest even) and `f32_qbf16sr` (bfloat16 rounded stochastically, `om::stochastic_bfloat16`:
the reference's bits, from one 64-bit key per stored state and the element's index in its
tensor). The per-element math is the variant's float32 math function, unchanged
(`templates/cuda_quantized.cu.j2`, included by `cuda_module.cu.j2`).

8-bit kernels run one thread block per block of QBLOCK elements (launched with QBLOCK
threads; any power of two up to QBLOCK computes the same): each thread dequantizes its
elements (`map[code] * absmax`), runs the math and keeps the stored states' new values in
shared memory; the block's new absmax is then reduced in shared memory
(`om::block_max_bits`) before any code is written (`om::quantize_code`: the reference's
float32 operations and its lookup table). The bfloat16 kernels are grid-stride loops.

Entry points and multi-tensor rows are the native CPU kernels' (the same names, pointers,
scalars and table rows, `cpu_quantized.kernels`), except that the f32_q8 entry points take
the two maps and the two lookup tables only (no search tables); the launch metadata says so
under "quantized_cuda".
"""
from . import cpu_quantized
from ...conventions.state_storage import BLOCK as QBLOCK

SUFFIXES = cpu_quantized.QUANTIZED


def metadata(rule, context):
    """The launch metadata of a variant's CUDA kernels of stored states: {} for a variant
    without states to store, {"quantized_cuda": None} for one without such kernels (its NumPy
    code runs between load and store, as on the CPU), else the kernel name per suffix and the
    threads per block of each (8-bit kernels: one block of QBLOCK elements per thread block)."""
    quantized = cpu_quantized.metadata(rule, context).get("quantized", False)
    if quantized is False:
        return {}
    if quantized is None:
        return {"quantized_cuda": None}
    return {"quantized_cuda": {"kernels": dict(quantized["kernels"]), "q8_threads": QBLOCK}}


def kernels(rule, context):
    """The template context of a variant's CUDA kernels of stored states, one per suffix
    (none for a variant without them): per array its parameters and how it is loaded and
    stored, and the multi-tensor row layout (the native kernels' own)."""
    stored = {s["c"]: s for s in cpu_quantized.stored_states(rule, context)}
    if not stored:
        return []
    layouts = dict(zip(SUFFIXES, cpu_quantized.kernels(rule, context)))
    return [_kernel(context, stored, suffix, layouts[suffix]) for suffix in SUFFIXES]


def _kernel(context, stored, suffix, layout):
    eight = suffix == "f32_q8"
    arrays, word = [], 0
    for a in context["arrays"]:
        c = a["c"]
        is_stored = c in stored
        written = bool(a["written"]) or is_stored     # every stored state is stored back
        entry = {"c": c, "stored": is_stored, "written": written, "word": word,
                 "map": 0 if is_stored and stored[c]["signed"] else 1}
        if is_stored and eight:
            entry["params"] = [f"unsigned char* __restrict__ c_{c}", f"float* __restrict__ a_{c}"]
            entry["pointers"] = [{"type": "unsigned char", "per_block": False}, {"type": "float", "per_block": True}]
        else:
            ctype = "om::bfloat16" if is_stored else "float"
            entry["params"] = [f"{'' if written else 'const '}{ctype}* __restrict__ p_{c}"]
            entry["pointers"] = [{"type": f"{'' if written else 'const '}{ctype}", "per_block": False}]
        word += len(entry["params"])
        arrays.append(entry)
    return {
        "name": layout["name"],
        "eight": eight,
        "stochastic": layout["stochastic"],
        "arrays": arrays,
        "key_names": layout["key_names"],
        "key_words": layout["key_words"],
        "row": layout["row"],
        "row_words": layout["row_words"],
        "count_word": layout["count_word"],
        "first_chunk_word": layout["first_chunk_word"],
        "scalar_words": layout["scalar_words"],
    }
