"""Lowering tensor expressions to three-address code (TAC).

Each instruction is one operation (add, sqrt, clip, ...) on values, host scalars
and constants. Every emitter prints the same instructions, so the NumPy code and
the CUDA code compute the same operations in the same order (the CUDA arithmetic
can then be checked bit for bit against NumPy on the CPU).

Lowering is where
- common subexpressions are merged (value numbering: an operation on the same
  operands is computed once),
- small integer powers are expanded (`g**2` -> `g*g`),
- sympy's n-ary sums and products become binary operations, with subtraction
  and division recovered from negative coefficients and negative powers.
"""
from dataclasses import dataclass, field

import sympy

from .functions import (QR, Abs, Clip, ColMax, ColMean, ColMin, ColSum, Eigh, Exp, InverseRoot, IsFinite, Log,
                        MatMul, Maximum, Minimum, Norm, Normal, NormLowerBound, RowMax, RowMean, RowMin, RowSum, Sign,
                        Solve, SolveRight, SortCols, SortRows, Sqrt, SumOfProducts, TensorMax, TensorMin, TensorSum,
                        Transpose, Triu, Where)
from .ir import COLS, DEVICE, KIND_ORDER, ROWS, TENSOR

MAX_EXPANDED_POWER = 4
# Reductions by result shape (`dot(a, b)` is lowered as `sum(a * b)`)
WHOLE_OPS = ("norm", "sum", "max", "min")                      # one value per tensor (DEVICE)
ROW_OPS = ("row_mean", "row_sum", "row_max", "row_min")        # one value per row (ROWS)
COL_OPS = ("col_mean", "col_sum", "col_max", "col_min")        # one value per column (COLS)
REDUCTION_OPS = WHOLE_OPS + ROW_OPS + COL_OPS
REDUCE = {Norm: "norm", TensorSum: "sum", TensorMax: "max", TensorMin: "min", RowMean: "row_mean",
          RowSum: "row_sum", RowMax: "row_max", RowMin: "row_min", ColMean: "col_mean", ColSum: "col_sum",
          ColMax: "col_max", ColMin: "col_min"}
SQUARE_OPS = ("inverse_root", "eigh", "qr", "triu")    # functions of square matrices, keeping their shape
SOLVE_OPS = ("solve", "solve_right")           # linear solves (LAPACK, through the array module)
SPECTRAL_OPS = ("norm_lower_bound",)           # one value per square matrix (a device scalar)
SORT_OPS = ("sort_rows", "sort_cols")           # rows or columns reordered by a key
MATRIX_OPS = {"matmul", "transpose", *SQUARE_OPS, *SOLVE_OPS, *SPECTRAL_OPS, *SORT_OPS, *COL_OPS}   # need the matrix view
COMMUTATIVE = {"add", "mul", "maximum", "minimum", "eq", "ne", "and", "or"}
BOOLEAN_OPS = {"gt", "ge", "lt", "le", "eq", "ne", "and", "or", "not", "isfinite"}
UNARY = {Sqrt: "sqrt", Abs: "abs", Sign: "sign", Exp: "exp", Log: "log", IsFinite: "isfinite"}
BINARY = {Maximum: "maximum", Minimum: "minimum"}
COMPARE = {sympy.StrictGreaterThan: "gt", sympy.GreaterThan: "ge", sympy.StrictLessThan: "lt",
           sympy.LessThan: "le", sympy.Equality: "eq", sympy.Unequality: "ne"}


@dataclass(frozen=True)
class Scalar:
    """A host value (float64 on the host, passed to the element-wise code)."""

    name: str
    optional: bool = False      # may be None at run time (an optional clip bound)


@dataclass(frozen=True)
class Const:
    value: object               # int, float or bool


@dataclass(eq=False)
class Val:
    """A value of the tensor code: an input array or the result of one operation."""

    id: int
    op: str                     # "input" or an operation name
    args: tuple = ()            # Val | Scalar | Const operands
    shape: str = TENSOR         # TENSOR, ROWS or DEVICE (a reduction's scalar result)
    boolean: bool = False
    name: str = ""              # the array's name for inputs; the spec's name for named results
    tag: int = 0                # numbers the noise draws of `normal`
    square: str = ""            # an input state of one square matrix per matrix of the view:
                                # "rows_by_rows" or "cols_by_cols" (its shape stays TENSOR)

    def __repr__(self):
        return f"%{self.id}" if self.op != "input" else self.name


@dataclass
class TensorProgram:
    inputs: dict                # array name -> input Val (weight, grad, tensor states)
    code: list                  # operation Vals in execution order
    outputs: dict               # array name -> final value (Val, Scalar or Const)
    scalars: list = field(default_factory=list)   # host scalar names the code reads
    optional: frozenset = frozenset()             # scalar names that may be None

    def uses(self):
        """Number of reads of each Val (operands and outputs)."""
        count = {}
        for v in self.code:
            for a in v.args:
                if isinstance(a, Val):
                    count[a.id] = count.get(a.id, 0) + 1
        for v in self.outputs.values():
            if isinstance(v, Val):
                count[v.id] = count.get(v.id, 0) + 1
        return count


def lower(variant, rule):
    """The tensor code of one variant as a `TensorProgram`. Every emitter lowers every variant:
    the program is kept on the variant (for this rule) and shared; no one changes it."""
    kept = getattr(variant, "_lowered", None)
    if kept is not None and kept[0] is rule:
        return kept[1]
    program = _Lowering(variant, rule).program()
    variant._lowered = (rule, program)
    return program


class _Lowering:
    def __init__(self, variant, rule):
        self.variant = variant
        self.kinds = variant.kinds
        self.optional = frozenset(["clip_gradient"] + [hp.name for hp in rule.hyperparameters if hp.optional])
        self.code = []
        self.numbering = {}
        self.inputs = {}
        arrays = ["weight", "grad"] + [st.name for st in rule.states if st.name in variant.states
                                       and (st.shape not in ("scalar", "group") or st.device)]
        square = {st.name: st.shape for st in rule.states if st.matrix_shape}
        for name in arrays:
            shape = self.kinds.get(name) if self.kinds.get(name) in (ROWS, COLS, DEVICE) else TENSOR
            self.inputs[name] = Val(-1 - len(self.inputs), "input", shape=shape, name=name,
                                    square=square.get(name, ""))
        self.locals = dict(self.inputs)

    def program(self):
        for sym, expr in self.variant.tensor:
            if expr is None:      # a loop counted by a hyperparameter (analysis.LoopBlock)
                self.lower_loop(sym)
                continue
            value = self.lower(expr)
            if isinstance(value, Val) and value.op != "input" and not value.name:
                value.name = sym.name
            self.locals[sym.name] = value
        outputs = {name: self.lower(value) for name, value in self.variant.outputs.items()}
        code = _live(self.code, outputs)
        scalars = sorted({a.name for v in code for a in v.args if isinstance(a, Scalar)}
                         | {v.name for v in outputs.values() if isinstance(v, Scalar)})
        return TensorProgram(self.inputs, code, outputs, scalars, self.optional)

    # -- operands -----------------------------------------------------------
    def emit(self, op, *args, boolean=False, tag=0):
        key = (op, tuple(sorted(map(_key, args))) if op in COMMUTATIVE else tuple(map(_key, args)), tag)
        found = self.numbering.get(key)
        if found is not None:
            return found
        shapes = [a.shape for a in args if isinstance(a, Val)]
        shape = max(shapes, key=KIND_ORDER.__getitem__) if shapes else TENSOR
        if op in WHOLE_OPS or op in SPECTRAL_OPS:
            shape = DEVICE
        elif op in ROW_OPS:
            shape = ROWS
        elif op in COL_OPS:
            shape = COLS
        elif op in ("matmul", "transpose", *SQUARE_OPS, *SOLVE_OPS, *SORT_OPS):
            shape = TENSOR
        value = Val(len(self.code), op, tuple(args), shape, boolean or op in BOOLEAN_OPS, tag=tag)
        self.code.append(value)
        self.numbering[key] = value
        return value

    def lower(self, expr):
        if isinstance(expr, sympy.Symbol):
            if expr.name in self.locals:
                return self.locals[expr.name]
            return Scalar(expr.name, expr.name in self.optional)
        if expr is sympy.true or expr is sympy.false:
            return Const(expr is sympy.true)
        if isinstance(expr, sympy.Integer):
            return Const(int(expr))
        if isinstance(expr, sympy.Number):
            return Const(float(expr))
        if isinstance(expr, sympy.Add):
            return self.lower_add(expr.args)
        if isinstance(expr, sympy.Mul):
            return self.lower_mul(expr.args)
        if isinstance(expr, sympy.Pow):
            return self.lower_pow(expr.base, expr.exp)
        for cls, op in UNARY.items():
            if isinstance(expr, cls):
                return self.emit(op, self.lower(expr.args[0]))
        for cls, op in BINARY.items():
            if isinstance(expr, cls):
                return self.emit(op, self.lower(expr.args[0]), self.lower(expr.args[1]))
        for cls, op in COMPARE.items():
            if isinstance(expr, cls):
                return self.emit(op, self.lower(expr.args[0]), self.lower(expr.args[1]))
        if isinstance(expr, Clip):
            return self.emit("clip", *[self.lower(a) for a in expr.args])
        if isinstance(expr, Where):
            return self.emit("where", *[self.lower(a) for a in expr.args])
        if isinstance(expr, sympy.And):
            return self._fold("and", [self.lower(a) for a in expr.args])
        if isinstance(expr, sympy.Or):
            return self._fold("or", [self.lower(a) for a in expr.args])
        if isinstance(expr, sympy.Not):
            return self.emit("not", self.lower(expr.args[0]))
        if isinstance(expr, Normal):
            return self.emit("normal", self.lower(expr.args[0]), self.lower(expr.args[1]),
                             tag=int(expr.args[2]))
        if type(expr) in REDUCE:
            return self.emit(REDUCE[type(expr)], self.lower(expr.args[0]))
        if isinstance(expr, SumOfProducts):   # the products as any `a * b` (shared with equal ones), then their sum
            return self.emit("sum", self.lower(sympy.Mul(*expr.args)))
        if isinstance(expr, Transpose):
            return self.emit("transpose", self.lower(expr.args[0]))
        if isinstance(expr, MatMul):
            return self.emit("matmul", self.lower(expr.args[0]), self.lower(expr.args[1]))
        if isinstance(expr, InverseRoot):
            return self.emit("inverse_root", self.lower(expr.args[0]), self.lower(expr.args[1]))
        if isinstance(expr, Eigh):
            return self.emit("eigh", self.lower(expr.args[0]))
        if isinstance(expr, QR):
            return self.emit("qr", self.lower(expr.args[0]))
        for cls, op in ((Triu, "triu"), (Solve, "solve"), (SolveRight, "solve_right"),
                        (NormLowerBound, "norm_lower_bound")):
            if isinstance(expr, cls):
                return self.emit(op, *[self.lower(a) for a in expr.args])
        if isinstance(expr, (SortRows, SortCols)):
            op = "sort_rows" if isinstance(expr, SortRows) else "sort_cols"
            return self.emit(op, self.lower(expr.args[0]), self.lower(expr.args[1]))
        raise NotImplementedError(f"cannot lower {expr!r} ({type(expr).__name__})")

    def lower_loop(self, block):
        """`loop` (count and the carried values before the loop), one `phi` per carried value
        (read by the body), the body, `end` (its values at the end of an iteration), and one
        `carried` per carried value after the loop. The body's instructions are numbered apart
        from the code after the loop, which may run when the body never did."""
        inits = [self.lower(value) for _, value in block.phis.values()]
        loop = Val(len(self.code), "loop", (Scalar(block.count.name),) + tuple(inits), TENSOR)
        self.code.append(loop)
        outside = dict(self.numbering)
        phis = {}
        for k, (name, (phi, _)) in enumerate(block.phis.items()):
            phis[name] = Val(len(self.code), "phi", (loop, Const(k)), _shape_of(inits[k]), name=phi.name)
            self.code.append(phis[name])
            self.locals[phi.name] = phis[name]
        for sym, expr in block.body:
            value = self.lower(expr)
            if isinstance(value, Val) and value.op != "input" and not value.name:
                value.name = sym.name
            self.locals[sym.name] = value
        finals = [self.lower(block.finals[name]) for name in block.phis]
        end = Val(len(self.code), "end", (loop,) + tuple(finals), TENSOR)
        self.code.append(end)
        self.numbering = outside
        for name, phi in phis.items():
            carried = Val(len(self.code), "carried", (phi, end), phi.shape, name=block.after[name].name)
            self.code.append(carried)
            self.locals[block.after[name].name] = carried

    def _fold(self, op, operands):
        acc = operands[0]
        for b in operands[1:]:
            acc = self.emit(op, acc, b)
        return acc

    # -- arithmetic -----------------------------------------------------------
    def lower_add(self, terms):
        positive, negative = [], []
        for term in terms:
            magnitude = _negated(term)
            if magnitude is None:
                positive.append(self.lower(term))
            else:
                negative.append(self.lower(magnitude))
        positive = _arrays_first(positive)
        if positive:
            acc = positive[0]
            for b in positive[1:]:
                acc = self.emit("add", acc, b)
        else:
            acc = self.emit("neg", negative.pop(0))
        for b in negative:
            acc = self.emit("sub", acc, b)
        return acc

    def lower_mul(self, factors):
        numerator, denominator = [], []
        negate = False
        for f in factors:
            if isinstance(f, sympy.Rational) and not isinstance(f, sympy.Integer):
                if f.p < 0:
                    negate = not negate
                if abs(f.p) != 1:
                    numerator.append(Const(abs(int(f.p))))
                denominator.append(Const(int(f.q)))
            elif isinstance(f, sympy.Number) and f < 0:
                negate = not negate
                if f != -1:
                    numerator.append(self.lower(-f))
            elif isinstance(f, sympy.Pow) and isinstance(f.exp, sympy.Number) and f.exp < 0:
                denominator.append(self.lower_pow(f.base, -f.exp))
            else:
                numerator.append(self.lower(f))
        numerator = _arrays_first(numerator)
        if numerator:
            acc = numerator[0]
            for b in numerator[1:]:
                acc = self.emit("mul", acc, b)
        else:
            acc = Const(1)
        if denominator:
            denominator = _arrays_first(denominator)
            den = denominator[0]
            for b in denominator[1:]:
                den = self.emit("mul", den, b)
            acc = self.emit("div", acc, den)
        if negate:
            acc = self.emit("neg", acc)
        return acc

    def lower_pow(self, base, exp):
        if exp == 1:
            return self.lower(base)
        if isinstance(exp, sympy.Integer) and 0 < exp <= MAX_EXPANDED_POWER:
            b = self.lower(base)
            if exp == 4:
                sq = self.emit("mul", b, b)
                return self.emit("mul", sq, sq)
            acc = b
            for _ in range(int(exp) - 1):
                acc = self.emit("mul", acc, b)
            return acc
        if isinstance(exp, sympy.Number) and exp < 0:
            return self.emit("div", Const(1), self.lower_pow(base, -exp))
        if exp == sympy.Rational(1, 2):
            return self.emit("sqrt", self.lower(base))
        return self.emit("pow", self.lower(base), self.lower(exp))


def _key(operand):
    if isinstance(operand, Val):
        return ("in", operand.name) if operand.op == "input" else ("v", operand.id)
    if isinstance(operand, Scalar):
        return ("s", operand.name)
    return ("c", type(operand.value).__name__, operand.value)


def _negated(term):
    """The magnitude of a term with a negative coefficient, else None."""
    if isinstance(term, sympy.Number) and term < 0:
        return -term
    if isinstance(term, sympy.Mul) and isinstance(term.args[0], sympy.Number) and term.args[0] < 0:
        coeff = -term.args[0]
        rest = term.args[1:]
        if coeff == 1:
            return rest[0] if len(rest) == 1 else sympy.Mul(*rest, evaluate=False)
        return sympy.Mul(coeff, *rest, evaluate=False)
    return None


def _arrays_first(operands):
    """Arrays before scalars and constants (reads like NumPy: `x * c`)."""
    return [o for o in operands if isinstance(o, Val)] + [o for o in operands if not isinstance(o, Val)]


def _live(code, outputs):
    """Drop operations no output depends on (a loop's phis keep its whole body)."""
    live = set()
    stack = [v for v in outputs.values() if isinstance(v, Val)]
    ends = {v.args[0].id: v for v in code if v.op == "end"}
    while stack:
        v = stack.pop()
        if v.id in live or v.op == "input":
            continue
        live.add(v.id)
        stack.extend(a for a in v.args if isinstance(a, Val))
        if v.op == "phi":
            stack.append(ends[v.args[0].id])
    return [v for v in code if v.id in live]


def symmetric(program):
    """Ids of the values that are symmetric matrices by construction: `matmul(x, transpose(x))`,
    `matmul(transpose(x), x)`, `matmul(s, s)` of a symmetric `s`, and element-wise
    operations whose array operands are all symmetric or device scalars (Muon's
    `ns_b * a + ns_c * matmul(a, a)`). `matmul(s, s)` of such an `s` equals
    `matmul(s, transpose(s))`, which a BLAS computes as a rank-k update (syrk: half the
    multiply-adds of a general product)."""
    found = set()
    for v in program.code:
        if v.op == "matmul":
            a, b = v.args
            if (b.op == "transpose" and b.args[0] is a) or (a.op == "transpose" and a.args[0] is b) \
                    or (a is b and a.id in found):
                found.add(v.id)
        elif v.op not in MATRIX_OPS and v.op not in REDUCTION_OPS + ("loop", "phi", "end", "carried"):
            arrays = [a for a in v.args if isinstance(a, Val) and a.shape != DEVICE]
            if arrays and all(a.op != "input" and a.id in found for a in arrays):
                found.add(v.id)
    return found


def _shape_of(operand):
    return operand.shape if isinstance(operand, Val) else DEVICE
