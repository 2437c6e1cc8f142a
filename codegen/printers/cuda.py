"""CUDA C++ per-element math: the C-family printer as it is.

The math function is `__host__ __device__` (the template adds the qualifiers), so the
very code the GPU runs is also checked on the CPU; nothing in the per-element
statements differs from the C-family base.
"""
from .c_family import Assignment, CFamilyPrinter, Definition

__all__ = ["Assignment", "CudaPrinter", "Definition"]


class CudaPrinter(CFamilyPrinter):
    """Per-element statements of generated `.cu` files."""
