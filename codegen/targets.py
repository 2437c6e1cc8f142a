"""Which targets a rule gets kernels for, and where and why it gets none.

Every rule the language accepts has NumPy code (`step`, and `fused_step` wherever no
kernel applies). The native CPU and the CUDA kernels are printed from the same
three-address code and the same pass plan, so the two C++ targets cover the same rules:
element-wise rules, whole-tensor and per-row reductions with their passes (codegen/stages.py),
and matrix rules through their element-wise stages (codegen/matrix_stages.py). What they
do not cover is stated here once, with the statement that needs it: the emitters ask
`coverage` whether to write kernels, `optforge check` prints it, and the native backend
refuses `OPTFORGE_CPU_BACKEND=native` for a rule without kernels instead of running its
NumPy code unnoticed.
"""
from dataclasses import dataclass

from .functions import ROW_REDUCTIONS, Normal
from .ir import DEVICE, ROWS, Assign, walk
from .stages import KINDS, REDUCTIONS, plan
from .tac import lower

NUMPY, NATIVE, CUDA = "NumPy", "native CPU", "CUDA"
TARGETS = (NUMPY, NATIVE, CUDA)


@dataclass(frozen=True)
class Gap:
    """Why a rule has no native CPU and CUDA kernels, at the statement that needs it."""

    reason: str
    path: str
    line: int | None
    col: int | None


# Functions each target takes from its own math library (NumPy's SIMD loops, libm, CUDA's
# intrinsics), which round differently in the last bit; +, -, *, /, sqrt and the rest are
# correctly rounded IEEE operations everywhere.
LIBRARY_FUNCTIONS = ("exp", "log", "pow")


@dataclass(frozen=True)
class Coverage:
    gap: Gap | None         # None: every target has kernels
    inexact: str = ""       # why the kernels' results may differ from step's in the last bits

    @property
    def targets(self):
        return (NUMPY,) if self.gap else TARGETS

    @property
    def exact(self):
        """Whether every target computes step's float32/float64 results bit for bit."""
        return not self.inexact

    def describe(self):
        """What `optforge check` prints after "targets: "."""
        if self.gap is None:
            agreement = "bit for bit" if self.exact else f"to a few ulps: {self.inexact}"
            return f"{', '.join(TARGETS)} ({agreement})"
        return (f"{NUMPY} only, no {NATIVE} or {CUDA} kernels: {self.gap.reason} "
                "(fused_step runs the NumPy code)")


def coverage(rule, analysis):
    """The targets of a rule (`Coverage`), decided over every variant."""
    if rule.matrix:     # stage kernels between the same NumPy library calls (noise among them)
        programs = [lower(variant, rule) for variant in analysis.variants.values()]
        used = [f for f in LIBRARY_FUNCTIONS if any(v.op == f for p in programs for v in p.code)]
        return Coverage(None, _library_text(used) if used else "")
    pairs = [(rule, lower(variant, rule)) for variant in analysis.variants.values()]
    group = getattr(analysis, "group", None)
    if group is not None and group.rule is not None:   # the partials stage (group_stage.py) runs on the same targets first
        pairs += [(group.rule, lower(variant, group.rule)) for variant in group.variants.values()]
    for owner, program in pairs:
        gap = _passes_gap(owner, program)
        if gap is not None:
            return Coverage(gap)
    return Coverage(None, _inexact([program for _, program in pairs]))


def _library_text(used):
    return f"each target's math library rounds {', '.join(used)} its own way"


def _inexact(programs):
    """Why an element-wise rule's kernels may round otherwise than its NumPy code ("" if not).
    Sums (norm, sum, dot, row_mean, row_sum) are added in double in another order than
    NumPy's; a maximum or minimum is the same element in any order (a zero result is +0 on
    every target), and row or scalar states are only read and stored: those are exact."""
    ops = {v.op for program in programs for v in program.code}
    reasons = []
    if any(op in KINDS and not KINDS[op].exact for op in ops):
        reasons.append("sums (norm, sum, dot, row_mean, row_sum) are added in double in another order than NumPy's")
    used = [f for f in LIBRARY_FUNCTIONS if f in ops]
    if used:
        reasons.append(_library_text(used))
    return "; ".join(reasons)


def has_kernels(rule, analysis):
    return coverage(rule, analysis).gap is None


def _passes_gap(rule, program):
    """What the pass kernels of an element-wise variant cannot do, or None."""
    if not (any(v.op in REDUCTIONS for v in program.code)
            or any(v.shape in (ROWS, DEVICE) for v in program.inputs.values())):
        return None         # one pass: every element-wise rule has kernels
    if any(v.op == "normal" for v in program.code):
        return _gap(rule, "noise (normal()) in a rule with reductions", _has(Normal))
    stages = plan(program).passes
    for k, stage in enumerate(stages):
        if len({KINDS[r.op].rows for r in stage.reductions}) > 1:
            return _gap(rule, "a whole-tensor reduction and a row reduction finished in the same pass over memory",
                        _has(*ROW_REDUCTIONS))
        for shape, rows, what in ((ROWS, True, "row reduction"), (DEVICE, False, "whole-tensor reduction")):
            for name in stage.writes:
                if name in stage.reads and program.inputs[name].shape == shape and \
                        not any(s.reductions and KINDS[s.reductions[0].op].rows == rows for s in stages[:k]):
                    kind = "row state" if shape == ROWS else "scalar state"
                    return _gap(rule, f"{kind} '{name}' is rewritten in the first pass that finishes a "
                                f"{what} (its old value has no earlier pass to be kept by)",
                                _assigns(name))
    return None


def _has(*functions):
    return lambda stmt: stmt.expr.has(*functions)


def _assigns(name):
    return lambda stmt: stmt.target == name


def _gap(rule, reason, matches):
    """A Gap at the first statement of the update that `matches` (else the update's first)."""
    statements = [s for s in walk(rule.statements) if isinstance(s, Assign)]
    where = next((s for s in statements if matches(s)), statements[0] if statements else None)
    loc = where.loc if where is not None else None
    return Gap(reason, loc.path if loc else str(rule.path), loc.line if loc else None, loc.col if loc else None)

