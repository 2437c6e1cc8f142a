"""Stages: splitting a `TensorProgram` into passes over memory at its reductions.

A reduction (`norm`, `sum`, `max`, `min` over a whole tensor, `row_mean`, `row_sum`,
`row_max`, `row_min` over each row) needs every element of its operand before any
element of a value that reads it can be computed, so on a device the tensor code runs
as several passes, each a kernel launch over the tensor. This module decides, per pass,
- which reductions it finishes (their operands are computed in the pass),
- which output arrays it writes (the weight and states get their final values),
- which arrays it reads, and for every value it needs whether it is recomputed
  from arrays that still hold what it needs, or read back from an output array
  an earlier pass already stored (the only values ever materialised are outputs
  the rule writes anyway: no scratch arrays).

The choice is the one that moves the fewest bytes, found by trying every pass in
which each output could be written (a rule has a handful of outputs and at most
a few reductions). LAMB, for example, becomes two passes: pass 1 reads weight,
grad, mean and var, stores the new moments and reduces ||weight|| and ||update||;
pass 2 reads the weight and the stored moments, recomputes the update and writes
the weight (10 array accesses: 40 bytes per float32 parameter).
"""
import itertools
from dataclasses import dataclass, field

from .tac import ROW_OPS, WHOLE_OPS, Val


@dataclass(frozen=True)
class Reduction:
    """How the kernels compute one kind of reduction: each element's term is combined into
    a per-chunk (per-row) partial in double, partials are combined in chunk order, and the
    total is finished in the math type M. Sums are rounded differently from NumPy's (another
    order of additions); a maximum or minimum is the same element in any order (NaN
    propagating as numpy.max does; a zero result is +0, whatever zeros were met first)."""

    op: str
    rows: bool          # one value per row (else one per tensor)
    combine: str        # "sum", "max" or "min"
    square: bool        # norm: the terms are squares
    finish: str         # "sqrt" (norm), "mean" (divided by the row's length), "zero" (-0 -> +0), ""

    @property
    def exact(self):
        """Whether every order of combining gives the same result (max and min)."""
        return self.combine != "sum"


KINDS = {
    "norm": Reduction("norm", False, "sum", True, "sqrt"),
    "sum": Reduction("sum", False, "sum", False, ""),
    "max": Reduction("max", False, "max", False, "zero"),
    "min": Reduction("min", False, "min", False, "zero"),
    "row_mean": Reduction("row_mean", True, "sum", False, "mean"),
    "row_sum": Reduction("row_sum", True, "sum", False, ""),
    "row_max": Reduction("row_max", True, "max", False, "zero"),
    "row_min": Reduction("row_min", True, "min", False, "zero"),
}
assert set(KINDS) == set(WHOLE_OPS + ROW_OPS)
REDUCTIONS = tuple(KINDS)           # the reductions of element-wise rules


@dataclass
class Pass:
    index: int
    reads: tuple                # input arrays read (their values when the pass starts)
    writes: tuple               # output arrays that get their final value in this pass
    reductions: tuple           # reduction Vals whose operands this pass computes
    uses: tuple                 # reduction Vals (of earlier passes) this pass reads
    code: list                  # Vals computed per element, in program order
    loads: dict = field(default_factory=dict)   # Val id -> array it is read back from


@dataclass
class Plan:
    passes: list
    accesses: int               # array element reads + writes over all passes


def split(program):
    """The passes of a program: one pass when it has no reduction."""
    return plan(program).passes


def plan(program):
    ready = _ready(program)
    count = 1 + max([ready[v.id] for v in _reductions(program)], default=0)
    outputs = [name for name, v in program.outputs.items()]
    earliest = {name: _ready_of(program.outputs[name], ready) for name in outputs}
    best = None
    for choice in itertools.product(*[range(earliest[n], count) for n in outputs]):
        written = dict(zip(outputs, choice))
        candidate = _build(program, ready, count, written)
        if candidate is not None and (best is None or candidate.accesses < best.accesses):
            best = candidate
    if best is None:   # cannot happen: writing everything in the last pass is always valid
        raise AssertionError("no valid pass plan")
    return best


def _reductions(program):
    return [v for v in program.code if v.op in REDUCTIONS]


def _ready(program):
    """Val id -> the first pass in which the value can be computed or read."""
    ready = {}
    for v in program.code:
        level = max([_ready_of(a, ready) for a in v.args], default=0)
        ready[v.id] = level + 1 if v.op in REDUCTIONS else level
    return ready


def _ready_of(value, ready):
    return ready.get(value.id, 0) if isinstance(value, Val) and value.op != "input" else 0


def _build(program, ready, count, written):
    """A plan where output `name` is written in pass `written[name]`, or None if a pass
    would need the old value of an array an earlier pass overwrote."""
    final_of = {}
    for name, value in program.outputs.items():
        if isinstance(value, Val) and value.op != "input":
            final_of.setdefault(value.id, name)
    passes, accesses = [], 0
    for j in range(count):
        needs = [program.outputs[n] for n in program.outputs if written[n] == j]
        finished = [v for v in _reductions(program) if ready[v.id] == j + 1]
        needs += [v.args[0] for v in finished]
        computed, reads, uses, loads = {}, set(), set(), {}

        def resolve(value):
            if not isinstance(value, Val):
                return True
            if value.op == "input":
                if written.get(value.name, count) < j:
                    return False        # the old value is gone
                reads.add(value.name)
                return True
            if value.id in computed or value.id in loads:
                return True
            if value.op in REDUCTIONS:
                if ready[value.id] > j:
                    return False
                uses.add(value.id)
                return True
            owner = final_of.get(value.id)
            if owner is not None and written[owner] < j:
                reads.add(owner)        # stored by an earlier pass: read it back
                loads[value.id] = owner
                return True
            if not all(resolve(a) for a in value.args):
                return False
            computed[value.id] = value
            return True

        if not all(resolve(v) for v in needs):
            return None
        writes = tuple(n for n in program.outputs if written[n] == j)
        code = [v for v in program.code if v.id in computed]
        order = list(program.inputs) + [n for n in program.outputs if n not in program.inputs]
        passes.append(Pass(j, tuple(n for n in order if n in reads), writes,
                           tuple(finished), tuple(v for v in _reductions(program) if v.id in uses),
                           code, loads))
        accesses += len(reads) + len(writes)
    return Plan(passes, accesses)
