"""Analysis: from a parsed `Rule` to straight-line programs, one per variant.

1. Variants. Every `if` condition, state `when` and host-side `where` condition
   inside tensor code is split into atoms (`momentum == 0`, `centered`,
   `clip_weights is None`, ...). Each assignment of truths to the atoms is a
   variant; specialising the rule for it removes every branch (bool, enum and
   None hyperparameters are decided once per step, never per element).
2. SSA. Statements run in order; a rebinding replaces the name. Host statements
   (no tensor read) stay as named float64 scalars; tensor statements are inlined
   into the expressions of the outputs (weight and states).
3. Hoisting. Every maximal host subexpression of the tensor expressions becomes
   a host scalar (`1 - beta1`, `lr * wd`, ...), computed once per step per
   parameter and passed to the element-wise code.
4. Stages. A reduction (`norm`) splits the tensor work into passes; see
   `stages.py`. Common subexpressions and small integer powers are handled when
   the tensor expressions are lowered to three-address code (`tac.py`).
"""
import dataclasses
import itertools
import re
from dataclasses import dataclass, field

import sympy
from sympy.core.parameters import distribute

from . import group_stage
from .errors import SpecError
from .functions import (COL_REDUCTIONS, ROW_REDUCTIONS, SOLVES, SQUARE_FUNCTIONS, WHOLE_REDUCTIONS, Clip, IsNone, MatMul,
                        Normal, NormLowerBound, StringLiteral, Transpose, Where)
from .ir import BUILTINS, COLS, DEVICE, HOST, ROWS, TENSOR, If, Loop, join_kinds

_COMPLEMENT = {sympy.Ne: sympy.Eq, sympy.Lt: sympy.Ge, sympy.Le: sympy.Gt}
_LOGIC = (sympy.And, sympy.Or, sympy.Not, sympy.Xor, sympy.Equivalent)


@dataclass
class Variant:
    """One specialisation of a rule: straight-line host code and tensor code."""

    key: tuple                    # truth of each condition atom, in `Analysis.atoms` order
    name: str                     # identifier-safe description, e.g. "momentum_ne_0"
    description: str              # e.g. "momentum != 0"
    states: tuple                 # names of the states that exist in this variant
    host: list                    # [(Symbol, expr)] float64 host statements, in order
    tensor: list                  # [(Symbol, expr)] tensor statements, in order (SSA)
    outputs: dict                 # weight / tensor state name -> final value (symbol or number)
    scalar_outputs: dict          # scalar state name -> host Symbol holding its new value
    kinds: dict = field(default_factory=dict)   # symbol name -> kind, for every input and local

    def host_inputs(self):
        """Names the host code reads from the runtime (hyperparameters, lr, t, ...)."""
        defined = {s.name for s, _ in self.host}
        used = set()
        for _, expr in self.host:
            used |= {s.name for s in expr.free_symbols if not isinstance(s, StringLiteral)}
        used |= {s.name for s in self.scalar_outputs.values()}
        return sorted(used - defined)


@dataclass
class LoopBlock:
    """A loop counted by a hyperparameter, as one entry `(LoopBlock, None)` of a variant's
    tensor code: `phis` name -> (phi symbol, value before the loop), `body` [(Symbol, expr)]
    in order, `finals` name -> the body's value at the end of an iteration, `after` name ->
    the symbol holding it after the loop."""

    count: sympy.Symbol
    phis: dict
    body: list
    finals: dict
    after: dict

    def hoisted(self, hoist):
        return LoopBlock(self.count, {n: (phi, hoist(v)) for n, (phi, v) in self.phis.items()},
                         [(sym, hoist(expr)) for sym, expr in self.body], self.finals, self.after)

    def reads(self):
        names = {self.count.name}
        for _, value in self.phis.values():
            names |= {s.name for s in getattr(value, "free_symbols", ())}
        for _, expr in self.body:
            names |= {s.name for s in expr.free_symbols}
        for value in self.finals.values():
            names |= {s.name for s in getattr(value, "free_symbols", ())}
        return names


@dataclass
class Analysis:
    rule: object
    atoms: tuple                  # condition atoms (sympy booleans)
    variants: dict                # key -> Variant
    modes: dict = field(default_factory=dict)   # [modes]: "train"/"eval" -> (its Rule, its one Variant)
    group: object = None          # GroupStage of a rule with group reductions, else None


@dataclass
class GroupStage:
    """The partials stage of a rule with group reductions (codegen/group_stage.py)."""

    rule: object                  # the partials Rule (None without group reductions)
    atoms: tuple                  # its condition atoms
    variants: dict                # key -> Variant, named group_<name>
    reductions: tuple             # of group_stage.GroupReduction


def analyse(rule):
    """All variants of a rule, in a deterministic order. A rule with group reductions is
    analysed as its step rule (each group reduction a host input), with its partials stage
    in `group`; `Analysis.rule` stays the rule as written."""
    grouped = group_stage.split(rule)
    step = grouped.step if grouped else rule
    atoms, variants = _variants(step)
    group = None
    if grouped and grouped.partials is None:
        group = GroupStage(None, (), {}, ())
    elif grouped:
        group_atoms, group_variants = _variants(grouped.partials)
        for variant in group_variants.values():
            variant.name = "group_" + variant.name
        group = GroupStage(grouped.partials, group_atoms, group_variants, grouped.reductions)
    return Analysis(rule, atoms, variants, _modes(rule), group)


def _variants(rule):
    with distribute(False):
        atoms = _condition_atoms(rule)
        variants = {}
        for key in itertools.product((True, False), repeat=len(atoms)):
            truth = dict(zip(atoms, key))
            variants[key] = _Specialiser(rule, atoms, truth).variant(key)
    _unique_names(variants.values())
    return tuple(atoms), variants


def _modes(rule):
    """Each mode of [modes] analysed as a rule of its own (the same symbol table, the mode's
    statements): one straight-line variant named `mode_<mode>` (the loader allows no
    conditions in a mode and no conditional state in a rule with modes)."""
    out = {}
    for mode, (statements, text) in rule.modes.items():
        mode_rule = dataclasses.replace(rule, statements=statements, update_text=text, skip_if=None,
                                        requires=None, modes={})
        (variant,) = analyse(mode_rule).variants.values()
        variant.name, variant.description = f"mode_{mode}", f"{mode} mode"
        out[mode] = (mode_rule, variant)
    return out


def _unique_names(variants):
    """Variant names name generated functions: two conditions whose slugs agree (enum
    choices "a-b" and "a_b") must not define the same function twice."""
    taken = set()
    for variant in variants:
        name, n = variant.name, 1
        while name in taken:
            n += 1
            name = f"{variant.name}_{n}"
        taken.add(name)
        variant.name = name


# -- condition atoms --------------------------------------------------------
def canonical_atom(cond):
    """(atom, negated): `a != b` is `not (a == b)`, `a < b` is `not (a >= b)`."""
    for cls, base in _COMPLEMENT.items():
        if isinstance(cond, cls):
            return base(*cond.args), True
    return cond, False


def _atoms_of(cond, out):
    if cond in (sympy.true, sympy.false):
        return
    if isinstance(cond, _LOGIC):
        for arg in cond.args:
            _atoms_of(arg, out)
        return
    atom, _ = canonical_atom(cond)
    if atom not in out:
        out.append(atom)


def _host_wheres(expr, kinds, out, expansion):
    """Conditions of `where` calls that choose between tensors on a host condition."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, Where) and _kind(node.args[0], kinds) == HOST \
                and _kind(node, kinds) != HOST:
            _atoms_of(node.args[0].xreplace(expansion), out)


def _condition_atoms(rule):
    """Atoms of every branch condition, with host values the update computed (a rebound lr,
    a scalar state's new value) expanded into the inputs they come from, so that the
    generated `conditions()` can evaluate them from the step's inputs alone.

    A name an `if` assigns has another expansion after it in each branch taken
    (`x = 2 * lr`, `if t > 2: x = lr`, then `if x < 0:` tests `2*lr < 0` or `lr < 0`), so the
    walk follows paths: each holds the expansions and kinds of one way through the
    branches so far and the atom truths that chose it (a branch those truths rule out is
    not walked). Paths that reach the same expansions and kinds are merged, keeping the
    truths both agree on, so straight branches over tensors cost one path."""
    atoms = []

    def limit(where):
        if len(atoms) > MAX_CONDITIONS:   # each condition doubles the variants
            raise SpecError(f"more than {MAX_CONDITIONS} distinct conditions (if, when, where on host "
                            f"values): the limit is 2**{MAX_CONDITIONS} variants", where.path, where.line,
                            where.col)

    def branch(path, cond):
        """(truths, taken) for each truth of the atoms of `cond` this path has not decided."""
        own = []
        _atoms_of(cond, own)
        for atom in own:
            if atom not in atoms:
                atoms.append(atom)
        open_atoms = [a for a in own if a not in path.truth]
        for values in itertools.product((True, False), repeat=len(open_atoms)):
            truth = {**path.truth, **dict(zip(open_atoms, values))}
            yield truth, decide(cond, truth)

    def walk(block, paths):
        for stmt in block:
            if isinstance(stmt, If):
                out = []
                for path in paths:
                    cond = stmt.cond.xreplace(path.expansion)
                    taken = {True: [], False: []}
                    for truth, value in branch(path, cond):
                        taken[value].append(_Path(dict(path.kinds), dict(path.expansion), truth))
                    limit(stmt.loc)
                    if taken[True]:
                        out += walk(stmt.body, taken[True])
                    if taken[False]:
                        out += walk(stmt.orelse, taken[False])
                paths = _merge(out)
                continue
            if isinstance(stmt, Loop):
                for _ in range(stmt.count if isinstance(stmt.count, int) else 1):
                    paths = walk(stmt.body, paths)
                continue
            target = sympy.Symbol(stmt.target)
            for path in paths:
                _host_wheres(stmt.expr, path.kinds, atoms, path.expansion)
                limit(stmt.loc)
                if stmt.kind == HOST:
                    path.expansion[target] = stmt.expr.xreplace(path.expansion)
                else:
                    path.expansion.pop(target, None)
                path.kinds[stmt.target] = stmt.kind
        return paths
    walk(rule.statements, [_Path(_input_kinds(rule), {}, {})])
    for st in rule.states:
        if st.when is not None:
            _atoms_of(st.when, atoms)
            limit(st.loc)
    return atoms


@dataclass
class _Path:
    """One way through the `if`s for `_condition_atoms`."""

    kinds: dict          # name -> kind
    expansion: dict      # host symbol -> its value in terms of the step's inputs
    truth: dict          # atom -> the truth that chose this way


def _merge(paths):
    """Paths with equal expansions and kinds as one, keeping the truths they share."""
    merged = {}
    for path in paths:
        key = (frozenset(path.expansion.items()), frozenset(path.kinds.items()))
        if key not in merged:
            merged[key] = path
            continue
        kept = merged[key]
        kept.truth = {a: v for a, v in kept.truth.items() if path.truth.get(a) == v}
    return list(merged.values())


class _TruthMap(dict):
    """Each atom and its complement -> sympy.true or sympy.false."""


def _truth_map(truth):
    mapping = _TruthMap()
    for atom, value in truth.items():
        mapping[atom] = sympy.true if value else sympy.false
        for cls, base in _COMPLEMENT.items():
            if isinstance(atom, base):
                mapping[cls(*atom.args)] = sympy.false if value else sympy.true
    return mapping


def decide(cond, truth):
    """Evaluate a condition under a variant's atom truths (a dict of them, or its `_truth_map`)."""
    value = cond.xreplace(truth if isinstance(truth, _TruthMap) else _truth_map(truth))
    if value not in (sympy.true, sympy.false):
        raise AssertionError(f"condition {cond} not decided by its atoms")
    return value is sympy.true


# -- kinds --------------------------------------------------------------------
def _input_kinds(rule):
    kinds = {name: b.kind for name, b in BUILTINS.items()}
    for hp in rule.hyperparameters:
        kinds[hp.name] = HOST
    for flag in rule.name_flags:
        kinds[flag] = HOST
    for st in rule.states:
        kinds[st.name] = st.kind
    return kinds


def expression_kind(expr, kinds):
    """The kind (HOST, DEVICE, ROWS, COLS, TENSOR) of an expression whose names have `kinds`."""
    return _kind_of(expr, kinds, {})


def _kind(expr, kinds, memo=None):
    """The kind of an expression; `memo` (expression -> kind) keeps the kinds found for the
    subexpressions of one walk over a tree (hoisting asks for every node's kind)."""
    if memo is None:
        return _kind_of(expr, kinds, {})
    return _kind_of(expr, kinds, memo)


def _kind_of(expr, kinds, memo):
    found = memo.get(expr)
    if found is not None:
        return found
    if isinstance(expr, (*WHOLE_REDUCTIONS, NormLowerBound)):
        found = DEVICE
    elif isinstance(expr, ROW_REDUCTIONS):
        found = ROWS if _kind_of(expr.args[0], kinds, memo) == TENSOR else DEVICE
    elif isinstance(expr, COL_REDUCTIONS):
        found = COLS if _kind_of(expr.args[0], kinds, memo) in (TENSOR, COLS) else DEVICE
    elif isinstance(expr, Transpose):
        inner = _kind_of(expr.args[0], kinds, memo)
        found = {ROWS: COLS, COLS: ROWS}.get(inner, inner)
    elif isinstance(expr, (Normal, MatMul, *SQUARE_FUNCTIONS, *SOLVES)):
        found = TENSOR
    elif isinstance(expr, sympy.Symbol):
        found = kinds.get(expr.name, HOST)
    else:
        found = join_kinds(*(_kind_of(a, kinds, memo) for a in expr.args))
    memo[expr] = found
    return found


# -- specialisation and SSA --------------------------------------------------
class _Specialiser:
    def __init__(self, rule, atoms, truth):
        self.rule = rule
        self.atoms = atoms
        self.truth = _truth_map(truth)    # built once: decide() runs for every condition of the variant
        self.kinds = _input_kinds(rule)
        self.present = tuple(st.name for st in rule.states
                             if st.when is None or decide(st.when, self.truth))
        self.env = {}
        for st in rule.states:
            if st.name not in self.present:  # an absent state starts every step from its init value
                self.env[sympy.Symbol(st.name)] = _initial_value(st)
        self.host = []
        self.tensor = []
        self.taken = set()
        self.expansion = {}   # host symbol -> its value in terms of the step's inputs

    def variant(self, key):
        self._block(self.rule.statements)
        outputs, scalars = {}, {}
        for name in ("weight",) + self.present:
            sym = sympy.Symbol(name)
            value = self.env.get(sym, sym)
            if value == sym:
                continue
            if self.kinds[name] == HOST:
                if not isinstance(value, sympy.Symbol):
                    value = self._host_symbol(name, value)
                scalars[name] = value
            else:
                outputs[name] = value
        if any(isinstance(sym, LoopBlock) for sym, _ in self.tensor):
            tensor = [(sym.hoisted(lambda e: _hoist(e, self.kinds, self._host_symbol)), None)
                      if isinstance(sym, LoopBlock) else (sym, _hoist(expr, self.kinds, self._host_symbol))
                      for sym, expr in self.tensor]
        else:
            tensor = _inline_single_use(self.tensor, outputs)
            tensor = [(sym, _hoist(expr, self.kinds, self._host_symbol)) for sym, expr in tensor]
        host = _prune(self.host, tensor, outputs, scalars)
        name, description = _describe(self.atoms, key)
        return Variant(key, name, description, self.present, host, tensor, outputs, scalars, dict(self.kinds))

    def _block(self, block):
        for stmt in block:
            if isinstance(stmt, If):
                cond = stmt.cond.xreplace(self.env).xreplace(self.expansion)
                self._block(stmt.body if decide(cond, self.truth) else stmt.orelse)
                continue
            if isinstance(stmt, Loop) and isinstance(stmt.count, int):   # unrolled
                for _ in range(stmt.count):
                    self._block(stmt.body)
                continue
            if isinstance(stmt, Loop):
                self._loop(stmt)
                continue
            expr = self._specialise(stmt.expr.xreplace(self.env))
            kind = _kind(expr, self.kinds)
            atomic = isinstance(expr, (sympy.Symbol, sympy.Number)) or expr in (sympy.true, sympy.false)
            if not atomic:
                if kind == HOST:
                    symbol = self._host_symbol(stmt.target, expr)
                    self.expansion[symbol] = expr.xreplace(self.expansion)
                    expr = symbol
                else:
                    expr = self._tensor_symbol(stmt.target, expr, kind)
            self.env[sympy.Symbol(stmt.target)] = expr

    def _loop(self, stmt):
        """A loop counted by a hyperparameter: its body once, as a `LoopBlock` of the tensor
        code. Names the body assigns that hold a value before it are carried: read through a
        `phi` symbol inside (the value before the first iteration, then the previous one's) and
        through a fresh symbol after it."""
        targets = list(dict.fromkeys(s.target for s in stmt.body))
        inputs = _input_kinds(self.rule)
        carried = [n for n in targets if sympy.Symbol(n) in self.env or n in inputs]
        phis, after = {}, {}
        for name in carried:
            sym = sympy.Symbol(name)
            value = self.env.get(sym, sym)
            phi = self._fresh(name + "_phi", _kind(value, self.kinds))
            phis[name] = (phi, value)
            self.env[sym] = phi
        outer, self.tensor = self.tensor, []
        self._block(stmt.body)
        body, self.tensor = self.tensor, outer
        finals = {name: self.env[sympy.Symbol(name)] for name in carried}
        for name in carried:
            after[name] = self._fresh(name, self.kinds[phis[name][0].name])
            self.env[sympy.Symbol(name)] = after[name]
        self.tensor.append((LoopBlock(sympy.Symbol(stmt.count), phis, body, finals, after), None))

    def _specialise(self, expr):
        """Decide host conditions of tensor `where`s; drop nothing else."""
        def fold(node):
            if isinstance(node, Where) and _kind(node.args[0], self.kinds) == HOST \
                    and _kind(node, self.kinds) != HOST:
                cond = node.args[0].xreplace(self.expansion)
                return node.args[1] if decide(cond, self.truth) else node.args[2]
            return node
        return _rebuild(expr, fold)

    def _host_symbol(self, base, expr):
        for sym, existing in self.host:
            if existing == expr:
                return sym
        sym = self._fresh(base, HOST)
        self.host.append((sym, expr))
        return sym

    def _tensor_symbol(self, base, expr, kind):
        sym = self._fresh(base, kind)
        self.tensor.append((sym, expr))
        return sym

    def _fresh(self, base, kind):
        name = _fresh(base, self.taken | set(self.kinds))
        self.taken.add(name)
        self.kinds[name] = kind
        return sympy.Symbol(name)


def _initial_value(st):
    if st.shape in ("scalar", "group"):
        return sympy.Float(st.init)
    return sympy.Symbol("weight") if st.init == "weight" else sympy.Integer(0)


def _fresh(base, taken):
    base = re.sub(r"\W", "_", base)
    for i in itertools.count(1):
        name = f"{base}_{i}"
        if name not in taken:
            return name


def _rebuild(expr, fn):
    """Bottom-up rewrite with `fn` applied to every rebuilt node."""
    if not expr.args:
        return fn(expr)
    args = [_rebuild(a, fn) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args)):
        return fn(expr)
    return fn(expr.func(*args))


# -- inlining and hoisting ------------------------------------------------------
def _inline_single_use(tensor, outputs):
    """Substitute tensor locals read exactly once (and not outputs) into their reader.

    Locals read more than once stay named: they are the common subexpressions the
    spec itself names (the clipped gradient, the new moments, ...)."""
    tensor = list(tensor)
    output_syms = {v for v in outputs.values() if isinstance(v, sympy.Symbol)}
    uses = {}
    for _, expr in tensor:
        _count_symbols(expr, uses, 1)
    changed = True
    while changed:
        changed = False
        for i in range(len(tensor) - 1, -1, -1):
            sym, expr = tensor[i]
            if sym in output_syms or uses.get(sym, 0) != 1:
                continue
            for j in range(i + 1, len(tensor)):
                reader, rexpr = tensor[j]
                if sym in rexpr.free_symbols:
                    # the counts follow the rewrite (sympy may fold the new expression)
                    replaced = rexpr.xreplace({sym: expr})
                    for old in (rexpr, expr):
                        _count_symbols(old, uses, -1)
                    _count_symbols(replaced, uses, 1)
                    tensor[j] = (reader, replaced)
                    break
            else:
                _count_symbols(expr, uses, -1)
            del tensor[i]
            changed = True
            break
    return [(sym, expr) for sym, expr in tensor if sym in output_syms or uses.get(sym, 0) > 0]


def _count_symbols(expr, uses, step):
    """Add `step` to `uses[s]` for every occurrence of a symbol `s` in `expr` (what
    `expr.count(s)` counts, for all symbols in one traversal)."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Symbol):
            uses[node] = uses.get(node, 0) + step


def _hoist(expr, kinds, host_symbol):
    """Replace maximal non-atomic host subexpressions of a tensor expression by host symbols."""

    memo = {}   # the kinds only grow by the new host symbols: a kind found stays right

    def is_host(e):
        return _kind(e, kinds, memo) == HOST

    def atomic(e):
        return isinstance(e, (sympy.Symbol, sympy.Number)) or e in (sympy.true, sympy.false)

    def hoist(e):
        if atomic(e) or isinstance(e, IsNone):
            return e
        if is_host(e):
            return host_symbol("c", e)
        if isinstance(e, Clip):
            # bounds that may be None stay symbols: the emitters guard them
            return e.func(hoist(e.args[0]), *[a if atomic(a) else hoist(a) for a in e.args[1:]])
        if isinstance(e, (sympy.Add, sympy.Mul)):
            host_args = [a for a in e.args if is_host(a)]
            other = [hoist(a) for a in e.args if not is_host(a)]
            coeff = []
            if isinstance(e, sympy.Mul) and host_args and host_args[0] == -1:
                coeff, host_args = [host_args[0]], host_args[1:]   # keep the sign for subtraction
            if len(host_args) > 1 or (len(host_args) == 1 and not atomic(host_args[0])):
                combined = e.func(*host_args)
                host_args = [combined if atomic(combined) else hoist(combined)]
            if coeff or host_args:
                return e.func(*(coeff + host_args + other), evaluate=False)
            return e.func(*other)
        return e.func(*[hoist(a) for a in e.args])

    return hoist(expr)


def _prune(host, tensor, outputs, scalars):
    """Host statements that tensor code, a scalar state or another needed statement reads."""
    needed = set()
    for sym, expr in tensor:
        if isinstance(sym, LoopBlock):
            needed |= sym.reads()
            continue
        needed |= {s.name for s in expr.free_symbols}
    for value in outputs.values():
        needed |= {s.name for s in getattr(value, "free_symbols", ())}
    needed |= {s.name for s in scalars.values()}
    kept = []
    for sym, expr in reversed(host):
        if sym.name in needed:
            kept.append((sym, expr))
            needed |= {s.name for s in expr.free_symbols}
    return list(reversed(kept))


# -- names ---------------------------------------------------------------------
MAX_CONDITIONS = 8   # distinct condition atoms: 2**8 = 256 variants at most
_MAX_NAME = 120   # characters of a variant's name; longer ones are cut (and kept unique)
_OPS = {sympy.Eq: ("eq", "=="), sympy.Ne: ("ne", "!="), sympy.Gt: ("gt", ">"),
        sympy.Ge: ("ge", ">="), sympy.Lt: ("lt", "<"), sympy.Le: ("le", "<=")}


def _describe(atoms, key):
    if not atoms:
        return "default", "always"
    slugs, texts = [], []
    for atom, value in zip(atoms, key):
        cond = atom if value else _negate(atom)
        slug, text = _describe_one(cond)
        slugs.append(slug)
        texts.append(text)
    return "__".join(slugs)[:_MAX_NAME], " and ".join(texts)


def _negate(atom):
    for cls, base in _COMPLEMENT.items():
        if isinstance(atom, base):
            return cls(*atom.args)
    return sympy.Not(atom)


def _describe_one(cond):
    if isinstance(cond, sympy.Not):
        slug, text = _describe_one(cond.args[0])
        if isinstance(cond.args[0], IsNone):
            return slug.replace("_is_none", "_is_set"), text.replace(" is None", " is not None")
        return "not_" + slug, "not " + text
    if isinstance(cond, IsNone):
        name = cond.args[0].name
        return f"{name}_is_none", f"{name} is None"
    for cls, (slug, text) in _OPS.items():
        if isinstance(cond, cls):
            lhs, rhs = (_atom_text(a) for a in cond.args)
            return (_slug(f"{lhs}_{slug}_{rhs}"), f"{lhs} {text} {rhs}")
    text = _atom_text(cond)
    return _slug(text), text


def _slug(text):
    """An ASCII identifier part (generated function names in every target)."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")


def _atom_text(expr):
    if isinstance(expr, StringLiteral):
        return repr(expr.value)
    return str(expr)
