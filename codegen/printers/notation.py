"""Mathematical notation shared by the documentation printers (LaTeX and MathML).

Two things a formula printer needs beyond sympy's defaults:

- names: every name of a rule gets one symbol (`beta1` -> beta_1, `grad` -> g,
  `lr` -> eta, `exp_avg` -> an upright word). Two names never share a symbol:
  a name whose preferred symbol is taken falls back to its upright word.
- order: sympy stores sums and products in a canonical order (`grad*(1 - rho) +
  mean*rho`); a paper writes the previous value first and scalars before tensors
  (`rho*mean + (1 - rho)*grad`). `ordered_terms` and `split_product` give the
  printers that order; they never change the expression's value.
"""
import re
from dataclasses import dataclass

import sympy

GREEK = {
    "alpha": ("\\alpha", "α"), "beta": ("\\beta", "β"), "gamma": ("\\gamma", "γ"),
    "delta": ("\\delta", "δ"), "epsilon": ("\\epsilon", "ε"), "eps": ("\\epsilon", "ε"),
    "zeta": ("\\zeta", "ζ"), "eta": ("\\eta", "η"), "theta": ("\\theta", "θ"),
    "kappa": ("\\kappa", "κ"), "lamda": ("\\lambda", "λ"), "lambda": ("\\lambda", "λ"),
    "mu": ("\\mu", "μ"), "nu": ("\\nu", "ν"), "xi": ("\\xi", "ξ"), "rho": ("\\rho", "ρ"),
    "sigma": ("\\sigma", "σ"), "tau": ("\\tau", "τ"), "phi": ("\\phi", "φ"), "psi": ("\\psi", "ψ"),
    "omega": ("\\omega", "ω"),
}

# The built-in inputs, as papers write them; each falls back to its word on a clash.
BUILTIN_SYMBOLS = {
    "weight": ("w", None), "grad": ("g", None), "lr": ("eta", None), "initial_lr": ("eta", "0"),
    "wd": ("lamda", None),
    "t": ("t", None), "rescale_grad": ("r", None), "clip_gradient": ("c", None),
    "ndim": ("ndim", None), "numel": ("numel", None), "rows": ("rows", None), "cols": ("cols", None),
    "machine_epsilon": ("machine_epsilon", None),
}
BUILTIN_MEANINGS = {
    "weight": "the parameter", "grad": "the gradient",
    "lr": "the learning rate (scheduler and lr_mult applied)",
    "initial_lr": "the learning rate the optimizer started with (lr_mult applied)",
    "wd": "the weight decay (wd_mult applied)", "t": "the update count of this parameter",
    "rescale_grad": "the gradient scale", "clip_gradient": "the gradient clipping bound (None: no clipping)",
    "ndim": "the parameter's number of axes", "numel": "the parameter's number of elements",
    "rows": "rows of the parameter's matrix view", "cols": "columns of the parameter's matrix view",
    "machine_epsilon": "the machine epsilon of the weight's dtype",
}

_SPLIT = re.compile(r"^([A-Za-z]+?)(?:(\d+)|_([A-Za-z0-9]+))?$")


@dataclass(frozen=True)
class Glyph:
    """How one name is written: a base (greek, a letter or an upright word) and a subscript."""

    base: str
    sub: str | None = None

    @property
    def is_word(self):
        return self.base not in GREEK and len(self.base) > 1

    def key(self):
        return (GREEK.get(self.base, (self.base,))[0], self.sub)


def natural_glyph(name):
    """`beta1` -> beta_1, `mu_t` -> mu_t, `d_t` -> d_t, `exp_avg` -> the word exp_avg;
    `betas_1` (element 1 of a list `betas`) -> beta_1."""
    match = _SPLIT.match(name)
    if match:
        base, digits, suffix = match.groups()
        sub = digits or suffix
        if base in GREEK or (len(base) == 1 and (sub is None or len(sub) == 1 or sub.isdigit())):
            return Glyph(base, sub)
        if base.endswith("s") and base[:-1] in GREEK and sub is not None and sub.isdigit():
            return Glyph(base[:-1], sub)
    return Glyph(name)


def glyph_table(names):
    """{name: Glyph} for every name of a rule, no two alike (builtins yield on a clash)."""
    names = sorted(set(names))
    table, taken = {}, set()
    for name in (n for n in names if n not in BUILTIN_SYMBOLS):
        glyph = natural_glyph(name)
        if glyph.key() in taken:
            glyph = Glyph(name)
        table[name] = glyph
        taken.add(glyph.key())
    for name in (n for n in names if n in BUILTIN_SYMBOLS):
        glyph = Glyph(*BUILTIN_SYMBOLS[name])
        if glyph.key() in taken:
            glyph = Glyph(name)
        table[name] = glyph
        taken.add(glyph.key())
    return table


def rule_names(rule):
    """Every name a rule's formulas can show."""
    from ..ir import BUILTINS, Assign, walk
    names = set(BUILTINS) | {hp.name for hp in rule.hyperparameters} | {st.name for st in rule.states}
    return names | {stmt.target for stmt in walk(rule.statements) if isinstance(stmt, Assign)}


def tensor_names(rule):
    """Names that hold tensors somewhere in the rule (weight, grad, tensor states and locals)."""
    from ..ir import HOST, Assign, walk
    names = {"weight", "grad"} | {st.name for st in rule.states if st.kind != HOST}
    return names | {stmt.target for stmt in walk(rule.statements)
                    if isinstance(stmt, Assign) and stmt.kind != HOST}


class FormulaOrder:
    """Mixin for printers: the order a paper writes sums and products in.

    Settings used: `lead` (the name being assigned: its previous value comes first)
    and `tensors` (names holding tensors: scalars are written before them)."""

    def _mentions_lead(self, expr):
        lead = self._settings.get("lead")
        return lead is not None and sympy.Symbol(lead) in expr.free_symbols

    def _is_tensor(self, expr):
        tensors = self._settings.get("tensors") or ()
        return any(s.name in tensors for s in expr.free_symbols)

    def ordered_terms(self, expr):
        """The terms of a sum: the previous value first, positive before negative terms,
        tensors, then scalars, then numbers; sympy's order breaks ties."""
        def key(term):
            rank = 2 if term.is_Number else 0 if self._is_tensor(term) else 1
            return (not self._mentions_lead(term), term.could_extract_minus_sign(), rank)
        return sorted(expr.args, key=key)

    def split_product(self, expr):
        """(negative, numerator factors, denominator factors) of a product, numbers
        first, then scalars, then tensors."""
        negative = expr.could_extract_minus_sign()
        if negative:
            expr = -expr
        numer, denom = [], []
        for factor in (expr.args if isinstance(expr, sympy.Mul) else (expr,)):
            if factor.is_Rational and factor.q != 1:
                if factor.p != 1:
                    numer.append(sympy.Integer(factor.p))
                denom.append(sympy.Integer(factor.q))
            elif factor.is_Pow and factor.exp.is_Number and factor.exp.is_negative:
                base = factor.base if factor.exp == -1 else sympy.Pow(factor.base, -factor.exp)
                denom.append(base)
            else:
                numer.append(factor)

        def key(factor):
            rank = 0 if factor.is_Number else 2 if self._is_tensor(factor) else 1
            return (rank, not self._mentions_lead(factor))
        return negative, sorted(numer, key=key), sorted(denom, key=key)
