"""Row-sparse gradients: a few rows of values, the other rows zero (MXNet's `row_sparse`).

    grad = optforge.RowSparse(indices=[0, 7], values=rows, shape=weight.shape)
    optimizer.update(0, weight, grad, state)

With `lazy_update=True` only the listed rows of the weight and of its states
change; otherwise the update is the dense one with zero gradient in the other
rows. Either way the same generated kernel runs: on the gathered rows (lazy), on
the densified gradient (standard), or, for rules with whole-tensor norms, on the
full tensors with only the listed rows written back (lazy).
"""
import numpy

from .backends import array_module


class RowSparse:
    """A gradient with values for some rows only.

    Parameters
    ----------
    indices : 1-D integer array
        Row numbers. Unsorted indices are sorted; repeated rows are summed.
    values : array of shape (len(indices),) + shape[1:]
        The rows' values (a NumPy or CuPy array, like `indices`).
    shape : tuple
        The dense shape (the weight's shape).
    """

    def __init__(self, indices, values, shape):
        xp = array_module(values)
        indices = xp.asarray(indices)
        shape = tuple(int(s) for s in shape)
        if indices.ndim != 1:
            raise ValueError(f"row-sparse indices must be 1-D, got shape {tuple(indices.shape)}")
        if indices.size and indices.dtype.kind not in "iu":
            raise ValueError(f"row-sparse indices must be integers, got dtype {indices.dtype}")
        if not shape:
            raise ValueError("a row-sparse gradient needs at least one dimension")
        expected = (int(indices.shape[0]),) + shape[1:]
        if tuple(values.shape) != expected:
            raise ValueError(f"row-sparse values have shape {tuple(values.shape)}, expected {expected} "
                             f"({indices.shape[0]} rows of a {shape} gradient)")
        if indices.size:
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= shape[0]:
                bad = low if low < 0 else high
                raise ValueError(f"row index {bad} is out of range for {shape[0]} rows")
            order = xp.argsort(indices, kind="stable")
            indices, values = indices[order], values[order]
            unique, first = xp.unique(indices, return_index=True)
            if unique.shape[0] != indices.shape[0]:   # repeated rows add up
                summed = xp.zeros((unique.shape[0],) + shape[1:], dtype=values.dtype)
                xp.add.at(summed, xp.searchsorted(unique, indices), values)
                indices, values = unique, summed
        self.indices = indices.astype(numpy.int64, copy=False)
        self.values = values
        self.shape = shape

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def ndim(self):
        return len(self.shape)

    def astype(self, dtype):
        return RowSparse(self.indices, self.values.astype(dtype), self.shape)

    def todense(self):
        xp = array_module(self.values)
        dense = xp.zeros(self.shape, dtype=self.values.dtype)
        dense[self.indices] = self.values
        return dense

    def __repr__(self):
        return f"RowSparse({self.indices.shape[0]} of {self.shape[0]} rows, shape={self.shape}, dtype={self.dtype})"


def lazy_update(xp, kernel, weight, grad, arrays, scalars, whole_tensor):
    """Only the gradient's rows of the weight and of its row-shaped states change.

    Row-local rules run the kernel on the gathered rows. Rules that read whole-tensor
    norms (LARS) run it on full copies, so the norms see every row, and keep the rows."""
    rows = grad.indices
    indexable = [a.ndim > 0 and a.shape[0] == weight.shape[0] for a in arrays]
    if whole_tensor:
        w, g = weight.copy(), grad.todense()
        parts = [a.copy() for a in arrays]
    else:
        w, g = weight[rows], grad.values
        parts = [a[rows] if keep else a for a, keep in zip(arrays, indexable)]
    kernel(xp, w, g, *parts, **scalars)
    weight[rows] = w[rows] if whole_tensor else w
    for a, part, keep in zip(arrays, parts, indexable):
        if keep:
            a[rows] = part[rows] if whole_tensor else part
        elif whole_tensor:
            a[...] = part
