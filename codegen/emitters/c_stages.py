"""A matrix rule's element-wise stages as the C++ targets print them, whatever the target.

`stage_programs` cuts each variant at its library operations (codegen/matrix_stages.py);
`stage_contexts` gives a template every stage's entry point, body function (equal bodies
shared), reads, stores, scalars and statements printed by the target's printer. The native
CPU emitter (`cpu_matrix.py`) and the CUDA emitter (`cuda_matrix.py`) render the same
contexts, so both targets' stage kernels have the same names and arguments; the NumPy
module's stage driver (`numpy_module.matrix_kernel_lines`) calls them by those names.
"""
from ..matrix_stages import Stage, shapes, split
from ..printers.c_family import Definition
from ..tac import Val, lower

READ_IDS = 1 << 20      # ids of a stage's outside values while it is printed


def stage_programs(rule, analysis):
    """[(variant, program, items)] of every variant."""
    out = []
    for variant in analysis.variants.values():
        program = lower(variant, rule)
        out.append((variant, program, split(program)))
    return out


def stage_contexts(rule, programs, printer):
    """What a template needs of every stage of every variant, its statements printed by
    `printer` (the CPU and the CUDA emitters share this): entry point, body function (equal
    bodies share one, `first` marks where it is printed), reads, stores, scalars, lines."""
    contexts, bodies = [], {}
    for variant, program, items in programs:
        shape = shapes(program)
        fn = f"{rule.key}_{variant.name}"
        for item in items:
            if isinstance(item, Stage):
                context = _stage_context(fn, item, shape, printer)
                context["kernel"] = f"{fn}_stages"     # a variant's entry points: built together
                key = (tuple((r["local"], r["unit"]) for r in context["reads"]), tuple(context["stores"]),
                       tuple(context["scalars"]), tuple(context["lines"]))
                context["body"] = bodies.setdefault(key, f"{rule.key}_body{len(bodies)}")
                context["first"] = not any(c["body"] == context["body"] for c in contexts)
                contexts.append(context)
    return contexts


def stage_scalars(stage):
    """The host scalar names a stage reads, in the order of its `p_sc` argument."""
    names = []
    for v in stage.vals:
        for a in v.args:
            if type(a).__name__ == "Scalar" and a.name not in names:
                names.append(a.name)
    return names


def _stage_context(fn, stage, shape, printer):
    # values numbered within the stage (reads x_<k>, results v<k>), so that equal stages of
    # different variants print equal bodies
    reads = []
    for k, a in enumerate(stage.reads):
        local = printer.name(a.name) if a.op == "input" else f"x_{k}"
        # the stride along the columns is 1 for a value with columns, 0 for a broadcast one
        unit = "1" if len(shape[a.id]) == 2 and shape[a.id][1] != "1" else "0"
        reads.append({"k": k, "local": local, "unit": unit})
    index = stage.index
    stage = _renumbered(stage)
    # a boolean crossing stages is stored as 1 or 0 in the math type (C++ converts bool to M)
    # and read back as a comparison with 0
    aliases = {a.id: f"(x_{k} != M(0))" if a.boolean else f"x_{k}"
               for k, a in enumerate(stage.reads) if a.op != "input"}
    with printer.aliases(aliases):
        lines = [printer._print(Definition(v)) for v in stage.vals]
    scalars = [printer.name(s) for s in stage_scalars(stage)]
    return {
        "fn": f"{fn}_stage{index}",
        "reads": reads,
        "stores": [f"v{v.id}" for v in stage.stores],
        "scalars": scalars,
        "lines": lines,
    }


def _renumbered(stage):
    """The stage with its own values numbered 0, 1, ... and the values it reads from outside
    numbered apart (from READ_IDS; printed through aliases); inputs keep theirs."""
    new = {a.id: Val(READ_IDS + k, a.op, (), a.shape, a.boolean, a.name) if a.op != "input" else a
           for k, a in enumerate(stage.reads)}
    reads = [new[a.id] for a in stage.reads]
    vals = []
    for k, v in enumerate(stage.vals):
        args = tuple(new.get(a.id, a) if isinstance(a, Val) else a for a in v.args)
        new[v.id] = Val(k, v.op, args, v.shape, v.boolean, v.name, v.tag)
        vals.append(new[v.id])
    return Stage(stage.index, stage.shape, vals, reads, [new[v.id] for v in stage.stores])


