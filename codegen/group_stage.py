"""Group reductions: the update split into a per-tensor partials stage and the step.

`group_sum(x)`, `group_max(x)` and `group_min(x)` read one value `x` per parameter of the
param group (a whole-tensor reduction, or a value computed from one) and give one host
value per step. The update is split at them (docs/group-values.md):

- the partials rule: every statement the group reductions' arguments need, with the
  states and the weight they write renamed to locals (it reads the step's states and writes
  none), and per group reduction `_partial<k> = x`, a per-tensor scalar written into a 0-d
  array. The runtime runs it for every parameter of the group and combines the partials in
  float64, in parameter order (sum: `math.fsum`; max, min: NaN wins);
- the step rule: the update with each group reduction replaced by a host input
  `_group<k>`, so every target prints it as any rule whose host scalars are inputs. Group
  states (`shape = "group"`) are host values of it: their new values are the same for
  every parameter of the group, computed from inputs every parameter shares.

One stage only: a group reduction whose argument reads a value computed from another group
reduction of the same step is refused, as are group reductions inside `if` and `for`.
"""
from dataclasses import dataclass, replace

import sympy

from .errors import SpecError
from .functions import GROUP_OPS, GROUP_REDUCTIONS
from .ir import DEVICE, HOST, Assign, If, Loop, State, walk


@dataclass(frozen=True)
class GroupReduction:
    op: str             # "sum" | "max" | "min": how the partials combine
    value: str          # the host input of the step rule holding the group's value
    partial: str        # the partials rule's per-tensor scalar state
    text: str           # the reduction as written, for messages


@dataclass(frozen=True)
class GroupSplit:
    step: object        # the step Rule (group reductions replaced by host inputs)
    partials: object    # the partials Rule (None: group states and no group reduction)
    reductions: tuple   # of GroupReduction, in order of appearance


def has_group_reductions(rule):
    return any(isinstance(stmt, Assign) and stmt.expr.has(*GROUP_REDUCTIONS) for stmt in walk(rule.statements)) \
        or any(st.shape == "group" for st in rule.states)


def split(rule):
    """The GroupSplit of a rule with group reductions or group states, else None; SpecError
    (positioned) for what one stage cannot compute."""
    if not has_group_reductions(rule):
        return None
    for stmt in rule.statements:
        if isinstance(stmt, (If, Loop)):
            for inner in walk(stmt.body + getattr(stmt, "orelse", [])):
                if isinstance(inner, Assign) and inner.expr.has(*GROUP_REDUCTIONS):
                    raise _error("group reductions are computed once per step for the whole group: "
                                 "write them outside 'if' and 'for'", inner)
    for stmt in walk(rule.statements):      # (an if's condition: the step has no group stage there)
        if isinstance(stmt, If) and stmt.cond.has(*GROUP_REDUCTIONS):
            raise _error("group reductions are computed once per step for the whole group: assign one "
                         "to a name before the 'if' and test that", stmt)
    reductions, step_statements = [], []
    last = max((k for k, stmt in enumerate(rule.statements)
                if isinstance(stmt, Assign) and stmt.expr.has(*GROUP_REDUCTIONS)), default=-1)
    for stmt in rule.statements:
        if isinstance(stmt, Assign) and stmt.expr.has(*GROUP_REDUCTIONS):
            replaced = {}
            for node in sympy.preorder_traversal(stmt.expr):
                if isinstance(node, GROUP_REDUCTIONS) and node not in replaced:
                    if node.args[0].has(*GROUP_REDUCTIONS):
                        raise _error(f"group_{GROUP_OPS[type(node)]}() reads a group reduction of the same step "
                                     "in its argument: one group stage per step only", stmt)
                    k = len(reductions)
                    reductions.append((GroupReduction(GROUP_OPS[type(node)], f"_group{k}", f"_partial{k}",
                                                      _text(node, stmt)), node, stmt))
                    replaced[node] = sympy.Symbol(f"_group{k}")
            stmt = replace(stmt, expr=stmt.expr.xreplace(replaced))
        step_statements.append(stmt)
    step = replace(rule, statements=step_statements)
    if not reductions:      # group states alone: nothing to add up before the step
        return GroupSplit(step, None, ())
    return GroupSplit(step, _partials_rule(rule, reductions, last), tuple(r for r, _, _ in reductions))


def _partials_rule(rule, reductions, last):
    """The statements before the last group reduction, reading the step's states and
    writing none, and one per-tensor scalar state per group reduction."""
    prefix = rule.statements[:last + 1]
    arrays = {"weight"} | {st.name for st in rule.states}
    written = sorted({stmt.target for stmt in walk(prefix) if isinstance(stmt, Assign) and stmt.target in arrays})
    renamed = {sympy.Symbol(name): sympy.Symbol(f"_a_{name}") for name in written}
    kinds = {st.name: st.kind for st in rule.states}
    statements = [Assign(f"_a_{name}", sympy.Symbol(name), kinds.get(name, "tensor"), name, rule.statements[0].loc)
                  for name in written]
    tainted = set()     # names whose value depends on a group value of this step
    by_statement = {}
    for reduction, node, stmt in reductions:
        by_statement.setdefault(id(stmt), []).append((reduction, node))
    for stmt in prefix:
        if id(stmt) in by_statement:
            for reduction, node in by_statement[id(stmt)]:
                argument = node.args[0].xreplace(renamed)
                read = {s.name for s in argument.free_symbols} & tainted
                if read:
                    name = sorted(read)[0].removeprefix("_a_")
                    raise _error(f"group_{reduction.op}() reads '{name}', which is computed from a group "
                                 "reduction of the same step: one group stage per step only", stmt)
                statements.append(Assign(reduction.partial, argument, DEVICE, reduction.text, stmt.loc))
            tainted |= {stmt.target, f"_a_{stmt.target}"}    # (read as itself or as its renamed local)
            continue
        if _reads(stmt) & tainted:
            tainted |= {name for inner in walk([stmt]) if isinstance(inner, Assign)
                        for name in (inner.target, f"_a_{inner.target}")}
            continue
        statements.append(_renamed(stmt, renamed))
    partial_states = tuple(State(r.partial, 0.0, "weight", "scalar", device=True) for r, _, _ in reductions)
    return replace(rule, statements=statements, states=rule.states + partial_states, skip_if=rule.skip_if,
                   requires=None, modes={})


def _reads(stmt):
    names = set()
    for inner in walk([stmt]):
        expr = inner.expr if isinstance(inner, Assign) else getattr(inner, "cond", None)
        if expr is not None and hasattr(expr, "free_symbols"):
            names |= {s.name for s in expr.free_symbols}
    return names


def _renamed(stmt, renamed):
    """A statement with the weight and the states it writes read and written as locals."""
    if isinstance(stmt, Assign):
        target = renamed.get(sympy.Symbol(stmt.target), sympy.Symbol(stmt.target)).name
        kind = stmt.kind if stmt.kind != "group" else HOST
        return replace(stmt, target=target, expr=stmt.expr.xreplace(renamed), kind=kind)
    if isinstance(stmt, If):
        return replace(stmt, cond=stmt.cond.xreplace(renamed), body=[_renamed(s, renamed) for s in stmt.body],
                       orelse=[_renamed(s, renamed) for s in stmt.orelse])
    return replace(stmt, body=[_renamed(s, renamed) for s in stmt.body])


def _text(node, stmt):
    """The reduction as sympy prints it; the statement's text where sympy's printer cannot
    (it takes the language's MatMul for its own matrix product)."""
    try:
        return sympy.sstr(node)
    except AttributeError:
        return stmt.text


def _error(message, stmt):
    return SpecError(message, stmt.loc.path, stmt.loc.line, stmt.loc.col)
