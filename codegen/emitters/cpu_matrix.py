"""The native CPU kernels of a matrix rule: its element-wise stages as C++ functions.

`matrix_stages.split` cuts each variant's tensor code at products, transposes, norms,
row and column means and loop markers; every element-wise stage becomes one function
`<rule>_<variant>_stage<j>_{f32,f64}` in `generated/cpu/<spec>.cpp`
(`templates/cpu_matrix.cpp.j2`), its statements printed by the C-family printer
(`printers/cpu.py`) in TAC order, so float64 results equal the NumPy code's bit for bit.
A stage runs over a `(batch, rows, cols)` index space; each operand comes with its
element strides (0 on a broadcast axis; a transposed operand is read through swapped
strides), its stored values are written contiguously. The driver that calls the stages
and the library operations between them is generated into the spec's NumPy module
(`numpy_module.matrix_kernel_lines`; run by `runtime/backends/native_matrix.py`); noise
(`normal()`) is one of the driver's library calls, drawn as `step` draws it.
"""
from ..printers.cpu import CpuPrinter
from .c_stages import stage_contexts, stage_programs
from .templates import environment


def render(rule, programs):
    """The `.cpp` text: one template function per distinct stage body (variants share
    most of their stages: the mxnet2 Adafactor's 176 stages have 21 bodies), and per stage
    the `extern "C"` entry points calling its body."""
    template = environment().get_template("cpu_matrix.cpp.j2")
    return template.render(rule=rule, stages=stage_contexts(rule, programs, CpuPrinter())).rstrip("\n") + "\n"


def files(rule, analysis, name):
    """{path: text}: the stage kernels of a matrix rule."""
    programs = stage_programs(rule, analysis)
    return {f"cpu/{name.replace('.', '/')}.cpp": render(rule, programs)}
