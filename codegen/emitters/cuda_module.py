"""The CUDA emitter: per spec a `.cu` file and its launch metadata under generated/cuda/.

The per-element math of each variant is printed from the same three-address code
as the NumPy module (`tac.lower`), as a `__host__ __device__` function; around it
the template puts a span function (16-byte packs when aligned, a scalar tail), a
grid-stride kernel per storage dtype and a multi-tensor kernel per storage dtype.
The launch metadata (kernel names, pointer and scalar order, multi-tensor row
layout) is a small Python module next to the `.cu` file, read by the CuPy backend.
"""
from ...conventions.state_storage import BLOCK as QBLOCK, LUT_SIZE
from ..literals import py_literal
from ..printers.cuda import CudaPrinter
from ..tac import lower
from . import cpu_quantized, cuda_quantized
from .c_family import CHUNK, STORAGES, state_classes, variant_context
from .templates import environment, render_limited

BLOCK = 256          # threads per block of the grid-stride kernels
MULTI_BLOCK = 512    # threads per block of the multi-tensor kernels (one chunk per block)
REDUCE_THREADS = 256


def render(rule, analysis, spec_path, module_name):
    """(the `.cu` text, the metadata module text) of one element-wise spec."""
    printer = CudaPrinter()
    classes = state_classes(rule)
    variants, metadata = [], {}
    for key, variant in analysis.variants.items():
        program = lower(variant, rule)
        context = variant_context(rule, variant, program, classes, printer)
        context["quantized"] = cuda_quantized.kernels(rule, context)
        variants.append(context)
        metadata[key] = {
            **_launch_meta(variant, program, context),
            "passes": [{"finish": bool(p["finish"]), "by_rows": p["by_rows"], "kinds": p["kinds"]}
                       for p in context["passes"]],
            "reductions": context["reductions"],
            "rows": context["rows"],
            "device": context["device"],
            "row_reductions": context["row_reductions"],
            **cpu_quantized.metadata(rule, context),
            **cuda_quantized.metadata(rule, context),
        }
    modes = {}
    for mode, (mode_rule, variant) in analysis.modes.items():   # [modes]: element-wise weight rewrites
        program = lower(variant, mode_rule)
        context = variant_context(mode_rule, variant, program, classes, printer)
        context["quantized"] = []
        variants.append(context)
        modes[mode] = _launch_meta(variant, program, context)
    template = environment().get_template("cuda_module.cu.j2")
    cu = render_limited(
        template, rule=rule, spec_path=spec_path, meta_name=f"generated/cuda/{module_name.replace('.', '/')}.py",
        numpy_path=module_name.replace(".", "/") + ".py",
        update_text=rule.update_text.strip("\n"),
        variants=variants, block=BLOCK, multi_block=MULTI_BLOCK, reduce_threads=REDUCE_THREADS, qblock=QBLOCK,
    ).rstrip("\n") + "\n"
    meta = environment().get_template("cuda_meta.py.j2").render(
        rule=rule, spec_path=spec_path, source=module_name.split(".")[-1] + ".cu",
        block=BLOCK, multi_block=MULTI_BLOCK, chunk=CHUNK, reduce_threads=REDUCE_THREADS,
        variants=py_literal(metadata), modes=py_literal(modes) if modes else "",
    ).rstrip("\n") + "\n"
    return cu, meta


def _launch_meta(variant, program, context):
    """What the runtime needs to launch one variant's (or one mode's) kernels."""
    return {
        "name": variant.name,
        "states": context["state_names"],
        "written": [a["name"] for a in context["written"]],
        "scalars": list(program.scalars),
        "none": context["none"],
        "noise": context["noise"],
        "kernels": {s.suffix: f"{context['fn']}_{s.suffix}" for s in STORAGES},
    }


def render_common():
    """generated/cuda/optforge.cuh: support code shared by every kernel file."""
    template = environment().get_template("cuda_common.cuh.j2")
    return template.render(chunk=CHUNK, reduce_threads=REDUCE_THREADS, qblock=QBLOCK,
                           lut_size=LUT_SIZE).rstrip("\n") + "\n"
