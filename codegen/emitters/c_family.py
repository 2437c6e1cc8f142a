"""What both C++ targets (CUDA, native CPU) need of one variant, whatever the target.

`variant_context` gives a template the variant's arrays, host scalars, per-element math
printed by the target's printer, its passes over memory (codegen/stages.py) and, per
storage dtype (`STORAGES`), the entry point's pointer parameters and the multi-tensor
table's row layout: the CUDA emitter (`cuda_module.py`) and the native CPU emitter
(`cpu_module.py`) render the same contexts with their own templates, so the two targets
share entry point names, argument order and table layout (one launch metadata serves both).
"""
from dataclasses import dataclass

from ..ir import DEVICE, ROWS
from ..printers.c_family import Assignment, Definition
from ..stages import KINDS, REDUCTIONS, plan
from ..tac import Scalar

CHUNK = 65536        # elements per multi-tensor chunk (as PyTorch's multi_tensor_apply)


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

def _multi_pass(program):
    return any(v.op in REDUCTIONS for v in program.code) or \
        any(v.shape in (ROWS, DEVICE) for v in program.inputs.values())


def state_classes(rule):
    """Per state: "p" for float32-policy states and device scalars (stored in the math type),
    "w" for states stored in the weight's dtype."""
    return {st.name: ("p" if st.dtype == "float32" or st.device else "w") for st in rule.states}


def variant_context(rule, variant, program, classes, printer):
    """Everything a C++ template needs of one variant (shared by the CUDA and CPU emitters):
    arrays, scalars, per-element math printed by `printer`, passes, and per storage the
    entry point's pointer parameters and multi-tensor row layout."""
    fn = f"{rule.key}_{variant.name}"
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
            "rows": program.inputs[name].shape == ROWS,
            "device": program.inputs[name].shape == DEVICE,
        })
    written = [a for a in arrays if a["written"]]
    rows = any(a["rows"] for a in arrays)
    passes, row_slots, norm_slots = _passes(fn, program, plan(program), printer, arrays) \
        if _multi_pass(program) else ([], 0, 0)
    lines = [] if passes else [printer._print(Definition(v)) for v in program.code]
    lines += [] if passes else [printer._print(Assignment(a["name"], program.outputs[a["name"]])) for a in written]
    scalars = [printer.name(s) for s in program.scalars]
    noise = any(v.op == "normal" for v in program.code)
    kernels = [_kernel(fn, storage, arrays, scalars, noise, rows) for storage in STORAGES]
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
        "reductions": norm_slots,
        "rows": rows,
        "device": any(a["device"] for a in arrays),
        "row_reductions": row_slots,
    }


# How each element's term joins a reduction's partial (`acc[k]`, double), and the partial's start
_COMBINE = {"sum": "acc[{k}] += {term};", "max": "acc[{k}] = om::maximum(acc[{k}], {term});",
            "min": "acc[{k}] = om::minimum(acc[{k}], {term});"}
_START = {"sum": "0", "max": "-om::infinity()", "min": "om::infinity()"}


def _reduction(r, slot):
    """What the templates need of one finished reduction: its slot, whether it is per row,
    how partials combine ("sum", "max", "min") and start, and its finish."""
    kind = KINDS[r.op]
    return {"slot": slot, "rows": kind.rows, "combine": kind.combine, "start": _START[kind.combine],
            "finish": kind.finish, "op": r.op}


def _passes(fn, program, stages, printer, arrays):
    """Per pass: the arrays it loads and stores, the reductions it reads (whole-tensor ones
    by slot in the per-tensor `reduced` buffer, row ones by slot in the per-row `rowred`
    buffer), the reductions it finishes, its per-element math and that function's parameters."""
    finished = [r for p in stages.passes for r in p.reductions]
    # slots in the order the passes finish them, whole-tensor and per-row ones apart
    slots = {r.id: k for k, r in enumerate(r for r in finished if not KINDS[r.op].rows)}
    slots.update({r.id: k for k, r in enumerate(r for r in finished if KINDS[r.op].rows)})
    row_arrays = {a["c"] for a in arrays if a["rows"]}
    types = {a["c"]: a["template_type"] for a in arrays}
    # A row-shaped array that a pass reads and writes: the row's first element stores the new
    # value while other elements of the row may still have to read the old one, so an earlier
    # row pass copies the old values into the per-row buffer and the rewriting pass reads them
    # there. Device scalar states likewise: the finish kernel of an earlier pass keeps the old
    # value. Only the rewriting pass reads the copy: a pass before it reads the array, which
    # still holds the old value (the copy is not taken yet), and a pass after it reads back
    # the new value.
    device_arrays = {a["c"] for a in arrays if a["device"]}
    row_slots = sum(1 for r in finished if KINDS[r.op].rows)
    norm_slots = sum(1 for r in finished if not KINDS[r.op].rows)
    snapshots, device_snapshots, rewriter = {}, {}, {}
    for p in stages.passes:
        for name in p.writes:
            a = printer.name(name)
            if name not in p.reads or a not in row_arrays | device_arrays:
                continue
            rewriter[a] = p.index
            if a in row_arrays:
                snapshots[a] = row_slots
                row_slots += 1
            else:
                device_snapshots[a] = norm_slots
                norm_slots += 1
    out = []
    for p in stages.passes:
        copied = {a for a, j in rewriter.items() if j == p.index}
        norms_used = [r for r in p.uses if not KINDS[r.op].rows]
        rows_used = [r for r in p.uses if KINDS[r.op].rows]
        names = {vid: printer.name(array) for vid, array in p.loads.items()}
        names.update({r.id: f"n{r.id}" for r in norms_used})
        names.update({r.id: f"r{r.id}" for r in rows_used})
        with printer.aliases(names):
            lines = [printer._print(Definition(v)) for v in p.code]
            for k, r in enumerate(p.reductions):
                x = printer._print(r.args[0])
                term = f"double({x} * {x})" if KINDS[r.op].square else f"double({x})"
                lines.append(_COMBINE[KINDS[r.op].combine].format(k=k, term=term))
            lines += [printer._print(Assignment(name, program.outputs[name])) for name in p.writes]
        reads = [printer.name(a) for a in p.reads]
        writes = [printer.name(a) for a in p.writes]
        params = ([f"const M {a}" for a in reads] + [f"const M r{r.id}" for r in rows_used]
                  + [f"M& {a}_out" for a in writes] + [f"const {fn}_scalars<M>& s"]
                  + [f"const M n{r.id}" for r in norms_used])
        args = ([f"x_{a}[k]" for a in reads] + [f"r{r.id}[k]" for r in rows_used]
                + [f"x_{a}[k]" for a in writes] + ["s"] + [f"n{r.id}" for r in norms_used])
        if p.reductions:
            params.append(f"double (&acc)[{len(p.reductions)}]")
            args.append("acc")
        reductions = [_reduction(r, slots[r.id]) for r in p.reductions]
        starts = [r["start"] for r in reductions]
        out.append({
            "index": p.index,
            "reads": reads,
            "writes": writes,
            "write_names": set(p.writes),
            "arrays": reads + [a for a in writes if a not in reads],
            "row_arrays": row_arrays,
            "row_reads": [a for a in reads if a in row_arrays and a not in copied],
            "device_reads": [{"name": a, "slot": device_snapshots[a] if a in copied else None}
                             for a in reads if a in device_arrays],
            "device_arrays": device_arrays,
            "device_snapshots": [],
            "snapshot_reads": [{"name": a, "slot": snapshots[a]} for a in reads if a in copied and a in snapshots],
            "snapshots": [],
            "row_types": types,
            "uses_norms": [{"name": f"n{r.id}", "slot": slots[r.id]} for r in norms_used],
            "uses_rows": [{"name": f"r{r.id}", "slot": slots[r.id]} for r in rows_used],
            "reductions": reductions,
            # the partials' start: `{}` (zeros) when every reduction of the pass is a sum
            "start": "{}" if all(x == "0" for x in starts) else "{" + ", ".join(starts) + "}",
            "finish": [r for r in reductions if not r["rows"]],
            "kinds": sorted({r.op for r in p.reductions}),
            "by_rows": any(r["rows"] for r in reductions),
            "math_params": params,
            "call_args": args,
            "math_lines": lines,
        })
    # taken by the first row pass, or the first finish kernel, before the rewriting pass
    # (targets.coverage checks there is one)
    for a, slot in snapshots.items():
        next(p for p in out if p["by_rows"] and p["index"] < rewriter[a])["snapshots"].append(
            {"name": a, "slot": slot})
    for a, slot in device_snapshots.items():
        next(p for p in out if p["finish"] and p["index"] < rewriter[a])["device_snapshots"].append(
            {"name": a, "slot": slot})
    return out, row_slots, norm_slots


def _kernel(fn, storage, arrays, scalars, noise, rows):
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
    whole = {a["c"] for a in arrays if a["rows"] or a["device"]}
    row_args = []
    for k, (name, ctype) in enumerate(pointers):
        offset = "" if name in whole else " + start"   # row and device values are indexed apart
        row_args.append(f"om::pointer<{ctype}>(row[{k}]){offset}")
    if not storage.master:
        row_args.insert(1, "nullptr")
    count_word = len(pointers)
    scalar_words = list(range(count_word + 2, count_word + 2 + len(scalars)))
    if rows:
        row_words += ["row_len", "first_row"]
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
        "row_len_word": count_word + 2 + len(scalars),
        "first_row_word": count_word + 3 + len(scalars),
        "pass_args": row_args,
        "row_pointer": {name: f"om::pointer<{ctype}>(row[{k}])" for k, (name, ctype) in enumerate(pointers)},
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
