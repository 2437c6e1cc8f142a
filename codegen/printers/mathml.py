"""Presentation MathML of a rule's formulas, for the static HTML docs.

Browsers render MathML natively, so the HTML pages need no script, font or CDN.
`FormulaMathMLPrinter` is sympy's `MathMLPresentationPrinter` with the spec
language's functions, the names of `notation.glyph_table` and a paper's order of
terms; it emits only MathML Core elements (no `mfenced`, no `menclose`).
"""
import html
from xml.dom.minidom import Text

from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE, precedence_traditional

from ..escaping import visible
from ..functions import Abs
from .notation import GREEK, FormulaOrder, Glyph


class _EscapedText(Text):
    """A text node written escaped for HTML (`v < 0` as `v &lt; 0`). sympy's printer makes
    its text nodes write their data raw, so that its own entities (`&#x2062;`) pass through;
    this printer's text is plain characters and must be escaped where it is written."""

    def writexml(self, writer, indent="", addindent="", newl=""):
        writer.write(indent + html.escape(self.data, quote=False) + newl)


class FormulaMathMLPrinter(FormulaOrder, MathMLPresentationPrinter):
    """Settings: `glyphs` ({name: Glyph}), `lead` and `tensors` (see FormulaOrder)."""

    _default_settings = dict(MathMLPresentationPrinter._default_settings, glyphs=None, lead=None,
                             tensors=None)

    # -- elements ----------------------------------------------------------------
    def el(self, tag, *children, text=None, **attrs):
        """Every text node of this printer is made here, as an `_EscapedText`; attribute
        values are escaped by minidom itself."""
        node = self.dom.createElement(tag)
        for name, value in attrs.items():
            node.setAttribute(name, value)
        if text is not None:
            leaf = _EscapedText()
            leaf.data, leaf.ownerDocument = text, self.dom
            node.appendChild(leaf)
        for child in children:
            node.appendChild(child)
        return node

    def mo(self, text, **attrs):
        return self.el("mo", text=text, **attrs)

    def row(self, *children):
        return self.el("mrow", *children)

    def fenced(self, inner, left="(", right=")"):
        return self.row(self.mo(left, stretchy="true"), inner, self.mo(right, stretchy="true"))

    def parenthesize(self, item, level, strict=False):
        prec = precedence_traditional(item)
        if prec < level or (not strict and prec <= level):
            return self.fenced(self._print(item))
        return self._print(item)

    # -- names and numbers ---------------------------------------------------------
    def glyph(self, glyph):
        base = GREEK[glyph.base][1] if glyph.base in GREEK else glyph.base
        mi = self.el("mi", text=base)
        if glyph.sub is None:
            return mi
        sub = self.el("mn" if glyph.sub.isdigit() else "mi", text=glyph.sub)
        return self.el("msub", mi, sub)

    def _print_Symbol(self, sym, style="plain"):
        glyphs = self._settings["glyphs"] or {}
        return self.glyph(glyphs.get(sym.name, Glyph(sym.name)))

    def _print_StringLiteral(self, expr):
        return self.el("mtext", text="“" + visible(expr.value) + "”")   # el escapes it

    def _print_Float(self, expr):
        text = repr(float(expr))
        if "e" not in text:
            return self.el("mn", text=text)
        mantissa, exponent = text.split("e")
        power = self.el("msup", self.el("mn", text="10"), self.el("mn", text=str(int(exponent))))
        if mantissa == "1.0":
            return power
        return self.row(self.el("mn", text=mantissa), self.mo("·"), power)

    def _print_Integer(self, expr):
        return self.el("mn", text=str(int(expr)))

    # -- sums and products in a paper's order -------------------------------------
    def _print_Add(self, expr, order=None):
        out = self.row()
        for i, term in enumerate(self.ordered_terms(expr)):
            if term.could_extract_minus_sign():
                out.appendChild(self.mo("−"))
                term = -term
            elif i:
                out.appendChild(self.mo("+"))
            out.appendChild(self.parenthesize(term, PRECEDENCE["Add"], strict=True))
        return out

    def _print_Mul(self, expr):
        negative, numer, denom = self.split_product(expr)
        body = self._product(numer)
        if denom:
            body = self.el("mfrac", body, self._product(denom))
        return self.row(self.mo("−"), body) if negative else body

    def _product(self, factors):
        if not factors:
            return self.el("mn", text="1")
        if len(factors) == 1:   # a whole numerator or denominator needs no parentheses
            return self._print(factors[0])
        out = self.row()
        for i, factor in enumerate(factors):
            if i:
                both_numbers = factors[i - 1].is_Number and factor.is_Number
                # invisible times, with a thin space so that words (momentum mom) stay apart
                out.appendChild(self.mo("·") if both_numbers else self.mo("\u2062", lspace="0.15em"))
            out.appendChild(self.parenthesize(factor, PRECEDENCE["Mul"], strict=False))
        return out

    def _print_Pow(self, expr):
        return self.el("msup", self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=False),
                       self._print(expr.exp))

    def _print_Relational(self, expr):
        ops = {"==": "=", "!=": "≠", ">=": "≥", "<=": "≤", ">": ">", "<": "<"}
        return self.row(self._print(expr.lhs), self.mo(ops[expr.rel_op]), self._print(expr.rhs))

    # -- the language's functions ------------------------------------------------
    def _call(self, name, *args):
        inner = self.row()
        for i, arg in enumerate(args):
            if i:
                inner.appendChild(self.mo(",", separator="true"))
            inner.appendChild(self._print(arg))
        return self.row(self.el("mi", text=name), self.mo("\u2061"), self.fenced(inner))

    def _print_Sqrt(self, expr):
        return self.el("msqrt", self._print(expr.args[0]))

    def _print_Abs(self, expr, exp=None):
        return self.fenced(self._print(expr.args[0]), "|", "|")

    def _print_Sign(self, expr):
        return self._call("sign", *expr.args)

    def _print_Exp(self, expr):
        return self.el("msup", self.el("mi", text="e"), self._print(expr.args[0]))

    def _print_Log(self, expr):
        return self._call("log", *expr.args)

    def _print_Maximum(self, expr):
        return self._call("max", *expr.args)

    def _print_Minimum(self, expr):
        return self._call("min", *expr.args)

    def _print_Clip(self, expr):
        return self._call("clip", *expr.args)

    def _print_Where(self, expr):
        cond, a, b = expr.args
        table = self.el(
            "mtable",
            self.el("mtr", self.el("mtd", self._print(a)),
                    self.el("mtd", self.row(self.el("mtext", text="if\u00a0"), self._print(cond)))),
            self.el("mtr", self.el("mtd", self._print(b)), self.el("mtd", self.el("mtext", text="otherwise"))),
        )
        return self.row(self.mo("{", stretchy="true"), table)

    def _print_Norm(self, expr):
        norm = self.fenced(self._print(expr.args[0]), "‖", "‖")
        return self.el("msub", norm, self.el("mn", text="2"))

    def _print_RowMean(self, expr):
        return self._call("row_mean", *expr.args)

    def _print_ColMean(self, expr):
        return self._call("col_mean", *expr.args)

    # Sums, maxima and minima by index, as the LaTeX printer writes them: over every element
    # k of a tensor, over the columns j of each row i, over the rows i of each column j
    def _indexed(self, arg, index):
        base = self._print(arg) if arg.is_Symbol or isinstance(arg, Abs) else self.fenced(self._print(arg))
        return self.el("msub", base, self.el("mi", text=index))

    def _reduction(self, operator, expr, over, index):
        head = self.mo(operator, largeop="true") if operator == "∑" else self.el("mi", text=operator)
        return self.row(self.el("munder", head, self.el("mi", text=over)), self._indexed(expr.args[0], index))

    def _print_TensorSum(self, expr):
        return self._reduction("∑", expr, "k", "k")

    def _print_TensorMax(self, expr):
        return self._reduction("max", expr, "k", "k")

    def _print_TensorMin(self, expr):
        return self._reduction("min", expr, "k", "k")

    # group reductions: over the parameters θ of the param group 𝒢
    def _group_reduction(self, operator, expr):
        head = self.mo(operator, largeop="true") if operator == "∑" else self.el("mi", text=operator)
        over = self.row(self.el("mi", text="θ"), self.mo("∈"), self.el("mi", text="𝒢"))
        return self.row(self.el("munder", head, over), self._indexed(expr.args[0], "θ"))

    def _print_GroupSum(self, expr):
        return self._group_reduction("∑", expr)

    def _print_GroupMax(self, expr):
        return self._group_reduction("max", expr)

    def _print_GroupMin(self, expr):
        return self._group_reduction("min", expr)

    def _print_SumOfProducts(self, expr):
        a, b = (self._print(arg) for arg in expr.args)
        return self.fenced(self.row(a, self.mo(",", separator="true"), b), "⟨", "⟩")

    def _print_RowSum(self, expr):
        return self._reduction("∑", expr, "j", "ij")

    def _print_RowMax(self, expr):
        return self._reduction("max", expr, "j", "ij")

    def _print_RowMin(self, expr):
        return self._reduction("min", expr, "j", "ij")

    def _print_ColSum(self, expr):
        return self._reduction("∑", expr, "i", "ij")

    def _print_ColMax(self, expr):
        return self._reduction("max", expr, "i", "ij")

    def _print_ColMin(self, expr):
        return self._reduction("min", expr, "i", "ij")

    def _factor(self, arg):
        """A factor of a matrix product or the base of a transpose: parenthesised unless a
        name, a call or another product."""
        if arg.is_Symbol or arg.is_Function:
            return self._print(arg)
        return self.fenced(self._print(arg))

    def _print_Transpose(self, expr):
        return self.el("msup", self._factor(expr.args[0]), self.el("mi", text="⊤"))

    def _print_MatMul(self, expr):
        # juxtaposition, with an invisible times between the factors
        return self.row(self._factor(expr.args[0]), self.mo("\u2062"), self._factor(expr.args[1]))

    def _print_InverseRoot(self, expr):
        base, root = expr.args
        exponent = self.row(self.mo("−"), self.el("mn", text="1"), self.mo("/"), self._factor(root))
        return self.el("msup", self._factor(base), exponent)

    def _print_Eigh(self, expr):
        return self._call("eigvecs", expr.args[0])

    def _print_QR(self, expr):
        return self._call("qr", expr.args[0])

    def _print_Triu(self, expr):
        return self._call("triu", expr.args[0])

    def _inverse(self, a):
        return self.el("msup", self._factor(a), self.row(self.mo("−"), self.el("mn", text="1")))

    def _print_Solve(self, expr):
        a, b = expr.args
        return self.row(self._inverse(a), self.mo("\u2062"), self._factor(b))

    def _print_SolveRight(self, expr):
        b, a = expr.args
        return self.row(self._factor(b), self.mo("\u2062"), self._inverse(a))

    def _print_NormLowerBound(self, expr):
        # the spectral norm, underlined: the estimate bounds it from below
        norm = self.el("munder", self.fenced(self._print(expr.args[0]), "‖", "‖"), self.mo("_"))
        return self.el("msub", norm, self.el("mn", text="2"))

    def _print_SortRows(self, expr):
        return self._call("sort_rows", *expr.args)

    def _print_SortCols(self, expr):
        return self._call("sort_cols", *expr.args)

    def _print_Normal(self, expr):
        mean, std = expr.args[:2]
        std = self._print(std) if std.is_Symbol or std.is_Number else self.fenced(self._print(std))
        variance = self.el("msup", std, self.el("mn", text="2"))
        return self.row(self.el("mi", text="𝒩"), self.fenced(self.row(self._print(mean), self.mo(","), variance)))

    def _print_IsFinite(self, expr):
        return self._call("isfinite", *expr.args)

    def _print_IsNone(self, expr):
        return self.row(self._print(expr.args[0]), self.mo("="), self.el("mtext", text="None"))

    def _print_Not(self, expr):
        from ..functions import IsNone
        if isinstance(expr.args[0], IsNone):
            return self.row(self._print(expr.args[0].args[0]), self.mo("≠"), self.el("mtext", text="None"))
        return self.row(self.el("mtext", text="not\u00a0"), self.parenthesize(expr.args[0], PRECEDENCE["Not"]))

    def _logic(self, expr, word, level):
        out = self.row()
        for i, arg in enumerate(expr.args):
            if i:
                out.appendChild(self.el("mtext", text=f"\u00a0{word}\u00a0"))
            out.appendChild(self.parenthesize(arg, level))
        return out

    def _print_And(self, expr):
        return self._logic(expr, "and", PRECEDENCE["And"])

    def _print_Or(self, expr):
        return self._logic(expr, "or", PRECEDENCE["Or"])

    def _print_BooleanTrue(self, expr):
        return self.el("mtext", text="true")

    def _print_BooleanFalse(self, expr):
        return self.el("mtext", text="false")

    # -- a whole statement ---------------------------------------------------------
    def assignment(self, target, expr):
        """`target ← expr` as one <mrow> node."""
        return self.row(self._print(target), self.mo("←"), self._print(expr))
