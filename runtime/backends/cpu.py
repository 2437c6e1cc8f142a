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
