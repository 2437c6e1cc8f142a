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
(`numpy_module.matrix_kernel_lines`; run by `runtime/backends/native_matrix.py`). Rules whose stages need noise or store booleans get no
stage kernels (`matrix_stages.Unsupported`): their NumPy code runs.
"""
from ..matrix_stages import Stage, Unsupported, shapes, split
from ..printers.cpu import CpuPrinter, Definition
from ..tac import lower
from .templates import environment


def stage_programs(rule, analysis):
    """[(variant, program, items)] of every variant, or None when a stage is unsupported."""
    out = []
    for variant in analysis.variants.values():
        program = lower(variant, rule)
        try:
            out.append((variant, program, split(program)))
        except Unsupported:
            return None
    return out


def render(rule, programs):
    printer = CpuPrinter()
    contexts = []
    for variant, program, items in programs:
        shape = shapes(program)
        fn = f"{rule.key}_{variant.name}"
        for item in items:
            if isinstance(item, Stage):
                contexts.append(_stage_context(fn, item, shape, printer))
    template = environment().get_template("cpu_matrix.cpp.j2")
    return template.render(rule=rule, stages=contexts).rstrip("\n") + "\n"


def stage_scalars(stage):
    """The host scalar names a stage reads, in the order of its `p_sc` argument."""
    names = []
    for v in stage.vals:
        for a in v.args:
            if type(a).__name__ == "Scalar" and a.name not in names:
                names.append(a.name)
    return names


def _stage_context(fn, stage, shape, printer):
    aliases = {a.id: f"x_{a.id}" for a in stage.reads if a.op != "input"}
    reads = []
    for k, a in enumerate(stage.reads):
        local = printer.name(a.name) if a.op == "input" else f"x_{a.id}"
        # the stride along the columns is 1 for a value with columns, 0 for a broadcast one
        unit = "1" if len(shape[a.id]) == 2 and shape[a.id][1] != "1" else "0"
        reads.append({"k": k, "local": local, "unit": unit})
    with printer.aliases(aliases):
        lines = [printer._print(Definition(v)) for v in stage.vals]
    scalars = [printer.name(s) for s in stage_scalars(stage)]
    return {
        "fn": f"{fn}_stage{stage.index}",
        "reads": reads,
        "stores": [f"v{v.id}" for v in stage.stores],
        "scalars": scalars,
        "lines": lines,
    }


def files(rule, analysis, name):
    """{path: text}: the stage kernels of a matrix rule, none where a stage is unsupported."""
    programs = stage_programs(rule, analysis)
    if programs is None:
        return {}
    return {f"cpu/{name.replace('.', '/')}.cpp": render(rule, programs)}
