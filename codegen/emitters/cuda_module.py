"""The CUDA emitter: per spec a `.cu` file and its launch metadata under generated/cuda/.

The per-element math of each variant is printed from the same three-address code
as the NumPy module (`tac.lower`), as a `__host__ __device__` function; around it
the template puts a span function (16-byte packs when aligned, a scalar tail), a
grid-stride kernel per storage dtype and a multi-tensor kernel per storage dtype.
The launch metadata (kernel names, pointer and scalar order, multi-tensor row
layout) is a small Python module next to the `.cu` file, read by the CuPy backend.
"""
from dataclasses import dataclass

from ..errors import SpecError
from ..literals import py_literal
from ..printers.cuda import Assignment, CudaPrinter, Definition
from ..stages import REDUCTIONS, plan
from ..ir import TENSOR
from ..tac import Scalar, lower
from .templates import environment

BLOCK = 256          # threads per block of the grid-stride kernels
MULTI_BLOCK = 512    # threads per block of the multi-tensor kernels (one chunk per block)
CHUNK = 65536        # elements per multi-tensor chunk (as PyTorch's multi_tensor_apply)
REDUCE_THREADS = 256


@dataclass(frozen=True)
class Storage:
    suffix: str          # kernel name suffix
    dtype: str           # the weight's dtype
    storage: str         # C++ storage type of the weight and gradient
    math: str            # C++ type the arithmetic runs in
    master: bool         # a float32 master copy is updated and rounded into the weight


STORAGES = (
    Storage("f32", "float32", "float", "float", False),
    Storage("f64", "float64", "double", "double", False),
    Storage("f16", "float16", "om::half", "float", False),
    Storage("bf16", "bfloat16", "om::bfloat16", "float", False),
    Storage("f16_mp", "float16", "om::half", "float", True),
    Storage("bf16_mp", "bfloat16", "om::bfloat16", "float", True),
)

# Names the generated functions use for themselves; a spec name equal to one would shadow it.
_INTERNAL = {"s", "i", "k", "K", "V", "M", "W", "noise", "base", "numel", "first", "stride", "master",
             "lanes", "vector", "table", "tensors", "chunks", "c", "row", "start", "left",
             "noise_key", "noise_t", "om"}


def supported(rule, analysis):
    """Whether the emitter writes kernels for a rule: element-wise rules and rules whose
    reductions are whole-tensor norms (LAMB, LANS, LARS, LBSGD). Row reductions
    (GroupAdaGrad's row_mean) and row- or device-shaped states are not emitted yet: the
    CuPy backend runs those rules' NumPy code on the device arrays."""
    for variant in analysis.variants.values():
        program = lower(variant, rule)
        if any(v.shape != TENSOR for v in program.inputs.values()):
            return False
        reductions = [v for v in program.code if v.op in REDUCTIONS]
        if any(v.op != "norm" for v in reductions):
            return False
        if reductions and any(v.op == "normal" for v in program.code):
            return False
    return True


def render(rule, analysis, spec_path, module_name):
    """(the `.cu` text, the metadata module text) of one element-wise spec."""
    printer = CudaPrinter()
    classes = {st.name: ("p" if st.dtype == "float32" else "w") for st in rule.states}
    variants, metadata = [], {}
    for key, variant in analysis.variants.items():
        program = lower(variant, rule)
        context = _variant(rule, variant, program, classes, printer)
        variants.append(context)
        metadata[key] = {
            "name": variant.name,
            "states": context["state_names"],
            "written": [a["name"] for a in context["written"]],
            "scalars": context["scalars"],
            "none": context["none"],
            "noise": context["noise"],
            "kernels": {s.suffix: f"{context['fn']}_{s.suffix}" for s in STORAGES},
            "passes": [{"norms": bool(p["reductions"])} for p in context["passes"]],
            "reductions": context["reductions"],
        }
    template = environment().get_template("cuda_module.cu.j2")
    cu = template.render(
        rule=rule, spec_path=spec_path, meta_name=f"generated/cuda/{module_name.replace('.', '/')}.py",
        numpy_path=module_name.replace(".", "/") + ".py",
        update_lines=rule.update_text.strip("\n").split("\n"),
        variants=variants, block=BLOCK, multi_block=MULTI_BLOCK, reduce_threads=REDUCE_THREADS,
    ).rstrip("\n") + "\n"
    meta = environment().get_template("cuda_meta.py.j2").render(
        rule=rule, spec_path=spec_path, source=module_name.split(".")[-1] + ".cu",
        block=BLOCK, multi_block=MULTI_BLOCK, chunk=CHUNK, reduce_threads=REDUCE_THREADS,
        variants=py_literal(metadata),
    ).rstrip("\n") + "\n"
    return cu, meta


def render_common():
    """generated/cuda/optforge.cuh: support code shared by every kernel file."""
    template = environment().get_template("cuda_common.cuh.j2")
    return template.render(chunk=CHUNK, reduce_threads=REDUCE_THREADS).rstrip("\n") + "\n"


def _variant(rule, variant, program, classes, printer):
    fn = f"{rule.key}_{variant.name}"
    names = list(program.inputs) + list(program.scalars)
    clash = sorted(set(names) & _INTERNAL)
    if clash:
        raise SpecError(f"the name '{clash[0]}' is reserved by the CUDA emitter; rename it", rule.path, 1, 1)
    arrays = []
    for name in program.inputs:
        cls = "w" if name in ("weight", "grad") else classes.get(name, "w")
        arrays.append({
            "name": name,
            "c": printer.name(name),
            "cls": cls,
            "written": name in program.outputs,
            "template_type": "W" if name == "grad" else
                             ("M" if cls == "p" else "typename om::Select<MASTER, M, W>::type"),
        })
    written = [a for a in arrays if a["written"]]
    stages = plan(program)
    passes = _passes(program, stages, printer) if len(stages.passes) > 1 else []
    lines = [] if passes else [printer._print(Definition(v)) for v in program.code]
    lines += [] if passes else [printer._print(Assignment(a["name"], program.outputs[a["name"]])) for a in written]
    scalars = [printer.name(s) for s in program.scalars]
    noise = any(v.op == "normal" for v in program.code)
    kernels = [_kernel(fn, storage, arrays, scalars, noise) for storage in STORAGES]
    return {
        "fn": fn,
        "description": variant.description,
        "arrays": arrays,
        "written": written,
        "weight_written": "weight" in program.outputs,
        "state_names": [a["name"] for a in arrays[2:]],
        "scalars": scalars,
        "none": _none_values(program),
        "noise": noise,
        "math_lines": lines,
        "kernels": kernels,
        "passes": passes,
        "reductions": sum(len(p["reductions"]) for p in passes),
    }


def _passes(program, stages, printer):
    """Per pass: the arrays it loads and stores, the norms it reads (by slot in the per-tensor
    `reduced` buffer), the slots it accumulates, and its per-element math."""
    slots = {r.id: k for k, r in enumerate(r for p in stages.passes for r in p.reductions)}
    out = []
    for p in stages.passes:
        names = {vid: printer.name(array) for vid, array in p.loads.items()}
        names.update({r.id: f"n{r.id}" for r in p.uses})
        with printer.aliases(names):
            lines = [printer._print(Definition(v)) for v in p.code]
            for k, r in enumerate(p.reductions):
                x = printer._print(r.args[0])
                lines.append(f"acc[{k}] += double({x} * {x});")
            lines += [printer._print(Assignment(name, program.outputs[name])) for name in p.writes]
        reads = [printer.name(a) for a in p.reads]
        writes = [printer.name(a) for a in p.writes]
        out.append({
            "index": p.index,
            "reads": reads,
            "writes": writes,
            "write_names": set(p.writes),
            "arrays": reads + [a for a in writes if a not in reads],
            "uses": [{"name": f"n{r.id}", "slot": slots[r.id]} for r in p.uses],
            "reductions": [slots[r.id] for r in p.reductions],
            "math_lines": lines,
        })
    return out


def _kernel(fn, storage, arrays, scalars, noise):
    """Pointer parameters, span arguments and the multi-tensor row layout for one storage."""
    params, args, pointers = [], [], []
    for a in arrays:
        if a["name"] in ("weight", "grad"):
            ctype = storage.storage
        elif a["cls"] == "p" or storage.master:
            ctype = storage.math
        else:
            ctype = storage.storage
        const = "" if a["written"] else "const "
        params.append(f"{const}{ctype}* __restrict__ p_{a['c']}")
        pointers.append((a["c"], f"{const}{ctype}"))
        if a["name"] == "weight":
            if storage.master:
                params.append(f"{storage.math}* __restrict__ p_master")
                pointers.append(("master", storage.math))
            args += [f"p_{a['c']}", "p_master" if storage.master else "nullptr"]
        else:
            args.append(f"p_{a['c']}")
    # multi-tensor row: pointers, element count, first chunk, scalars, noise key and counter
    row_words = [f"p_{name}" for name, _ in pointers] + ["numel", "first_chunk"] + scalars
    row_args = []
    for k, (name, ctype) in enumerate(pointers):
        row_args.append(f"om::pointer<{ctype}>(row[{k}]) + start")
    if not storage.master:
        row_args.insert(1, "nullptr")
    count_word = len(pointers)
    scalar_words = list(range(count_word + 2, count_word + 2 + len(scalars)))
    if noise:
        row_words += ["noise_key", "noise_t"]
    return {
        "name": f"{fn}_{storage.suffix}",
        "storage": storage.storage,
        "math": storage.math,
        "master": "true" if storage.master else "false",
        "params": params,
        "args": args,
        "row_words": row_words,
        "row": len(row_words),
        "row_args": row_args,
        "count_word": count_word,
        "first_chunk_word": count_word + 1,
        "scalar_words": scalar_words,
        "noise_word": count_word + 2 + len(scalars),
    }


def _none_values(program):
    """What an optional bound that is None is passed as: the infinity that makes it no bound."""
    none = {}
    for v in program.code:
        if v.op != "clip":
            continue
        for position, bound in enumerate(v.args[1:]):
            if isinstance(bound, Scalar) and bound.optional:
                lower_bound = len(v.args) == 3 and position == 0
                none[bound.name] = "-inf" if lower_bound else "inf"
    return dict(sorted(none.items()))
