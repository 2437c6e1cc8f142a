"""CUDA launch arguments, in NumPy only: the CuPy backend and the CPU checks share them.

- `metadata(module)`: the generated launch metadata of a generated NumPy module;
- `storage(weight_dtype, master)`: the kernel suffix of a storage dtype;
- `kernel_scalars(...)`: the host scalars in kernel argument order, in the math type
  (float64 host values rounded once, as NumPy rounds a Python float against a float32
  array), with None as the infinite clip bound the metadata names;
- `table(...)`: the multi-tensor table, one row of 8-byte words per tensor;
- `groups(...)`, `tensor_entry(...)`: planned parameters grouped by (variant, storage), one
  launch each, and one parameter's pointer arrays, scalars, noise words and rows;
- `rounding_keys(...)`: the stochastic rounding keys of a group of bfloat16 stored states.

The native CPU kernels (backends/native.py) share all of it: same names, order, table.
"""
import importlib
import importlib.util
import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy

from ..noise import philox_key
from .quantized import Blockwise8bit, is_bfloat16

STORAGE = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16"}
NONE = {"inf": math.inf, "-inf": -math.inf}
QUANTIZED = ("f32_q8", "f32_qbf16", "f32_qbf16sr")     # suffixes of the kernels of stored states


def metadata(module):
    """The generated CUDA metadata module of a generated NumPy module: its counterpart in
    optforge.generated.cuda, or for a spec loaded with optforge.load_spec the cuda/ file
    next to the cached numpy/ one. ModuleNotFoundError when the spec has no kernels."""
    if ".generated.numpy." in module.__name__:
        return importlib.import_module(module.__name__.replace(".generated.numpy.", ".generated.cuda.", 1))
    path = Path(module.__file__).parent.parent / "cuda" / Path(module.__file__).name
    name = module.__name__ + "_cuda"
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise ModuleNotFoundError(f"no CUDA kernels were generated for {module.__name__}", name=name)
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    sys.modules[name] = loaded
    return loaded


def storage(weight_dtype, master=False):
    return _storage(numpy.dtype(weight_dtype), bool(master))


@lru_cache(maxsize=None)
def _storage(weight_dtype, master):
    suffix = STORAGE.get(str(weight_dtype))
    if suffix is None:
        raise ValueError(f"no CUDA kernel for weights of dtype {weight_dtype}; "
                         f"supported: {', '.join(STORAGE)}")
    if master:
        if suffix not in ("f16", "bf16"):
            raise ValueError(f"a float32 master copy is kept only for float16/bfloat16 weights, "
                             f"not {weight_dtype}")
        suffix += "_mp"
    return suffix


def math_dtype(suffix):
    return numpy.float64 if suffix == "f64" else numpy.float32


def scalar_values(variant, scalars):
    """The variant's host scalars as Python floats in kernel order (None -> its infinity)."""
    values = []
    for name in variant["scalars"]:
        value = scalars[name]
        if value is None:
            value = NONE[variant["none"][name]]
        values.append(float(value))
    return values


def kernel_scalars(variant, scalars, suffix):
    """Kernel arguments after the element count: scalars in the math type, then noise words."""
    dtype = math_dtype(suffix)
    return [dtype(v) for v in scalar_values(variant, scalars)]


def noise_words(seed, index, t):
    """(key, counter) of the device noise of one parameter's step."""
    return philox_key(seed, index), int(t) & 0xFFFFFFFFFFFFFFFF


def chunks(numel, chunk):
    return -(-int(numel) // chunk)


def weight_rows(shape):
    """(elements per row, rows) of a weight: rows along the first axis, as row_mean reads them."""
    rows = int(shape[0]) if len(shape) else 1
    numel = math.prod(int(n) for n in shape)
    return (numel // rows if rows else 0), rows


class Table:
    """A multi-tensor table: `words` (tensors, row) uint64, and the launch's chunk and row counts."""

    def __init__(self, words, chunks, rows):
        self.words, self.chunks, self.rows = words, chunks, rows


def table(variant, entries, chunk):
    """Multi-tensor table of `entries` (pointers in kernel order, numel, scalars dict, noise
    words or None, (row length, rows) or None); one row of words per tensor: pointers, numel,
    first chunk, scalars as float64, then row length and first row for rules with row-shaped
    values, then the noise key and counter. Built by columns: tensors that share one scalars
    dict (one host evaluation, see engine/plans.py) share its converted words."""
    count = len(entries)
    if not count:
        return Table(numpy.array([], dtype=numpy.uint64), 0, 0)
    pointers = numpy.array([[int(p) for p in entry[0]] for entry in entries], dtype=numpy.uint64)
    numel = numpy.array([int(entry[1]) for entry in entries], dtype=numpy.uint64).reshape(count, 1)
    ends = numpy.cumsum(-(-numel.astype(numpy.int64) // chunk), dtype=numpy.int64)
    first = numpy.zeros((count, 1), dtype=numpy.uint64)
    first[1:, 0] = ends[:-1]
    words = {}      # id(scalars dict) -> its row of float64 words
    scalars = numpy.array([words.get(id(entry[2])) or words.setdefault(id(entry[2]), scalar_values(variant, entry[2]))
                           for entry in entries], dtype=numpy.float64).reshape(count, -1).view(numpy.uint64)
    columns = [pointers.reshape(count, -1), numel, first, scalars]
    first_row = 0
    if variant.get("rows"):
        rows = numpy.array([[int(entry[4][0]), int(entry[4][1])] for entry in entries], dtype=numpy.int64)
        starts = numpy.cumsum(rows[:, 1]) - rows[:, 1]
        columns.append(numpy.stack([rows[:, 0], starts], axis=1).astype(numpy.uint64))
        first_row = int(rows[:, 1].sum())
    if variant["noise"]:
        columns.append(numpy.array([[int(entry[3][0]), int(entry[3][1])] for entry in entries], dtype=numpy.uint64))
    return Table(numpy.ascontiguousarray(numpy.concatenate(columns, axis=1)), int(ends[-1]), first_row)


def suffix_of(weight, plan, masters=None, stochastic=False):
    """The kernel suffix of one planned parameter: its weight's storage, or for a float32
    weight whose states are stored quantized "f32_q8" (8-bit) or "f32_qbf16" (bfloat16;
    "f32_qbf16sr" when `stochastic`: rounded stochastically)."""
    suffix = storage(weight.dtype, masters is not None)
    if suffix == "f32" and masters is None:
        for array in plan.arrays:
            if isinstance(array, Blockwise8bit):
                return "f32_q8"
            if is_bfloat16(array):     # (on CuPy arrays its bits: a uint16 array)
                return "f32_qbf16sr" if stochastic else "f32_qbf16"
    return suffix


def kernel_name(variant, suffix):
    """The entry point of a variant's launch metadata for a kernel suffix (quantized states:
    the kernels under "quantized", see codegen/emitters/cpu_quantized.py)."""
    if suffix in QUANTIZED:
        return variant["quantized"]["kernels"][suffix]
    return variant["kernels"][suffix]


def quantized_kernels(meta):
    """Whether every variant of a rule's launch metadata that has states to store has kernels
    for them (None: it has not)."""
    return all(v.get("quantized", True) is not None for v in meta.VARIANTS.values())


def groups(module, weights, plans, masters=None, stored=None):
    """{(variant key, storage suffix): [parameter positions]} of the planned (not skipped)
    parameters: one launch per group. `stored`: the optimizer's StateStorage when it stores
    states quantized (only then are the states looked at: `suffix_of`), else None."""
    keys = {id(v): k for k, v in module.VARIANTS.items()}
    out = {}
    for k, plan in enumerate(plans):
        if plan is None:
            continue
        suffix = suffix_of(weights[k], plan, masters, stored.stochastic) if stored is not None \
            else storage(weights[k].dtype, masters is not None)
        out.setdefault((keys[id(plan.variant)], suffix), []).append(k)
    return out


def tensor_entry(k, indices, weights, grads, plans, masters, variant, engine):
    """(pointer arrays in kernel order, host scalars, noise words, (row length, rows)) of one parameter."""
    plan = plans[k]
    # the plan's arrays: the variant's states less the host scalar states (ASGD's eta, mu)
    states = dict(zip([name for name in plan.variant["states"] if not engine.states[name].host_scalar], plan.arrays))
    pointers = [weights[k]] + ([masters[k]] if masters is not None else []) + [grads[k]]
    for name in variant["states"]:      # an 8-bit state: its codes, then its absmax
        pointers += flat_parts(states[name])
    noise = None
    if variant["noise"]:
        noise = noise_words(engine.hyperparameters["seed"], indices[k], plan.t)
    return pointers, plan.scalars, noise, weight_rows(weights[k].shape)


def rounding_keys(engine, variant, members, weights, plans):
    """The stochastic rounding keys of the non-empty members of one f32_qbf16sr group, per
    member one per stored state in kernel order: the key the NumPy reference rounds that
    state with (`Engine.rounding_key`, by the state's position among the plan's arrays), so
    the native and CUDA kernels draw the reference's bits."""
    kept = [k for k in members if weights[k].size]
    if not kept:
        return []
    names = [name for name in plans[kept[0]].variant["states"] if not engine.states[name].host_scalar]
    slots = [names.index(name) for name in variant["quantized"]["states"]]
    return [[engine.rounding_key(plans[k].index, plans[k].t, slot) for slot in slots] for k in kept]


def flat_parts(state):
    """A parameter's state (None, an array, an 8-bit state, or nested tuples of them) as a
    flat list of arrays (an 8-bit state's codes and absmax)."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in flat_parts(s)]
    if isinstance(state, Blockwise8bit):
        return [state.codes, state.absmax]
    return [state]
