"""A matrix rule's tensor code cut into element-wise stages and library operations.

The native kernels of a matrix rule (docs/architecture.md, "Matrix-shaped rules") run
its `TensorProgram` as a sequence of items:
- `Library`: an instruction that is not element-wise (`matmul`, `transpose`,
  `inverse_root`, `eigh`, `qr`, `triu`, `solve`, `solve_right`, `norm_lower_bound`,
  `sort_rows`, `sort_cols`, the reductions `norm`, `sum`, `max`, `min`, `row_*`, `col_*`),
  run by the array module (BLAS products, LAPACK, NumPy reductions), and `normal`, drawn
  by the driver from the generator `step` draws from (runtime/noise.py), so that every
  target's noise is the same numbers;
- the loop markers `loop`, `phi`, `end`, `carried` of a hyperparameter-counted loop,
  kept as they are (the driver is a Python `for`);
- `Stage`: the element-wise instructions between two of the above that share one result
  shape, printed as one generated kernel.

Shapes are symbolic pairs built from "r", "c" and "1" (the matrix view's rows and
columns; "()" for a whole-tensor scalar), computed here as the parser computes them:
a transpose swaps, a product takes the outer sizes, a function of a square matrix and a
sort keep their operand's shape, element-wise operations broadcast.
Within a cut the stages are ordered smallest shape first: an element-wise value is never
smaller than its operands, so a stage reads only values of earlier items or its own.
"""
from dataclasses import dataclass, field

from .ir import COLS, DEVICE, ROWS
from .tac import COL_OPS, REDUCTION_OPS, ROW_OPS, SOLVE_OPS, SORT_OPS, SPECTRAL_OPS, SQUARE_OPS, WHOLE_OPS, Val

LIBRARY_OPS = {"matmul", "transpose", "normal", *SQUARE_OPS, *SOLVE_OPS, *SPECTRAL_OPS, *SORT_OPS, *REDUCTION_OPS}
MARKERS = {"loop", "phi", "end", "carried"}
_INPUT_SHAPES = {DEVICE: (), ROWS: ("r", "1"), COLS: ("1", "c")}
_SQUARE_SHAPES = {"rows_by_rows": ("r", "r"), "cols_by_cols": ("c", "c")}


@dataclass
class Stage:
    index: int
    shape: tuple                      # symbolic result shape of every value in the stage
    vals: list                        # element-wise Vals, in TAC order
    reads: list = field(default_factory=list)    # Vals from outside (inputs, earlier items)
    stores: list = field(default_factory=list)   # Vals read outside the stage


@dataclass
class Library:
    val: Val


@dataclass
class Marker:
    val: Val


def shapes(program):
    """{Val id: symbolic shape} of every value of the program, inputs included."""
    shape = {}
    for val in program.inputs.values():
        shape[val.id] = _SQUARE_SHAPES.get(val.square) or _INPUT_SHAPES.get(val.shape, ("r", "c"))
    for v in program.code:
        operands = [shape[a.id] for a in v.args if isinstance(a, Val) and a.id in shape]
        if v.op == "transpose":
            shape[v.id] = operands[0][::-1]
        elif v.op == "matmul":
            shape[v.id] = (operands[0][0], operands[1][1])
        elif v.op in SQUARE_OPS or v.op in SORT_OPS or v.op == "solve_right":
            shape[v.id] = operands[0]
        elif v.op == "solve":
            shape[v.id] = operands[1]
        elif v.op == "normal":
            shape[v.id] = ("r", "c")
        elif v.op in WHOLE_OPS or v.op in SPECTRAL_OPS:
            shape[v.id] = ()
        elif v.op in ROW_OPS:
            shape[v.id] = operands[0][:1] + ("1",)
        elif v.op in COL_OPS:
            shape[v.id] = ("1",) + operands[0][1:]
        elif v.op in ("loop", "end"):
            continue
        elif v.op in ("phi", "carried"):
            shape[v.id] = operands[0] if v.op == "carried" else _phi_shape(v, shape)
        else:
            shape[v.id] = _broadcast(operands)
    return shape


def _phi_shape(phi, shape):
    loop, k = phi.args
    init = loop.args[1 + k.value]
    return shape[init.id] if isinstance(init, Val) else ()


def _broadcast(operands):
    if not operands:
        return ()
    if all(s == () for s in operands):
        return ()
    pairs = [s for s in operands if s != ()]
    return tuple(next((d for d in dims if d != "1"), "1") for dims in zip(*pairs))


def _rank(shape):
    return (len(shape), sum(d != "1" for d in shape))


def split(program):
    """The program as a list of `Stage`, `Library` and `Marker` items, in execution order."""
    shape = shapes(program)
    items, pending = [], []

    def flush():
        groups = {}
        for v in pending:
            groups.setdefault(shape[v.id], []).append(v)
        for key in sorted(groups, key=_rank):
            items.append(Stage(0, key, groups[key]))
        pending.clear()

    for v in program.code:
        if v.op in LIBRARY_OPS or v.op in MARKERS:
            flush()
            items.append(Library(v) if v.op in LIBRARY_OPS else Marker(v))
        else:
            pending.append(v)
    flush()
    stages = [item for item in items if isinstance(item, Stage)]
    owner = {v.id: stage for stage in stages for v in stage.vals}
    read_outside = {v.id for v in program.outputs.values() if isinstance(v, Val)}
    for v in program.code:
        for a in v.args:
            if isinstance(a, Val) and owner.get(a.id) is not owner.get(v.id, v):
                read_outside.add(a.id)
    for k, stage in enumerate(stages):
        stage.index = k
        inside = {v.id for v in stage.vals}
        seen = set()
        for v in stage.vals:
            for a in v.args:
                if isinstance(a, Val) and a.id not in inside and a.id not in seen:
                    seen.add(a.id)
                    stage.reads.append(a)
        stage.stores = [v for v in stage.vals if v.id in read_outside]
    return items


def in_place(program, items):
    """{output name: Val} of the outputs whose final value a stage may write straight into
    the output's own array (the driver then copies nothing for them): the value is stored
    by a stage outside any loop, has the array's shape, is the final value of no other
    output, and nothing after that stage reads the array's old contents (the array itself
    or a transpose of it: a view of the same memory), nor does the stage read it other than
    element for element."""
    shape = shapes(program)
    position, depth, level = {}, 0, {}
    for k, item in enumerate(items):
        if isinstance(item, Marker) and item.val.op == "loop":
            depth += 1
        if isinstance(item, Marker) and item.val.op == "end":
            depth -= 1
        level[k] = depth
        for v in (item.vals if isinstance(item, Stage) else [item.val]):
            position[v.id] = k
    finals = [v for v in program.outputs.values() if isinstance(v, Val)]
    chosen = {}
    for name, value in program.outputs.items():
        if not isinstance(value, Val) or value.op == "input" or value.id not in position:
            continue
        k = position[value.id]
        stage = items[k]
        array = program.inputs[name]
        if not isinstance(stage, Stage) or level[k] or shape[value.id] != shape[array.id] \
                or sum(v is value for v in finals) > 1:
            continue
        views = _views(program, array)
        if any(a.id in views and a is not array for a in stage.reads):
            continue
        later = [a for item in items[k + 1:] for v in (item.vals if isinstance(item, Stage) else [item.val])
                 for a in v.args if isinstance(a, Val)]
        later += [v for v in finals if v is not value]
        if any(a.id in views for a in later):
            continue
        chosen[name] = value
    return chosen


def _views(program, array):
    """Ids of the values that are the array's memory: itself and transposes of it."""
    ids = {array.id}
    for v in program.code:
        if v.op == "transpose" and v.args[0].id in ids:
            ids.add(v.id)
    return ids
