"""Host code: float64 Python scalars, computed once per step per parameter."""
from sympy.printing.pycode import PythonCodePrinter


class HostPrinter(PythonCodePrinter):
    """Python with the `math` module; the language's functions printed for floats."""

    def __init__(self, settings=None):
        super().__init__(dict(settings or {}, fully_qualified_modules=False, standard="python3"))

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return repr(expr.p / expr.q)

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Sqrt(self, expr):
        return f"math.sqrt({self._print(expr.args[0])})"

    def _print_Exp(self, expr):
        return f"math.exp({self._print(expr.args[0])})"

    def _print_Log(self, expr):
        return f"math.log({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Sign(self, expr):
        x = self._print(expr.args[0])
        return f"float(({x} > 0) - ({x} < 0))"

    def _print_Maximum(self, expr):
        return "max({}, {})".format(*map(self._print, expr.args))

    def _print_Minimum(self, expr):
        return "min({}, {})".format(*map(self._print, expr.args))

    def _print_Clip(self, expr):
        x = self._print(expr.args[0])
        if len(expr.args) == 2:
            c = self._print(expr.args[1])
            return f"({x} if {c} is None else min(max({x}, -{c}), {c}))"
        lo, hi = (self._print(a) for a in expr.args[1:])
        value = f"({x} if {lo} is None else max({x}, {lo}))"
        return f"({value} if {hi} is None else min({value}, {hi}))"

    def _print_Where(self, expr):
        cond, a, b = (self._print(arg) for arg in expr.args)
        return f"({a} if {cond} else {b})"

    def _print_IsFinite(self, expr):
        return f"math.isfinite({self._print(expr.args[0])})"

    def _print_IsNone(self, expr):
        return f"({self._print(expr.args[0])} is None)"

    def _print_StringLiteral(self, expr):
        return repr(expr.value)

    def _print_Pow(self, expr, rational=False):
        base = self.parenthesize(expr.base, 100)  # always parenthesise a compound base
        exp = self.parenthesize(expr.exp, 100)
        return f"{base}**{exp}"
