"""A rule's statements as formulas: one line per assignment, `if`/`else` headers,
rendered from the parsed IR by the LaTeX and MathML printers.

Used by the docs emitter (pages) and by the metadata (`SPEC["formulas"]`, which the
runtime puts in class docstrings without needing sympy).
"""
from dataclasses import dataclass

import sympy

from .ir import Assign, If, Loop, walk
from .printers.latex import FormulaLatexPrinter
from .printers.mathml import FormulaMathMLPrinter
from .printers.notation import glyph_table, rule_names, tensor_names


@dataclass(frozen=True)
class Line:
    depth: int        # nesting inside if blocks
    kind: str         # "assign" | "if" | "else"
    latex: str
    mathml: str       # a <mrow> (no <math> wrapper)
    text: str         # the spec's own text of the statement or condition


class Formulas:
    """Printers configured for one rule (shared names, tensor names)."""

    def __init__(self, rule):
        self.rule = rule
        self.glyphs = glyph_table(rule_names(rule))
        self.tensors = frozenset(tensor_names(rule))

    def _settings(self, lead=None):
        return {"glyphs": self.glyphs, "tensors": self.tensors, "lead": lead}

    def latex(self, expr, lead=None):
        return FormulaLatexPrinter(self._settings(lead)).doprint(expr)

    def mathml(self, expr, lead=None):
        printer = FormulaMathMLPrinter(self._settings(lead))
        return printer._print(expr).toxml()

    def symbol_latex(self, name):
        return self.latex(sympy.Symbol(name))

    def symbol_mathml(self, name):
        return self.mathml(sympy.Symbol(name))

    def assignment(self, target, expr):
        """(latex, mathml) of `target <- expr`."""
        latex = f"{self.symbol_latex(target)} \\leftarrow {self.latex(expr, lead=target)}"
        printer = FormulaMathMLPrinter(self._settings(target))
        return latex, printer.assignment(sympy.Symbol(target), expr).toxml()

    def lines(self, statements=None, depth=0):
        out = []
        for stmt in self.rule.statements if statements is None else statements:
            if isinstance(stmt, Assign):
                latex, mathml = self.assignment(stmt.target, stmt.expr)
                out.append(Line(depth, "assign", latex, mathml, stmt.text))
            elif isinstance(stmt, If):
                cond_latex = self.latex(stmt.cond)
                cond_mathml = self.mathml(stmt.cond)
                out.append(Line(depth, "if", f"\\textbf{{if}}\\ {cond_latex}:", cond_mathml, stmt.text))
                out.extend(self.lines(stmt.body, depth + 1))
                if stmt.orelse:
                    out.append(Line(depth, "else", "\\textbf{else}:", "", "else"))
                    out.extend(self.lines(stmt.orelse, depth + 1))
            elif isinstance(stmt, Loop):
                count = sympy.Integer(stmt.count) if isinstance(stmt.count, int) else sympy.Symbol(stmt.count)
                out.append(Line(depth, "loop", f"\\textbf{{repeat}}\\ {self.latex(count)}\\ \\textbf{{times}}:",
                                self.mathml(count), stmt.text))
                out.extend(self.lines(stmt.body, depth + 1))
        return out


def latex_lines(rule):
    """The rule as LaTeX lines, nested lines indented with \\quad (for docstrings)."""
    return ["\\quad " * line.depth + line.latex for line in Formulas(rule).lines()]


def used_names(rule):
    """Every name the update's statements read or assign (conditions included)."""
    used = set()
    for stmt in walk(rule.statements):
        if not isinstance(stmt, (Assign, If)):
            continue   # a loop: its body's statements follow
        expr = stmt.expr if isinstance(stmt, Assign) else stmt.cond
        used |= {s.name for s in expr.free_symbols}
        if isinstance(stmt, Assign):
            used.add(stmt.target)
    return used


def symbol_legend(rule):
    """[[latex, name]] for every name the formulas use and write other than as itself."""
    formulas = Formulas(rule)
    used = used_names(rule)
    out = []
    for name in sorted(n for n in formulas.glyphs if n in used):
        latex = formulas.symbol_latex(name)
        if latex != name and latex != "\\mathrm{" + name.replace("_", "\\_") + "}":
            out.append([latex, name])
    return out
