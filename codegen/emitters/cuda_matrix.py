"""The CUDA kernels of a matrix rule: its element-wise stages as grid-stride kernels.

The stages are those of the native CPU kernels (`c_stages.stage_programs`,
`matrix_stages.split`), printed by the CUDA printer (`printers/cuda.py`) into
`generated/cuda/<spec>.stages.cu` (`templates/cuda_matrix.cu.j2`): per stage and math
type an entry point `<rule>_<variant>_stage<j>_{f32,f64}` over the same `(batch, rows,
cols)` index space and strided operands as the CPU functions, its pointers, element
strides and scalars passed as kernel arguments (no device memory to fill on the host
before a launch). The products, transposes and reductions between the stages run through
CuPy (cuBLAS) in the spec's generated stage driver; `runtime/backends/cupy_matrix.py`
launches the stages. The `.stages.cu` name keeps the file apart from the element-wise
rules' `<spec>.cu` and its launch metadata: matrix rules have neither (`targets.coverage`),
so nothing that reads `generated/cuda/<spec>.py` sees them.
"""
from ..printers.cuda import CudaPrinter
from .c_stages import stage_contexts, stage_programs
from .templates import environment

BLOCK = 256          # threads per block of the stage kernels
SUFFIX = ".stages.cu"


def render(rule, programs):
    """The `.stages.cu` text."""
    template = environment().get_template("cuda_matrix.cu.j2")
    return template.render(rule=rule, stages=stage_contexts(rule, programs, CudaPrinter()),
                           block=BLOCK).rstrip("\n") + "\n"


def files(rule, analysis, name):
    """{path: text}: the stage kernels of a matrix rule."""
    programs = stage_programs(rule, analysis)
    return {f"cuda/{name.replace('.', '/')}{SUFFIX}": render(rule, programs)}
