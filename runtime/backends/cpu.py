"""`fused_step` on NumPy arrays: the native kernels, or the NumPy code in blocks.

`native(...)` says whether an update runs the generated native CPU kernels
(backends/native.py: compiled C++, every core, one call per group). Otherwise (no
compiler, OPTFORGE_CPU_BACKEND=numpy, row-sparse gradients, non-contiguous or overlapping
arrays, rules without kernels) the generated NumPy code runs, as below. A matrix rule's
step runs its element-wise stages natively between NumPy's products (`run_stages`).

A generated kernel makes one pass over memory per operation. Run on a whole large
tensor, each pass streams it through DRAM; run block by block (64 K elements), a
block's passes stay in cache, and blocks of different threads proceed in parallel
(NumPy releases the GIL inside ufuncs). The results are bitwise those of one call:
element-wise code does the same operations on each element either way.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy

BLOCK = 1 << 16
_pool = None


def native(module, weights, grads, states, masters=None):
    """The arrays' addresses when these NumPy arrays run the native CPU kernels, else None
    (see backends/native.py)."""
    from . import native as native_backend
    return native_backend.applies(module, weights, grads, states, masters)


def draws_noise(module):
    """Whether a rule's variants draw `normal()` noise."""
    known = _NOISE.get(module.__name__)
    if known is None:
        known = _NOISE[module.__name__] = any(v["noise"] for v in module.VARIANTS.values())
    return known


_NOISE = {}


def native_on_copies(module, weights, grads, states):
    """For a rule that draws noise, on NumPy arrays the native kernels refuse by layout
    (not C-contiguous, unaligned, another byte order): the native kernels on C-contiguous
    copies. The kernels draw each element's noise by its position in C order, the NumPy
    code by its logical index; a kernel run on the copies draws what it draws for a
    C-contiguous parameter with the same values, so the noise never depends on the layout.
    Returns (weights, grads, states, addresses, write_back) to run with, `write_back()`
    storing the copies' new values into the caller's weights and states; None when the
    copies would not run natively either (dtype, backend, arrays that share memory)."""
    from . import native as native_backend
    if native_backend.backend() != "native" or not native_backend.has_kernels(module):
        return None
    ndarray = numpy.ndarray
    copies = {}     # id(original) -> (original, copy)

    def contiguous(array):
        if type(array) is not ndarray or array.ndim == 0:
            return array
        if array.flags.c_contiguous and array.flags.aligned and array.dtype.isnative:
            return array
        copy = numpy.array(array, dtype=array.dtype.newbyteorder("="), order="C")
        copies[id(array)] = (array, copy)
        return copy

    def swap(state):
        if isinstance(state, (tuple, list)):
            return type(state)(swap(s) for s in state)
        return contiguous(state) if state is not None else None

    for weight, grad, state in zip(weights, grads, states):
        own = [weight, grad] + [p for p in _flat(state) if type(p) is ndarray]
        if any(type(a) is not ndarray for a in own[:2]) or any(
                numpy.may_share_memory(a, b) for k, a in enumerate(own) for b in own[k + 1:]):
            return None     # written arrays that share memory: the NumPy code defines the result
    new_weights = [contiguous(w) for w in weights]
    new_grads = [contiguous(g) for g in grads]
    new_states = [swap(s) for s in states]
    if not copies:
        return None
    addresses = native_backend.applies(module, new_weights, new_grads, new_states)
    if addresses is None:
        return None
    gradients = set(map(id, grads))
    written = [pair for key, pair in copies.items() if key not in gradients]

    def write_back():
        for original, copy in written:
            numpy.copyto(original, copy)
    return new_weights, new_grads, new_states, addresses, write_back


def _flat(state):
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [p for s in state for p in _flat(s)]
    return [state]


def run_stages(module, variant, weight, grad, arrays, scalars):
    """Run a matrix rule's step through its native stage kernels (backends/native_matrix.py);
    False when they do not apply (then the NumPy kernel runs)."""
    from . import native_matrix
    return native_matrix.run(module, variant, weight, grad, arrays, scalars)


def _executor():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="optforge")
    return _pool


def blockable(weight, grad, arrays):
    """Whether the kernel may run on flat views of these arrays."""
    if weight.size < 2 * BLOCK:
        return False
    return all(isinstance(a, numpy.ndarray) and a.shape == weight.shape and a.flags.c_contiguous
               for a in (weight, grad, *arrays))


def run_blocked(kernel, weight, grad, arrays, scalars):
    """kernel(numpy, weight, grad, *arrays, **scalars), block by block over flat views."""
    flat = [a.reshape(-1) for a in (weight, grad, *arrays)]
    n = flat[0].size
    starts = range(0, n, BLOCK)

    def run(group):
        for lo in group:
            hi = min(lo + BLOCK, n)
            kernel(numpy, *(a[lo:hi] for a in flat), **scalars)

    workers = min(os.cpu_count() or 1, len(starts))
    if workers <= 1:
        run(starts)
        return
    # contiguous runs of blocks per thread: neighbouring blocks share pages and prefetch
    groups = [starts[k * len(starts) // workers:(k + 1) * len(starts) // workers] for k in range(workers)]
    for future in [_executor().submit(run, group) for group in groups]:
        future.result()
