"""LaTeX of a rule's formulas, for the generated docs pages and the class docstrings.

`FormulaLatexPrinter` is sympy's `LatexPrinter` with the spec language's functions
(`Clip`, `Where`, `Sqrt`, `Norm`, ...) written as a paper writes them, names
written with `notation.glyph_table`, and sums and products in a paper's order.
"""
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from .notation import GREEK, FormulaOrder, Glyph
from ..escaping import latex_text
from ..functions import Abs


class FormulaLatexPrinter(FormulaOrder, LatexPrinter):
    """Settings: `glyphs` ({name: Glyph}), `lead` and `tensors` (see FormulaOrder)."""

    _default_settings = dict(LatexPrinter._default_settings, glyphs=None, lead=None, tensors=None)

    # -- names and numbers ------------------------------------------------------
    def glyph(self, glyph):
        base = GREEK[glyph.base][0] if glyph.base in GREEK else \
            glyph.base if len(glyph.base) == 1 else "\\mathrm{" + glyph.base.replace("_", "\\_") + "}"
        if glyph.sub is None:
            return base
        sub = glyph.sub if len(glyph.sub) == 1 or glyph.sub.isdigit() else "\\mathrm{" + glyph.sub + "}"
        return f"{base}_{{{sub}}}"

    def _print_Symbol(self, expr, style="plain"):
        glyphs = self._settings["glyphs"] or {}
        return self.glyph(glyphs.get(expr.name, Glyph(expr.name)))

    def _print_StringLiteral(self, expr):
        return "\\text{``" + latex_text(expr.value) + "''}"

    def _print_Float(self, expr):
        text = repr(float(expr))
        if "e" in text:
            mantissa, exponent = text.split("e")
            exponent = str(int(exponent))
            return f"10^{{{exponent}}}" if mantissa == "1.0" else f"{mantissa} \\cdot 10^{{{exponent}}}"
        return text

    # -- sums and products in a paper's order -------------------------------------
    def _print_Add(self, expr, order=None):
        out = ""
        for i, term in enumerate(self.ordered_terms(expr)):
            if term.could_extract_minus_sign():
                out += " - " if i else "-"
                term = -term
            elif i:
                out += " + "
            out += self.parenthesize(term, PRECEDENCE["Add"], strict=True)
        return out

    def _print_Mul(self, expr):
        negative, numer, denom = self.split_product(expr)
        top = self._product(numer)
        text = f"\\frac{{{top}}}{{{self._product(denom)}}}" if denom else top
        return "-" + text if negative else text

    def _product(self, factors):
        if not factors:
            return "1"
        if len(factors) == 1:   # a whole numerator or denominator needs no parentheses
            return self._print(factors[0])
        parts = [self.parenthesize(f, PRECEDENCE["Mul"], strict=False) for f in factors]
        out = parts[0]
        for prev, part in zip(factors, parts[1:]):
            # a thin space keeps words apart (\mathrm{momentum}\,\mathrm{mom})
            out += " \\cdot " if prev.is_Number and part[:1].isdigit() else " \\, "
            out += part
        return out

    def _print_Pow(self, expr):
        base = self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=False)
        if expr.base.is_Symbol and "_" in base:   # beta_{2}^{t}, not beta_{2^t}
            base = "{" + base + "}"
        return f"{base}^{{{self._print(expr.exp)}}}"

    # -- the language's functions ------------------------------------------------
    def _call(self, name, *args, operator=None):
        head = operator or f"\\operatorname{{{name}}}"
        return f"{head}\\left({', '.join(self._print(a) for a in args)}\\right)"

    def _print_Sqrt(self, expr):
        return f"\\sqrt{{{self._print(expr.args[0])}}}"

    def _print_Abs(self, expr, exp=None):
        return f"\\left|{self._print(expr.args[0])}\\right|"

    def _print_Sign(self, expr, exp=None):
        return self._call("sign", *expr.args)

    def _print_Exp(self, expr, exp=None):
        return f"e^{{{self._print(expr.args[0])}}}"

    def _print_Log(self, expr, exp=None):
        return f"\\log\\left({self._print(expr.args[0])}\\right)"

    def _print_Maximum(self, expr, exp=None):
        return self._call("max", *expr.args, operator="\\max")

    def _print_Minimum(self, expr, exp=None):
        return self._call("min", *expr.args, operator="\\min")

    def _print_Clip(self, expr, exp=None):
        return self._call("clip", *expr.args)

    def _print_Where(self, expr, exp=None):
        cond, a, b = (self._print(arg) for arg in expr.args)
        return f"\\begin{{cases}} {a} & \\text{{if }} {cond} \\\\ {b} & \\text{{otherwise}} \\end{{cases}}"

    def _print_Norm(self, expr, exp=None):
        return f"\\left\\lVert {self._print(expr.args[0])} \\right\\rVert_{{2}}"

    def _print_RowMean(self, expr, exp=None):
        return self._call("row\\_mean", *expr.args)

    def _print_ColMean(self, expr, exp=None):
        return self._call("col\\_mean", *expr.args)

    # Sums, maxima and minima by index: over every element k of a tensor, over the columns j
    # of each row i (a value per row), over the rows i of each column j (a value per column)
    def _indexed(self, arg, index):
        """A name braced with the index as subscript (the name may carry a subscript of its
        own), anything else parenthesised."""
        text = self._print(arg)
        if arg.is_Symbol or isinstance(arg, Abs):   # |x| is delimited already
            return f"{{{text}}}_{{{index}}}"
        return f"\\left({text}\\right)_{{{index}}}"

    def _reduction(self, operator, expr, over, index):
        return f"{operator}_{{{over}}} {self._indexed(expr.args[0], index)}"

    def _print_TensorSum(self, expr, exp=None):
        return self._reduction("\\sum", expr, "k", "k")

    def _print_TensorMax(self, expr, exp=None):
        return self._reduction("\\max", expr, "k", "k")

    def _print_TensorMin(self, expr, exp=None):
        return self._reduction("\\min", expr, "k", "k")

    # group reductions: over the parameters theta of the param group G
    def _print_GroupSum(self, expr, exp=None):
        return self._reduction("\\sum", expr, "\\theta \\in \\mathcal{G}", "\\theta")

    def _print_GroupMax(self, expr, exp=None):
        return self._reduction("\\max", expr, "\\theta \\in \\mathcal{G}", "\\theta")

    def _print_GroupMin(self, expr, exp=None):
        return self._reduction("\\min", expr, "\\theta \\in \\mathcal{G}", "\\theta")

    def _print_SumOfProducts(self, expr, exp=None):
        a, b = (self._print(arg) for arg in expr.args)
        return f"\\left\\langle {a}, {b} \\right\\rangle"

    def _print_RowSum(self, expr, exp=None):
        return self._reduction("\\sum", expr, "j", "ij")

    def _print_RowMax(self, expr, exp=None):
        return self._reduction("\\max", expr, "j", "ij")

    def _print_RowMin(self, expr, exp=None):
        return self._reduction("\\min", expr, "j", "ij")

    def _print_ColSum(self, expr, exp=None):
        return self._reduction("\\sum", expr, "i", "ij")

    def _print_ColMax(self, expr, exp=None):
        return self._reduction("\\max", expr, "i", "ij")

    def _print_ColMin(self, expr, exp=None):
        return self._reduction("\\min", expr, "i", "ij")

    def _factor(self, arg):
        """A factor of a matrix product or the base of a transpose: parenthesised unless a
        name, a call or another product."""
        text = self._print(arg)
        if arg.is_Symbol or arg.is_Function:
            return text
        return f"\\left({text}\\right)"

    def _print_Transpose(self, expr, exp=None):
        base = self._factor(expr.args[0])
        return f"{{{base}}}^{{\\top}}"

    def _print_MatMul(self, expr, exp=None):
        return f"{self._factor(expr.args[0])} \\, {self._factor(expr.args[1])}"

    def _print_InverseRoot(self, expr, exp=None):
        base, root = expr.args
        return f"{{{self._factor(base)}}}^{{-1/{self._factor(root)}}}"

    def _print_Eigh(self, expr, exp=None):
        return self._call("eigvecs", expr.args[0])

    def _print_QR(self, expr, exp=None):
        return self._call("qr", expr.args[0])

    def _print_Triu(self, expr, exp=None):
        return self._call("triu", expr.args[0])

    def _print_Solve(self, expr, exp=None):
        a, b = expr.args
        return f"{{{self._factor(a)}}}^{{-1}} \\, {self._factor(b)}"

    def _print_SolveRight(self, expr, exp=None):
        b, a = expr.args
        return f"{self._factor(b)} \\, {{{self._factor(a)}}}^{{-1}}"

    def _print_NormLowerBound(self, expr, exp=None):
        # the spectral norm, underlined: the estimate bounds it from below
        return f"\\underline{{\\left\\lVert {self._print(expr.args[0])} \\right\\rVert}}_{{2}}"

    def _print_SortRows(self, expr, exp=None):
        return self._call("sort\\_rows", *expr.args)

    def _print_SortCols(self, expr, exp=None):
        return self._call("sort\\_cols", *expr.args)

    def _print_Normal(self, expr, exp=None):
        mean, std = expr.args[:2]
        std = self._print(std) if std.is_Symbol or std.is_Number else f"\\left({self._print(std)}\\right)"
        return f"\\mathcal{{N}}\\left({self._print(mean)}, {std}^{{2}}\\right)"

    def _print_IsFinite(self, expr):
        return self._call("isfinite", *expr.args)

    def _print_IsNone(self, expr):
        return f"{self._print(expr.args[0])} = \\text{{None}}"

    def _print_Not(self, expr):
        from ..functions import IsNone
        if isinstance(expr.args[0], IsNone):
            return f"{self._print(expr.args[0].args[0])} \\neq \\text{{None}}"
        return f"\\text{{not }} {self.parenthesize(expr.args[0], PRECEDENCE['Not'])}"

    def _print_And(self, expr):
        return " \\text{ and } ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in expr.args)

    def _print_Or(self, expr):
        return " \\text{ or } ".join(self.parenthesize(a, PRECEDENCE["Or"]) for a in expr.args)

    def _print_BooleanTrue(self, expr):
        return "\\text{true}"

    def _print_BooleanFalse(self, expr):
        return "\\text{false}"
