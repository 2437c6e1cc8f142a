"""The native CPU emitter: per spec a C++ source under generated/cpu/, and the shared header.

The kernels are the CUDA kernels' counterparts for the CPU: the same variants, the same
per-element math (the C-family printer, `printers/cpu.py`), the same entry point names,
argument order and multi-tensor table layout, so the runtime launches them with the CUDA
launch metadata (`generated/cuda/<spec>.py`, read by `runtime/backends/launch_table.py`).
What differs is around the math (`templates/cpu_module.cpp.j2`, `templates/cpu_passes.cpp.j2`):
plain loops the compiler vectorises instead of packs, OpenMP threads instead of a grid, and
reductions combined per chunk in order instead of per block. Matrix rules get their
element-wise stages instead (`cpu_matrix.py`); other rules the CUDA emitter does not cover
(`targets.coverage`) get no CPU source either: their NumPy code runs.

Nothing of the spec's text is printed except identifiers the parser checked (the rule's
key, names of hyperparameters, states and values).
"""
from ...conventions.state_storage import BLOCK, LUT_SIZE
from ..printers.cpu import CpuPrinter
from ..tac import lower
from . import cpu_matrix, cpu_quantized
from ..targets import has_kernels
from .c_family import CHUNK, state_classes, variant_context
from .templates import environment, render_limited

HEADER = "optforge_cpu.h"
MIN_PER_THREAD = 1 << 15   # elements: below twice this a single tensor is not split across threads


def render(rule, analysis):
    """The `.cpp` text of one spec's CPU kernels."""
    printer = CpuPrinter()
    classes = state_classes(rule)
    variants = []
    pairs = [(rule, variant) for variant in analysis.variants.values()] + list(analysis.modes.values())
    for k, (variant_rule, variant) in enumerate(pairs):     # the variants, then the [modes] kernels
        context = variant_context(variant_rule, variant, lower(variant, variant_rule), classes, printer)
        # kernels for stored states: a step's variants (a mode's weight rewrite runs its NumPy code)
        context["quantized"] = cpu_quantized.kernels(rule, context) if k < len(analysis.variants) else []
        for kernel in context["kernels"]:
            kernel["offset_args"] = _offset_args(context["arrays"], kernel["master"] == "true")
        for stage in context["passes"]:
            stage["cpu_call_args"] = _pass_call_args(stage)
            stage["simd"] = _simd_reductions(stage["reductions"])
        variants.append(context)
    template = environment().get_template("cpu_module.cpp.j2")
    return render_limited(template, rule=rule, variants=variants).rstrip("\n") + "\n"


def render_common():
    """generated/cpu/optforge_cpu.h: support code shared by every CPU kernel file."""
    template = environment().get_template("cpu_common.h.j2")
    return template.render(chunk=CHUNK, min_per_thread=MIN_PER_THREAD, qblock=BLOCK,
                           lut_size=LUT_SIZE).rstrip("\n") + "\n"


def files(rule, analysis, name):
    """{path under generated/: text}: the spec's CPU source, none where the rule has no kernels."""
    if rule.matrix:     # stage kernels between library products (emitters/cpu_matrix.py)
        return cpu_matrix.files(rule, analysis, name)
    if not has_kernels(rule, analysis):
        return {}
    return {f"cpu/{name.replace('.', '/')}.cpp": render(rule, analysis)}


def _offset_args(arrays, master):
    """Span arguments of a single-tensor call: every pointer moved to the thread's first element."""
    args = []
    for a in arrays:
        args.append(f"p_{a['c']} + lo")
        if a["name"] == "weight":
            args.append("p_master + lo" if master else "nullptr")
    return args


def _simd_reductions(reductions):
    """The `omp simd` reduction clauses of a pass's partials `sum<k>`: `+` for sums, the
    header's NaN-propagating `om_max` / `om_min` for maxima and minima."""
    clauses = []
    for combine, op in (("sum", "+"), ("max", "om_max"), ("min", "om_min")):
        names = [f"sum{k}" for k, r in enumerate(reductions) if r["combine"] == combine]
        if names:
            clauses.append(f"reduction({op}: {', '.join(names)})")
    return " ".join(clauses)


def _pass_call_args(stage):
    """Arguments of a pass's per-element math in the CPU span (one element, no lanes), in the
    order of its parameters (`c_family._passes`)."""
    return ([f"x_{a}" for a in stage["reads"]] + [r["name"] for r in stage["uses_rows"]]
            + [f"x_{a}" for a in stage["writes"]] + ["s"] + [n["name"] for n in stage["uses_norms"]]
            + (["acc"] if stage["reductions"] else []))
