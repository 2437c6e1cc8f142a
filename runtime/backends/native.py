"""`fused_step` on NumPy arrays: the generated native CPU kernels, one call per group.

The optimizer plans every parameter's step first (variant, float64 host scalars; errors
raise before anything changes). This module groups the planned parameters by (variant,
storage dtype), as the CuPy backend does, and calls per group the single-tensor entry
point for one tensor or the multi-tensor one for several (one call whatever the number
of tensors: the work is shared across threads over all elements of all tensors), or for
rules with reductions their passes, with their per-tensor values (norms, sums, maxima,
minima) and per-row values in small float64 buffers. Launch arguments come from
`launch_table` (the kernels share the CUDA kernels' metadata).

Which CPU backend runs (`OPTFORGE_CPU_BACKEND`): `native` demands the kernels (an error
without a C++ compiler), `numpy` runs the generated NumPy code, unset picks native when a
compiler is found and otherwise warns once and runs the NumPy code. Threads: OpenMP,
`set_num_threads(n)` or `OPTFORGE_NUM_THREADS`, else os.cpu_count().
"""
import ctypes
import itertools
import operator
import os
import warnings
from pathlib import Path

import numpy

from . import launch_table, quantized
from .quantized import Blockwise8bit

BACKEND_ENV = "OPTFORGE_CPU_BACKEND"
THREADS_ENV = "OPTFORGE_NUM_THREADS"
DTYPES = {numpy.dtype(t) for t in ("float32", "float64", "float16")}
try:
    import ml_dtypes
    DTYPES.add(numpy.dtype(ml_dtypes.bfloat16))
except ImportError:     # without ml_dtypes there are no bfloat16 NumPy arrays
    pass
_threads = None
_cores = None
_warned = set()
_C_CONTIGUOUS = operator.attrgetter("flags.c_contiguous")
_ALIGNED = operator.attrgetter("flags.aligned")
_NATIVE = operator.attrgetter("dtype.isnative")
_NBYTES = operator.attrgetter("nbytes")


def set_num_threads(count):
    """Threads of the native CPU kernels (None: $OPTFORGE_NUM_THREADS, else every core)."""
    global _threads
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError(f"the thread count must be a positive integer or None, got {count!r}")
    _threads = count


def num_threads():
    if _threads is not None:
        return _threads
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{THREADS_ENV}={raw!r} is not a positive integer")
        return value
    global _cores
    if _cores is None:      # os.cpu_count() reads /sys on every call: once per process
        _cores = max(1, os.cpu_count() or 1)
    return _cores


_BACKENDS = {}      # (OPTFORGE_CPU_BACKEND, CXX, PATH) -> backend: no PATH search per step


def backend():
    """'native' or 'numpy': what `fused_step` runs on NumPy arrays."""
    environment = tuple(os.environ.get(name) for name in (BACKEND_ENV, "CXX", "PATH"))
    chosen = _BACKENDS.get(environment)
    if chosen is None:
        chosen = _BACKENDS[environment] = _choose_backend()
    return chosen


def _choose_backend():
    from . import native_build
    value = os.environ.get(BACKEND_ENV, "").strip().lower()
    if value not in ("", "native", "numpy"):
        raise ValueError(f"{BACKEND_ENV}={os.environ[BACKEND_ENV]!r}: expected 'native' or 'numpy'")
    if value == "numpy":
        return "numpy"
    try:
        native_build.compiler_identity(native_build.compiler())
    except native_build.CompilerMissing as err:
        if value == "native":
            raise RuntimeError(f"{BACKEND_ENV}=native, but {err}. Install a C++ compiler with OpenMP "
                               "(g++, or clang++ with libomp) or set CXX to one") from None
        _warn_once(f"optforge: {err}. fused_step on NumPy arrays runs the slower NumPy code; install a C++ "
                   f"compiler with OpenMP (g++, or clang++ with libomp) for the native CPU kernels, or set "
                   f"{BACKEND_ENV}=numpy to choose the NumPy code and silence this warning.")
        return "numpy"
    return "native"


def _warn_once(message):
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def has_kernels(module):
    try:
        source_of(module)
    except ModuleNotFoundError:
        return False
    return True


_SOURCES = {}


def source_of(module):
    """generated/cpu/<spec>.cpp of a generated NumPy module (beside its CUDA metadata, in the
    package or in optforge.load_spec's cache)."""
    path = _SOURCES.get(module.__name__)
    if path is None:
        meta = launch_table.metadata(module)
        parts = list(Path(meta.__file__).with_name(meta.SOURCE).with_suffix(".cpp").parts)
        at = len(parts) - 1 - parts[::-1].index("cuda")
        parts[at] = "cpu"
        path = Path(*parts)
        if not path.is_file():
            raise ModuleNotFoundError(f"no native CPU kernels were generated for {module.__name__}")
        _SOURCES[module.__name__] = path
    return path


def applies(module, weights, grads, states, masters=None):
    """The arrays' addresses ({id: address}) when this update runs the native kernels: NumPy
    arrays of a supported dtype, C-contiguous, aligned, native byte order, no two of them
    overlapping, dense gradients of the weight's dtype, a rule with kernels, and the native
    backend chosen; else None, and the generated NumPy code runs (the same update, slower)."""
    if not weights:
        return None
    if not has_kernels(module):
        # matrix rules run their stage kernels (native_matrix) where they have them
        if not module.SPEC.get("matrix") or any("stages" not in v for v in module.VARIANTS.values()):
            _require_kernels(module)
        return None
    ndarray = numpy.ndarray
    arrays, owners = [], []     # every array of the update, flat, and its parameter's position
    for k, (weight, grad) in enumerate(zip(weights, grads)):
        if weight.dtype not in DTYPES or type(grad) is not ndarray or grad.dtype != weight.dtype:
            return None
        own = [weight, grad] + ([masters[k]] if masters is not None else [])
        own += launch_table.flat_parts(states[k])         # 0-d states too: device scalars are kernel arrays
        arrays += own
        owners += [k] * len(own)
    # the checks as maps over all arrays (loops in C): NumPy arrays (not row-sparse gradients,
    # CuPy arrays or subclasses), C-contiguous, aligned, native byte order
    if not (all(map(operator.is_, map(type, arrays), itertools.repeat(ndarray)))
            and all(map(_C_CONTIGUOUS, arrays)) and all(map(_ALIGNED, arrays)) and all(map(_NATIVE, arrays))):
        return None
    sizes = list(map(_NBYTES, arrays))
    if not all(sizes):      # empty arrays have no address to take
        kept = [(a, k, n) for a, k, n in zip(arrays, owners, sizes) if n]
        arrays, owners, sizes = [a for a, _, _ in kept], [k for _, k, _ in kept], [n for _, _, n in kept]
    try:
        starts = list(map(ctypes.addressof, map(ctypes.c_char.from_buffer, arrays)))
    except (TypeError, ValueError, BufferError):      # a read-only array: one at a time
        starts = list(map(_address_of, arrays))
    if starts and _overlapping(owners, list(zip(starts, sizes))):
        return None                 # overlapping arrays: the NumPy code defines the result
    addresses = dict(zip(map(id, arrays), starts))
    return addresses if backend() == "native" else None


def demanded():
    """Whether OPTFORGE_CPU_BACKEND=native demands the kernels (set, not merely chosen)."""
    return os.environ.get(BACKEND_ENV, "").strip().lower() == "native"


def _require_kernels(module):
    """Under OPTFORGE_CPU_BACKEND=native a rule without native kernels is an error, raised
    before anything changes, not a silent run of its NumPy code."""
    if demanded():
        name = module.SPEC["name"]
        raise RuntimeError(f"{BACKEND_ENV}=native, but {name} has no native CPU kernels (`optforge check` "
                           f"on its spec says why); unset {BACKEND_ENV} to run its NumPy code")


def _overlapping(owners, spans):
    """Whether two arrays of one parameter share memory (arrays of different parameters are
    not compared: the same gradient may serve two parameters)."""
    table = numpy.array(spans, dtype=numpy.uint64)
    owner = numpy.array(owners, dtype=numpy.int64)
    order = numpy.lexsort((table[:, 0], owner))
    lo, size, owner = table[order, 0], table[order, 1], owner[order]
    same = owner[1:] == owner[:-1]
    return bool(numpy.any(same & (lo[:-1] + size[:-1] > lo[1:])))


def _address_of(array):
    """The address of an array's data (ctypes.from_buffer: several times faster than
    `array.ctypes.data`, which counts with a thousand tensors; read-only arrays take the latter)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError, BufferError):
        return array.ctypes.data


_LIBRARIES = {}     # module name -> library: the cache is checked once per process and rule


def library(module):
    """The rule's entry points (`native_build.kernels`: each kernel built on first use)."""
    lib = _LIBRARIES.get(module.__name__)
    if lib is None:
        from . import native_build
        lib = _LIBRARIES[module.__name__] = native_build.kernels(source_of(module))
    return lib


def build(module, weights, plans, masters=None, stored=None):
    """Compile (or load from the cache) each kernel a planned step runs, before any of them
    runs: the optimizer calls this while it can still restore the update counts, so a
    compiler failure raises with nothing changed. Once loaded, a kernel costs a dict lookup.
    `stored`: the engine's StateStorage, or None (as launch_table.groups takes it)."""
    lib = library(module)
    variants = dict(zip(map(id, module.VARIANTS.values()), module.VARIANTS))
    kernels = launch_table.metadata(module).VARIANTS
    pairs = {(id(plan.variant), launch_table.suffix_of(weight, plan, masters, stored.stochastic) if stored is not None
              else launch_table.storage(weight.dtype, masters is not None))
             for plan, weight in zip(plans, weights) if plan is not None}
    for variant, suffix in pairs:
        lib.load_kernel(launch_table.kernel_name(kernels[variants[variant]], suffix))


def execute(engine, indices, weights, grads, plans, addresses, masters=None):
    """Run planned steps (`plans[k]`: the engine's Plan for weights[k], None: skipped;
    `addresses`: what `applies` returned). With `masters`, weights are float16/bfloat16 and
    the master copies float32."""
    module = engine.module
    meta = launch_table.metadata(module)
    lib = library(module)
    threads = ctypes.c_int(num_threads())
    for (key, suffix), members in launch_table.groups(module, weights, plans, masters, engine.storage).items():
        variant = meta.VARIANTS[key]
        if variant["noise"] or variant.get("rows") or masters is not None:
            tensors = [launch_table.tensor_entry(k, indices, weights, grads, plans, masters, variant, engine)
                       for k in members]
            tensors = [([addresses[id(p)] for p in pointers], pointers[0].size, scalars, noise, rows)
                       for pointers, scalars, noise, rows in tensors if pointers[0].size > 0]
        else:
            tensors = _entries(engine, variant, members, weights, grads, plans, addresses)
        if not tensors:
            continue
        maps = _maps() if suffix == "f32_q8" else []
        keys = launch_table.rounding_keys(engine, variant, members, weights, plans) if suffix == "f32_qbf16sr" else None
        if variant["passes"]:
            _passes(lib, meta, variant, suffix, tensors, threads)
        elif len(tensors) == 1:
            if keys is not None:        # the single-tensor entry point takes the keys after the scalars
                maps = [ctypes.c_ulonglong(key) for key in keys[0]]
            _single(lib, variant, suffix, *tensors[0], threads, maps)
        else:
            table = launch_table.table(variant, tensors, meta.CHUNK)
            if keys is not None:        # the table's rows end with the keys
                table.words = numpy.ascontiguousarray(numpy.concatenate(
                    [table.words, numpy.array(keys, dtype=numpy.uint64).reshape(len(tensors), -1)], axis=1))
            getattr(lib, launch_table.kernel_name(variant, suffix) + "_multi")(
                _address(table.words), ctypes.c_int(len(tensors)), ctypes.c_longlong(table.chunks), *maps, threads)
    for plan in plans:
        if plan is not None:
            for name, value in plan.updates.items():
                plan.scalar_arrays[name][...] = value


def _entries(engine, variant, members, weights, grads, plans, addresses):
    """`launch_table.tensor_entry` of the non-empty members of one group, with addresses, for
    variants without noise, rows or master copies (the common case, written for speed): the
    members share one variant, so the position of each kernel state among a plan's arrays
    is found once."""
    kept = [k for k in members if weights[k].size]
    if not kept:
        return []
    names = [name for name in plans[kept[0]].variant["states"] if not engine.states[name].host_scalar]
    at = [names.index(name) for name in variant["states"]]
    entries = []
    for k in kept:
        weight = weights[k]
        arrays = plans[k].arrays
        pointers = [addresses[id(weight)], addresses[id(grads[k])]]
        for j in at:
            if isinstance(arrays[j], Blockwise8bit):    # an 8-bit state: its codes, then its absmax
                pointers += [addresses[id(arrays[j].codes)], addresses[id(arrays[j].absmax)]]
            else:
                pointers.append(addresses[id(arrays[j])])
        entries.append((pointers, weight.size, plans[k].scalars, None, None))
    return entries


_MAPS = []


def _maps():
    """The f32_q8 kernels' arguments after the scalars: the signed and unsigned maps, the
    quantizer's lookup tables and their search trees (quantized.search_table), the
    reference's own read-only arrays (kept alive here)."""
    if not _MAPS:
        tables = [quantized.code_table(True), quantized.code_table(False),
                  quantized.lookup_table(True), quantized.lookup_table(False),
                  quantized.search_table(True), quantized.search_table(False)]
        _MAPS.extend(ctypes.c_void_p(t.ctypes.data) for t in tables)
        _MAPS.append(tables)
    return _MAPS[:6]


def quantized_kernels(module):
    """Whether a rule has native kernels for its stored states (every variant: see
    codegen/emitters/cpu_quantized.py); under OPTFORGE_CPU_BACKEND=native a rule without
    them is an error raised before anything changes, not a silent run of its NumPy code."""
    if has_kernels(module) and launch_table.quantized_kernels(launch_table.metadata(module)):
        return True
    if demanded():
        raise RuntimeError(f"{BACKEND_ENV}=native, but {module.SPEC['name']} has no native CPU kernels for "
                           f"quantized states (rules with reductions, row or noise values, and matrix rules "
                           f"run their NumPy code between load and store); unset "
                           f"{BACKEND_ENV} to run it")
    return False


def _address(array):
    return ctypes.c_void_p(array.ctypes.data)


def _single(lib, variant, suffix, pointers, numel, scalars, noise, rows, threads, maps=()):
    scalar_type = ctypes.c_double if suffix == "f64" else ctypes.c_float
    args = [ctypes.c_void_p(p) for p in pointers] + [ctypes.c_longlong(numel)]
    args += [scalar_type(v) for v in launch_table.scalar_values(variant, scalars)]
    if variant["noise"]:
        args += [ctypes.c_ulonglong(noise[0]), ctypes.c_ulonglong(noise[1])]
    getattr(lib, launch_table.kernel_name(variant, suffix))(*args, *maps, threads)


def _passes(lib, meta, variant, suffix, tensors, threads):
    """A rule with reductions: its passes in order, each pass that finishes whole-tensor
    reductions followed by the function that combines their chunk partials in order and
    finishes them into per-tensor values (norms, sums, maxima, minima)."""
    table = launch_table.table(variant, tensors, meta.CHUNK)
    count = ctypes.c_int(len(tensors))
    partials = numpy.zeros(max(1, table.chunks * variant["reductions"]))
    reduced = numpy.zeros(max(1, len(tensors) * variant["reductions"]))
    rowred = numpy.zeros(max(1, table.rows * variant["row_reductions"]))
    name = variant["kernels"][suffix]
    for j, stage in enumerate(variant["passes"]):
        getattr(lib, f"{name}_pass{j}")(_address(table.words), count, ctypes.c_longlong(table.chunks),
                                        _address(reduced), _address(partials), _address(rowred),
                                        ctypes.c_longlong(table.rows), threads)
        if stage["finish"]:
            getattr(lib, f"{name}_finish{j}")(_address(table.words), count, _address(partials), _address(reduced))
