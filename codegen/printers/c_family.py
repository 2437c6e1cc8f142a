"""C-family per-element math: one statement per three-address instruction.

Shared by the C++ targets (CUDA kernels, native CPU kernels; see `cuda.py` and
`cpu.py` for what each target prints differently). The values of the element-wise
code are printed in the math type `M` (float, or double for float64 weights), in
exactly the order of the TAC instructions the NumPy emitter prints, so every target
rounds the same operations the same way. Functions whose NumPy semantics differ from
C's (NaN propagation of `maximum`/`minimum`/`clip`, `sign(0) == 0`) are helpers of the
target's support header (namespace `om`) written without branches (selects), so a
warp never diverges on them and a CPU loop vectorises.
"""
from contextlib import contextmanager
import re
from dataclasses import dataclass

import sympy
from sympy.printing.cxx import CXX17CodePrinter

from ..tac import Val

BINARY_OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/",
                    "gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!=",
                    "and": "&", "or": "|"}   # bitwise on bools: both sides are computed anyway
HELPERS = {"sqrt": "om::sqrt", "abs": "om::abs", "exp": "om::exp", "log": "om::log",
           "sign": "om::sign", "isfinite": "om::isfinite", "maximum": "om::maximum",
           "minimum": "om::minimum", "pow": "om::pow"}


# Names the generated code uses for itself (kernel and span parameters, loop variables,
# values v3, norms n5, row means r7, pointers p_*, lanes x_*, device values d_*): a spec
# name equal to one is printed with a `u_` prefix instead.
INTERNAL = {"s", "i", "k", "K", "V", "M", "W", "noise", "base", "numel", "first", "stride", "master",
            "lanes", "vector", "table", "tensors", "chunks", "c", "row", "start", "left", "noise_key",
            "noise_t", "om", "acc", "shared", "tensor", "span", "rows", "row_len", "row_means", "reduced",
            "partials", "rowred", "total", "count", "weight_out"}
INTERNAL_PATTERN = re.compile(r"^([vnr]\d+|[pxdu]_.*|.*_out)$")


@dataclass(frozen=True)
class Definition:
    """`const M v3 = ...;`: one instruction of the per-element function."""

    val: Val


@dataclass(frozen=True)
class Assignment:
    """`mean_out = v7;`: an output of the per-element function."""

    target: str
    value: object           # Val, Scalar or Const


class CFamilyPrinter(CXX17CodePrinter):
    """Prints TAC values, definitions and output assignments for generated C++ sources."""

    _aliases = {}

    @contextmanager
    def aliases(self, names):
        """Within a pass: values read back from arrays or norms, printed by these names."""
        saved, self._aliases = self._aliases, dict(names)
        try:
            yield
        finally:
            self._aliases = saved

    def name(self, name):
        """An array or scalar name as a C++ identifier (reserved words get a suffix, names the
        generated code uses itself a `u_` prefix)."""
        printed = self._print(sympy.Symbol(name))
        if printed in INTERNAL or INTERNAL_PATTERN.match(printed):
            return "u_" + printed
        return printed

    def _print_Val(self, val):
        if val.id in self._aliases and val.op != "input":
            return self._aliases[val.id]
        return self.name(val.name) if val.op == "input" else f"v{val.id}"

    def _print_Scalar(self, scalar):
        return f"s.{self.name(scalar.name)}"

    def _print_Const(self, const):
        if isinstance(const.value, bool):
            return "true" if const.value else "false"
        return f"M({const.value!r})"

    def _print_Definition(self, definition):
        val = definition.val
        kind = "bool" if val.boolean else "M"
        method = getattr(self, "_print_op_" + val.op, None)
        args = [self._print(a) for a in val.args]
        if method is not None:
            expr = method(val, args)
        elif val.op in BINARY_OPERATORS:
            expr = f"{args[0]} {BINARY_OPERATORS[val.op]} {args[1]}"
        else:
            expr = f"{HELPERS[val.op]}({', '.join(args)})"
        return f"const {kind} v{val.id} = {expr};"

    def _print_Assignment(self, assignment):
        return f"{self.name(assignment.target)}_out = {self._print(assignment.value)};"

    # -- operations that are not a plain operator or helper call ----------------
    def _print_op_neg(self, val, args):
        return f"-{args[0]}"

    def _print_op_not(self, val, args):
        return f"!{args[0]}"

    def _print_op_where(self, val, args):
        return f"{args[0]} ? {args[1]} : {args[2]}"

    def _print_op_clip(self, val, args):
        # An optional bound that is None arrives as +inf (see the runtime's scalar packing):
        # clipping to [-inf, inf] is the identity, NaN included, so no branch is needed.
        if len(args) == 2:
            return f"om::clip({args[0]}, -{args[1]}, {args[1]})"
        return f"om::clip({args[0]}, {args[1]}, {args[2]})"

    def _print_op_normal(self, val, args):
        # The same order as the host noise: standard normal * std + mean, in M.
        return f"om::normal<M>(noise, i, {val.tag}) * {args[1]} + {args[0]}"
