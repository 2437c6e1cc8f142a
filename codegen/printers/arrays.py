"""Array code: one ufunc call per scheduled instruction, written against the
array-module API (`xp` is `numpy` or `cupy`), in place with `out=` wherever the
schedule allows."""
from sympy.printing.numpy import NumPyPrinter

from ..ir import DEVICE
from ..tac import Const, Scalar

UFUNCS = {
    "add": "add", "sub": "subtract", "mul": "multiply", "div": "divide", "pow": "power",
    "neg": "negative", "sqrt": "sqrt", "abs": "abs", "sign": "sign", "exp": "exp", "log": "log",
    "maximum": "maximum", "minimum": "minimum", "isfinite": "isfinite",
    "gt": "greater", "ge": "greater_equal", "lt": "less", "le": "less_equal",
    "eq": "equal", "ne": "not_equal", "and": "logical_and", "or": "logical_or", "not": "logical_not",
}


class ArrayPrinter(NumPyPrinter):
    """Prints `schedule.Step`s as statements; `_print_Step` dispatches on the operation."""

    def _print_Step(self, step):
        method = getattr(self, "_print_step_" + step.val.op, None)
        if method is not None:
            return method(step)
        return self._ufunc(step, UFUNCS[step.val.op], [self._operand(a) for a in step.operands])

    def _operand(self, operand):
        if isinstance(operand, str):
            return operand
        if isinstance(operand, Scalar):
            return operand.name
        if isinstance(operand, Const):
            return repr(operand.value)
        raise TypeError(operand)

    def _ufunc(self, step, name, args):
        call = f"xp.{name}({', '.join(args)}"
        if step.mode == "new":
            return self._bind(step, call + ")")
        return f"{call}, out={step.out})"

    def _bind(self, step, value):
        """`out = value` for a new temporary. A reduction's scalar result stays a 0-d array
        (NumPy ufuncs return scalars for 0-d inputs), so later ops can write into it."""
        if step.val.shape == DEVICE:
            value = f"xp.asarray({value})"
        return f"{step.out} = {value}"

    # -- operations without a plain ufunc -----------------------------------------
    def _clip_bounds(self, step):
        bounds = step.operands[1:]
        if len(bounds) == 1:
            c = self._operand(bounds[0])
            optional = isinstance(bounds[0], Scalar) and bounds[0].optional
            return [f"-{c}", c], [c] if optional else []
        optional = [self._operand(b) for b in bounds if isinstance(b, Scalar) and b.optional]
        return [self._operand(b) for b in bounds], optional

    def _print_step_clip(self, step):
        x = self._operand(step.operands[0])
        bounds, optional = self._clip_bounds(step)
        call = f"xp.clip({x}, {', '.join(bounds)}"
        if step.mode == "alias":
            test = " and ".join(f"{b} is None" for b in optional)
            return self._bind(step, f"{x} if {test} else {call})")
        if step.mode == "guarded":
            test = " or ".join(f"{b} is not None" for b in optional)
            return f"if {test}:\n    {call}, out={step.out})"
        return self._bind(step, call + ")") if step.mode == "new" else f"{call}, out={step.out})"

    def _print_step_where(self, step):
        cond, a, b = (self._operand(o) for o in step.operands)
        if step.mode == "new":
            if not any(isinstance(o, str) for o in step.operands[1:]):
                return self._bind(step, f"xp.where({cond}, {a}, {b}).astype(weight.dtype)")
            return self._bind(step, f"xp.where({cond}, {a}, {b})")
        if step.operands[2] == step.out:
            return f"xp.copyto({step.out}, {a}, where={cond})"
        if step.operands[1] == step.out:
            return f"xp.copyto({step.out}, {b}, where=xp.logical_not({cond}))"
        return f"xp.copyto({step.out}, {b})\nxp.copyto({step.out}, {a}, where={cond})"

    def _print_step_copy(self, step):
        source = self._operand(step.operands[0])
        if step.mode == "new":
            return self._bind(step, f"xp.array({source}, copy=True)")
        return f"xp.copyto({step.out}, {source})"

    noise_like = "weight"       # the array whose shape the noise takes

    def _print_step_normal(self, step):
        mean, std = (self._operand(o) for o in step.operands)
        call = f"rng.normal({step.val.tag}, {mean}, {std}, like={self.noise_like}"
        if step.mode == "new":
            return f"{step.out} = {call})"
        return f"{call}, out={step.out})"

    def _print_step_norm(self, step):
        # sum of squares accumulated in float32 or wider, whatever the storage dtype
        x = self._operand(step.operands[0])
        value = f"xp.sqrt(xp.sum(xp.square({x}, dtype=xp.promote_types({x}.dtype, xp.float32))))"
        return self._bind(step, value) if step.mode == "new" else f"xp.copyto({step.out}, {value})"

    def _print_step_row_mean(self, step):
        x = self._operand(step.operands[0])
        value = f"xp.mean({x}, axis=tuple(range(1, {x}.ndim)), keepdims=True)"
        return f"{step.out} = {value}" if step.mode == "new" else f"xp.mean({x}, axis=tuple(range(1, {x}.ndim)), keepdims=True, out={step.out})"

    # -- sums, maxima and minima ------------------------------------------------------
    # Sums are accumulated in double and rounded once to float32 or wider (a norm's dtype),
    # as the kernels do. A maximum or minimum propagates NaN (numpy.max's rule); `+ 0.0`
    # makes a zero result +0 whichever zero came first (numpy does not fix which one a
    # reduction returns, so the kernels, which combine in another order, would differ in its
    # sign); an empty tensor or row reduces to the start of the kernels' reduction, -inf
    # (max) or +inf (min), where numpy.max would raise.
    def _axes(self, x):
        """The `axis=` of a row reduction: every axis but the first."""
        return f"axis=tuple(range(1, {x}.ndim)), keepdims=True"

    def _empty_shape(self, x):
        """The shape of a row reduction's result."""
        return f"{x}.shape[:1] + (1,) * ({x}.ndim - 1)"

    def _reduced(self, step, value):
        return self._bind(step, value) if step.mode == "new" else f"xp.copyto({step.out}, {value})"

    def _sum(self, step, axes=""):
        x = self._operand(step.operands[0])
        return self._reduced(step, f"xp.sum({x}, {axes + ', ' if axes else ''}dtype=xp.float64)"
                                   f".astype(xp.promote_types({x}.dtype, xp.float32))")

    def _extremum(self, step, name, axes="", empty_shape=None):
        x = self._operand(step.operands[0])
        infinity = "-xp.inf" if name == "max" else "xp.inf"
        call = f"xp.{name}({x}{', ' + axes if axes else ''}) + 0.0"
        empty = f"xp.full({empty_shape}, {infinity}, {x}.dtype)" if axes else f"xp.asarray({infinity}, {x}.dtype)"
        return self._reduced(step, f"({call} if {x}.size else {empty})")

    def _print_step_sum(self, step):
        return self._sum(step)

    def _print_step_max(self, step):
        return self._extremum(step, "max")

    def _print_step_min(self, step):
        return self._extremum(step, "min")

    def _print_step_row_sum(self, step):
        return self._sum(step, self._axes(self._operand(step.operands[0])))

    def _print_step_row_max(self, step):
        x = self._operand(step.operands[0])
        return self._extremum(step, "max", self._axes(x), self._empty_shape(x))

    def _print_step_row_min(self, step):
        x = self._operand(step.operands[0])
        return self._extremum(step, "min", self._axes(x), self._empty_shape(x))

    def copy_statement(self, buffer, source):
        return f"xp.copyto({buffer}, {self._operand(source)})"
