"""Native CPU C++ per-element math: the C-family printer as it is.

Every statement of the base printer is a plain operator, a `?:` between values already
computed, or an inline branch-free helper of the support header, which GCC vectorises
in the CPU kernels' loops; `normal()` calls the same Philox helper as the CUDA code.
So nothing in the per-element statements differs from the C-family base today; a
CPU-only spelling belongs here as a `_print_X` override. What does differ between the
targets (loops and threads instead of grids, OpenMP, no `__device__`) lives in the
templates (`cpu_module.cpp.j2` against `cuda_module.cu.j2`).
"""
from .c_family import Assignment, CFamilyPrinter, Definition

__all__ = ["Assignment", "CpuPrinter", "Definition"]


class CpuPrinter(CFamilyPrinter):
    """Per-element statements of generated native CPU sources (`generated/cpu/*.cpp`)."""
