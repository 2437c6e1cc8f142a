"""Array backends: NumPy arrays run on the CPU, CuPy arrays on the GPU.

The array type picks the backend; mixing types within one parameter is an error.
CuPy is imported only when a CuPy array is actually seen.
"""
import numpy


def is_cupy_array(x):
    return type(x).__module__.split(".")[0] == "cupy" and hasattr(x, "__cuda_array_interface__")


def array_module(x):
    """`numpy` or `cupy`, whichever `x` belongs to; TypeError for anything else."""
    if isinstance(x, numpy.ndarray):
        return numpy
    if is_cupy_array(x):
        import cupy
        return cupy
    raise TypeError(f"expected a numpy.ndarray or cupy.ndarray, got {type(x).__module__}.{type(x).__name__}")


class quiet:
    """NumPy warns on 0/0 that a where() then discards (trust ratios); CuPy never warns."""

    def __init__(self, xp):
        self.state = numpy.errstate(divide="ignore", invalid="ignore") if xp is numpy else None

    def __enter__(self):
        if self.state is not None:
            self.state.__enter__()

    def __exit__(self, *exc):
        if self.state is not None:
            self.state.__exit__(*exc)
