"""The spec language's functions as sympy functions.

Each is an unevaluated `sympy.Function` so that every printer decides how it is
written for its target (`_print_Sqrt`, ...). `eval` folds only what is exact or
what the language defines: numeric arguments (in float64, like host code) and
`where` with a known condition. sympy's own `sqrt`/`Abs`/`sign` are avoided on
purpose: they rewrite `sqrt(2*x)` as `sqrt(2)*sqrt(x)` and similar, which
changes float results.
"""
import math

import sympy
from sympy.logic.boolalg import BooleanFunction
from sympy.printing.precedence import PRECEDENCE


def _number(x):
    return isinstance(x, sympy.Number)


def _float(x):
    return sympy.Float(float(x))


def _folded(fn, x):
    """fn(x) in float64 as sympy would hold it; an overflow folds to infinity (what the
    generated float64 code would compute), which the parser then refuses as a constant."""
    try:
        return _float(fn(float(x)))
    except OverflowError:
        return sympy.oo


class Sqrt(sympy.Function):
    nargs = 1

    @classmethod
    def eval(cls, x):
        if _number(x) and x >= 0:
            return _folded(math.sqrt, x)


class Abs(sympy.Function):
    nargs = 1

    @classmethod
    def eval(cls, x):
        if _number(x):
            return _folded(abs, x)


class Sign(sympy.Function):
    nargs = 1

    @classmethod
    def eval(cls, x):
        if _number(x):
            v = float(x)
            return sympy.Integer((v > 0) - (v < 0))


class Exp(sympy.Function):
    nargs = 1

    @classmethod
    def eval(cls, x):
        if _number(x):
            return _folded(math.exp, x)


class Log(sympy.Function):
    nargs = 1

    @classmethod
    def eval(cls, x):
        if _number(x) and x > 0:
            return _folded(math.log, x)


class Maximum(sympy.Function):
    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if _number(a) and _number(b):
            return a if a >= b else b


class Minimum(sympy.Function):
    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if _number(a) and _number(b):
            return a if a <= b else b


class Clip(sympy.Function):
    """clip(x, c) = min(max(x, -c), c); clip(x, lo, hi). A bound that is an
    optional hyperparameter set to None imposes no bound."""

    nargs = (2, 3)

    @classmethod
    def eval(cls, x, *bounds):
        if all(_number(a) for a in (x,) + bounds):
            lo, hi = (-bounds[0], bounds[0]) if len(bounds) == 1 else bounds
            return Minimum(Maximum(x, lo), hi)

    def bounds(self):
        """(lo, hi) as expressions; a 2-argument clip is symmetric."""
        if len(self.args) == 2:
            return -self.args[1], self.args[1]
        return self.args[1], self.args[2]


class Where(sympy.Function):
    """where(cond, a, b): a where cond holds, else b (element-wise for tensors)."""

    nargs = 3

    @classmethod
    def eval(cls, cond, a, b):
        if cond is sympy.true:
            return a
        if cond is sympy.false:
            return b
        if a == b:
            return a


class IsFinite(BooleanFunction):
    nargs = 1

    @classmethod
    def eval(cls, x):
        if _number(x):
            return sympy.true if math.isfinite(float(x)) else sympy.false


class IsNone(BooleanFunction):
    """`x is None` for an optional hyperparameter; decided when the rule is specialised."""

    nargs = 1


class Norm(sympy.Function):
    """L2 norm of a whole tensor: a reduction, computed in float32 or wider."""

    nargs = 1


# The docs print sums, maxima and minima as big operators (`\sum_k g_k`): as a factor of a
# product they are parenthesised, like sympy's own `Sum` (printers read `precedence`)
_BIG_OPERATOR = PRECEDENCE["Mul"]


class TensorSum(sympy.Function):
    """`sum(x)`: the sum of every element of a tensor, accumulated in double. (Not named
    `Sum`, `Max`, `Min`, `Dot`: sympy's printers have methods and precedences for those.)"""

    nargs = 1
    precedence = _BIG_OPERATOR


class SumOfProducts(sympy.Function):
    """`dot(a, b)`: the sum of every element of `a * b` (broadcast), accumulated in double;
    lowered as `sum(a * b)`, kept whole for the docs."""

    nargs = 2


class TensorMax(sympy.Function):
    """`max(x)`: the largest element of a tensor; NaN if any element is NaN."""

    nargs = 1
    precedence = _BIG_OPERATOR


class TensorMin(sympy.Function):
    """`min(x)`: the smallest element of a tensor; NaN if any element is NaN."""

    nargs = 1
    precedence = _BIG_OPERATOR


class RowMean(sympy.Function):
    """Mean over every axis but the first: shape (rows, 1)."""

    nargs = 1


class RowSum(sympy.Function):
    """Sum over every axis but the first (each row of a matrix view): shape (rows, 1)."""

    nargs = 1
    precedence = _BIG_OPERATOR


class RowMax(sympy.Function):
    """Largest element of each row: shape (rows, 1)."""

    nargs = 1
    precedence = _BIG_OPERATOR


class RowMin(sympy.Function):
    """Smallest element of each row: shape (rows, 1)."""

    nargs = 1
    precedence = _BIG_OPERATOR


class ColMean(sympy.Function):
    """Mean over each column of the matrix view: shape (1, cols)."""

    nargs = 1


class ColSum(sympy.Function):
    """Sum over each column of the matrix view: shape (1, cols)."""

    nargs = 1
    precedence = _BIG_OPERATOR


class ColMax(sympy.Function):
    """Largest element of each column of the matrix view: shape (1, cols)."""

    nargs = 1
    precedence = _BIG_OPERATOR


class ColMin(sympy.Function):
    """Smallest element of each column of the matrix view: shape (1, cols)."""

    nargs = 1
    precedence = _BIG_OPERATOR


# Reductions by what they reduce: a whole tensor (a device scalar), each row, each column
WHOLE_REDUCTIONS = (Norm, TensorSum, SumOfProducts, TensorMax, TensorMin)
ROW_REDUCTIONS = (RowMean, RowSum, RowMax, RowMin)
COL_REDUCTIONS = (ColMean, ColSum, ColMax, ColMin)
REDUCTION_FUNCTIONS = WHOLE_REDUCTIONS + ROW_REDUCTIONS + COL_REDUCTIONS


class Transpose(sympy.Function):
    """The transpose of each matrix of the view: (r, c) -> (c, r)."""

    nargs = 1


class MatMul(sympy.Function):
    """Matrix product per matrix of the view: (r, k), (k, c) -> (r, c). A function, never a
    sympy `Mul`, so that its factors are never reordered."""

    nargs = 2


class InverseRoot(sympy.Function):
    """`inverse_root(a, p)`: a^(-1/p) of each square symmetric matrix `a` of the view, through
    its eigendecomposition a = Q diag(w) Q^T: Q diag(sign(w) |w|^(-1/p)) Q^T (for a positive
    definite `a`, as Shampoo's preconditioners, the principal inverse p-th root; the same
    value as u diag(s^(-1/p)) v^T of its SVD)."""

    nargs = 2


class Eigh(sympy.Function):
    """`eigh(a)`: the eigenvectors (columns, orthonormal) of each square symmetric matrix `a`
    of the view, in ascending order of their eigenvalues (LAPACK's syevd, as numpy.linalg.eigh;
    the sign of each column is the library's)."""

    nargs = 1


class QR(sympy.Function):
    """`qr(a)`: the orthonormal factor Q of a = QR, per square matrix of the view (LAPACK's
    Householder QR, as numpy.linalg.qr: each column's sign is the library's). SOAP's power
    iteration refreshes its eigenbases with it."""

    nargs = 1


class Triu(sympy.Function):
    """`triu(a)`: the upper triangle of each square matrix `a` of the view, its diagonal
    included (the entries below it zero). PSGD keeps its Kronecker factors triangular with it."""

    nargs = 1


class Solve(sympy.Function):
    """`solve(a, b)`: a^-1 b, the solution x of a x = b per matrix of the view, `a` square:
    a triangular `a` by blocked substitution (products through the BLAS), any other by
    LAPACK's LU with partial pivoting (templates/numpy_solve.py.j2)."""

    nargs = 2


class SolveRight(sympy.Function):
    """`solve_right(b, a)`: b a^-1, the solution x of x a = b per matrix of the view, `a`
    square (computed as solve(a^T, b^T)^T)."""

    nargs = 2


class NormLowerBound(sympy.Function):
    """`norm_lower_bound(a)`: a lower bound of the spectral norm of each square matrix `a`,
    one value per matrix (Li's estimate, as PSGD normalises its step with it): with
    m = max|a_ij| and s = a / m, take the column (or row) of s of the largest norm, x = its
    product with s, and return m ||s^T x|| / ||x|| (||s x|| / ||x|| for the row): exact for a
    matrix of rank one, never above ||a||_2."""

    nargs = 1


class SortRows(sympy.Function):
    """`sort_rows(x, key)`: the rows of each matrix of `x` reordered by `key` (one value per
    row), largest first; equal keys keep their order (a stable sort)."""

    nargs = 2


class SortCols(sympy.Function):
    """`sort_cols(x, key)`: the columns of each matrix of `x` reordered by `key` (one value
    per column), largest first; equal keys keep their order (a stable sort)."""

    nargs = 2


class GroupSum(sympy.Function):
    """`group_sum(x)`: the sum over every parameter of the group of a per-tensor value `x`
    (a whole-tensor reduction or a per-tensor scalar), in float64; one host value per step."""

    nargs = 1
    precedence = _BIG_OPERATOR


class GroupMax(sympy.Function):
    """`group_max(x)`: the largest per-tensor value `x` over the group (NaN if any is NaN)."""

    nargs = 1
    precedence = _BIG_OPERATOR


class GroupMin(sympy.Function):
    """`group_min(x)`: the smallest per-tensor value `x` over the group (NaN if any is NaN)."""

    nargs = 1
    precedence = _BIG_OPERATOR


# Reductions over the parameters of a group, by the name the language gives them
GROUP_REDUCTIONS = (GroupSum, GroupMax, GroupMin)
GROUP_OPS = {GroupSum: "sum", GroupMax: "max", GroupMin: "min"}


# Functions that need the weight seen as a matrix
# Functions of a square matrix (a product such as matmul(g, transpose(g)) or a square state)
SQUARE_FUNCTIONS = (InverseRoot, Eigh, QR, Triu)
# Linear solves with a square matrix: the result has the shape of the other argument
SOLVES = (Solve, SolveRight)
# Reorderings of rows or columns by a key
SORTS = (SortRows, SortCols)
MATRIX_FUNCTIONS = COL_REDUCTIONS + (Transpose, MatMul, NormLowerBound) + SQUARE_FUNCTIONS + SOLVES + SORTS


class Normal(sympy.Function):
    """Gaussian noise normal(mean, std) of the weight's shape.

    The third argument numbers the call so that two draws are never merged by CSE."""

    nargs = 3


class StringLiteral(sympy.Symbol):
    """A string constant, only ever compared with an enum hyperparameter."""

    def __new__(cls, value):
        obj = super().__new__(cls, "'" + value + "'")
        obj.value = value
        return obj

    def __getnewargs__(self):
        return (self.value,)


# The language's function names -> (sympy class, allowed arities)
FUNCTIONS = {
    "sqrt": (Sqrt, (1,)),
    "abs": (Abs, (1,)),
    "sign": (Sign, (1,)),
    "exp": (Exp, (1,)),
    "log": (Log, (1,)),
    "maximum": (Maximum, (2,)),
    "minimum": (Minimum, (2,)),
    "clip": (Clip, (2, 3)),
    "where": (Where, (3,)),
    "isfinite": (IsFinite, (1,)),
    "norm": (Norm, (1,)),
    "sum": (TensorSum, (1,)),
    "dot": (SumOfProducts, (2,)),
    "max": (TensorMax, (1,)),
    "min": (TensorMin, (1,)),
    "row_mean": (RowMean, (1,)),
    "row_sum": (RowSum, (1,)),
    "row_max": (RowMax, (1,)),
    "row_min": (RowMin, (1,)),
    "col_mean": (ColMean, (1,)),
    "col_sum": (ColSum, (1,)),
    "col_max": (ColMax, (1,)),
    "col_min": (ColMin, (1,)),
    "transpose": (Transpose, (1,)),
    "matmul": (MatMul, (2,)),
    "inverse_root": (InverseRoot, (2,)),
    "eigh": (Eigh, (1,)),
    "qr": (QR, (1,)),
    "triu": (Triu, (1,)),
    "solve": (Solve, (2,)),
    "solve_right": (SolveRight, (2,)),
    "norm_lower_bound": (NormLowerBound, (1,)),
    "sort_rows": (SortRows, (2,)),
    "sort_cols": (SortCols, (2,)),
    "normal": (Normal, (2,)),
    "group_sum": (GroupSum, (1,)),
    "group_max": (GroupMax, (1,)),
    "group_min": (GroupMin, (1,)),
    "group_norm": (GroupSum, (1,)),     # sqrt(group_sum(sum(x * x))): see parser._call_group_norm
}
