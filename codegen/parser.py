"""The formula language: Python syntax, parsed with `ast`, built into sympy.

A spec is data. The update block is parsed by `ast.parse` (which only builds a
tree) and every node is checked against a whitelist before a sympy expression is
built from it; nothing is ever evaluated as Python, and sympy never parses text.
Each mistake raises `SpecError` at the file position of the offending node.
"""
import ast
import difflib
import math
import re
import textwrap
import warnings
from dataclasses import dataclass, replace

import sympy
from sympy.core.parameters import distribute

from .errors import Cascade, SpecError
from .functions import (COL_REDUCTIONS, FUNCTIONS, GROUP_REDUCTIONS, ROW_REDUCTIONS, WHOLE_REDUCTIONS, GroupSum,
                        IsNone, MatMul, Normal, NormLowerBound, Solve, SolveRight, SortRows, Sqrt, StringLiteral,
                        TensorSum, Transpose)
from .ir import COLS, DEVICE, HOST, KIND_ORDER, ROWS, TENSOR, Assign, If, Location, Loop, join_kinds

MAX_EXPONENT = 64          # |constant exponent| allowed: anything larger is a mistake or an attack
MAX_INT_LITERAL = 2 ** 53  # integers beyond this lose precision as floats
MAX_MAGNITUDE = 1e300      # |constant| after folding: float64 with room for one more operation
_MAX_MAGNITUDE_INT = 10 ** 300   # the same, for exact comparisons of rationals
MAX_DEPTH = 48             # nesting of a formula (operators, calls, parentheses; a chain a+b+c+... counts each term)
MAX_STATEMENTS = 200       # assignments and ifs in the update block
MAX_LOOP_COUNT = 8         # `for _ in range(N)`: N is a literal from 1 to this (unrolled)
MAX_LOOP_HYPERPARAMETER = 1000   # or an int hyperparameter whose range lies within [0, this] (repeated)
RESERVED = frozenset({"math", "xp", "rng", "SPEC", "VARIANTS"})   # names the generated modules use

NUM, BOOL, STR, NONE = "num", "bool", "str", "none"

_STATEMENT_NAMES = {
    ast.FunctionDef: "function definitions", ast.AsyncFunctionDef: "function definitions",
    ast.ClassDef: "class definitions", ast.Return: "return", ast.Delete: "del",
    ast.For: "for loops", ast.AsyncFor: "for loops", ast.While: "while loops", ast.With: "with",
    ast.AsyncWith: "with", ast.Raise: "raise", ast.Try: "try", ast.Assert: "assert",
    ast.Import: "import", ast.ImportFrom: "import", ast.Global: "global", ast.Nonlocal: "nonlocal",
    ast.Pass: "pass", ast.Break: "break", ast.Continue: "continue", ast.Expr: "bare expressions",
    ast.AnnAssign: "annotated assignments", ast.Match: "match",
}

_EXPRESSION_NAMES = {
    ast.Attribute: "attribute access ('a.b')",
    ast.Subscript: "indexing ('a[i]')",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings", ast.FormattedValue: "f-strings",
    ast.NamedExpr: "assignment expressions (':=')",
    ast.Starred: "starred expressions",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.List: "lists", ast.Tuple: "tuples", ast.Set: "sets", ast.Dict: "dicts",
    ast.Slice: "slices",
}

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Mod: "%"}
_COMPARE = {
    ast.Lt: sympy.Lt, ast.LtE: sympy.Le, ast.Gt: sympy.Gt, ast.GtE: sympy.Ge,
    ast.Eq: sympy.Eq, ast.NotEq: sympy.Ne,
}


@dataclass
class Name:
    """What a name in a rule refers to."""

    name: str
    kind: str                 # HOST, DEVICE, ROWS or TENSOR
    type: str = NUM           # NUM, BOOL or "enum"
    role: str = "local"       # "builtin" | "hyperparameter" | "state" | "local"
    optional: bool = False    # may be None (optional hyperparameters, clip_gradient)
    assignable: bool = True
    choices: tuple = ()
    maybe_unbound_at: int | None = None   # line of the if that bound it in one branch only
    rebound: bool = False     # a built-in input the rule has assigned a new value
    shape: tuple | None = None   # symbolic matrix shape of a local array, e.g. ("rows", "rows")
    shape_conflict: str = ""     # the branches of an if gave this name different shapes (or: why it cannot be read)
    int_range: tuple | None = None   # (lo, hi) of an int hyperparameter with a finite range
    elements: tuple = ()         # a list hyperparameter's element names (its type is "list")
    list_of: str = ""            # an element's list: read as `betas[0]`, never by its own name
    group: bool = False          # a group state (shape = "group"): one host value per param group


# The symbolic shape (in the matrix view) of each kind of array
KIND_SHAPES = {TENSOR: ("rows", "cols"), ROWS: ("rows", "1"), COLS: ("1", "cols"), DEVICE: ("1", "1")}


def shape_text(shape):
    return "(" + ", ".join(shape) + ")"


@dataclass
class Value:
    expr: sympy.Basic
    type: str
    kind: str
    optional: bool = False


class FormulaParser:
    """Parses formula text in the context of a symbol table.

    `origin` is the file (line, col) of the text's first character, so that
    positions in the text can be reported as positions in the spec file.
    """

    def __init__(self, names, path, origin=(1, 1), errors=None, poisoned=(), verbatim=True):
        self.errors = errors              # a list: record each wrong statement and go on
        self.poisoned = set(poisoned)     # names whose definition was wrong (reading one: Cascade)
        self.names = dict(names)
        self.path = path
        self.origin = origin
        self.verbatim = verbatim          # False: the text had TOML escapes, its lines are not the file's
        self._lines = [""]
        self._dedent = 0
        self._normal_calls = 0
        self.device_states = set()

    # -- positions ---------------------------------------------------------
    def _prepare(self, text):
        dedented = textwrap.dedent(text)
        first = next((ln for ln in _lines(text) if ln.strip()), "")
        first_dedented = next((ln for ln in _lines(dedented) if ln.strip()), "")
        self._dedent = len(first) - len(first_dedented)
        self._lines = _lines(dedented) or [""]
        return dedented

    def _loc(self, lineno, col_offset):
        """File location of a 1-based line and a 0-based UTF-8 byte column in the text."""
        if lineno is None or not self.verbatim:
            return Location(self.path, self.origin[0], self.origin[1])
        line_text = self._lines[lineno - 1] if 0 < lineno <= len(self._lines) else ""
        col = len(line_text.encode("utf-8")[: col_offset or 0].decode("utf-8", "replace"))
        if lineno == 1:
            return Location(self.path, self.origin[0], self.origin[1] + self._dedent + col)
        return Location(self.path, self.origin[0] + lineno - 1, 1 + self._dedent + col)

    def error(self, message, node=None):
        loc = self._loc(getattr(node, "lineno", None), getattr(node, "col_offset", 0))
        return SpecError(message, self.path, loc.line, loc.col)

    # -- entry points ------------------------------------------------------
    def parse_block(self, text):
        """Parse an update block into a list of Assign / If statements."""
        tree = self._parse(text, "exec")
        if not tree.body:
            raise self.error("the update block is empty")
        statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
        if len(statements) > MAX_STATEMENTS:
            raise self.error(f"the update block has {len(statements)} statements: more than the limit "
                             f"of {MAX_STATEMENTS}", statements[MAX_STATEMENTS])
        unrolled = len(statements)
        for loop in (n for n in statements if isinstance(n, ast.For)):
            count = getattr(loop.iter, "args", [None])[0] if isinstance(loop.iter, ast.Call) else None
            if isinstance(count, ast.Constant) and type(count.value) is int and 1 < count.value <= MAX_LOOP_COUNT:
                unrolled += (count.value - 1) * sum(isinstance(n, ast.stmt) for n in ast.walk(loop) if n is not loop)
                if unrolled > MAX_STATEMENTS:
                    raise self.error(f"the update block has {unrolled} or more statements once its loops are "
                                     f"unrolled: more than the limit of {MAX_STATEMENTS}", loop)
        with distribute(False):
            return self._statements(tree.body, text=self._source)

    def parse_condition(self, text, allowed_roles=("hyperparameter",)):
        """Parse a host condition such as `momentum != 0` (state `when`, `skip_if`)."""
        tree = self._parse(text, "eval")
        with distribute(False):
            value = self._expr(tree.body)
        self._check_names(tree.body, allowed_roles)
        if value.expr.has(*GROUP_REDUCTIONS):   # (only the update has a group stage)
            call = next((n for n in ast.walk(tree.body) if isinstance(n, ast.Call)
                         and getattr(n.func, "id", "").startswith("group_")), None)
            what = f"{call.func.id}()" if call is not None else "a group reduction"
            raise self.error(f"{what} is computed by the update, once per step for the whole group: "
                             "it cannot be read here", call or tree.body)
        if value.type != BOOL:
            raise self.error("a condition must be a comparison or a bool, not a number", tree.body)
        if value.kind != HOST:
            raise self.error("a condition must not depend on tensors", tree.body)
        return value.expr

    def _parse(self, text, mode):
        self._source = self._prepare(text)
        try:
            # Python's compiler warns about some odd tokens (`1if`, `"\d"`) while parsing; what
            # is wrong in a formula is reported as a SpecError by the checks below, never as noise
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(self._source, filename=self.path, mode=mode)
        except (RecursionError, MemoryError):   # Python's own parser gives up on deep nesting
            raise SpecError(f"formula nested too deeply (the limit is {MAX_DEPTH} levels)",
                            self.path, self.origin[0], self.origin[1]) from None
        except SyntaxError as err:
            loc = self._loc(err.lineno, (err.offset or 1) - 1)
            # SyntaxError.offset counts characters, not bytes: re-base it
            if err.lineno and 0 < err.lineno <= len(self._lines):
                loc = self._loc_chars(err.lineno, (err.offset or 1) - 1)
            raise SpecError(f"syntax error: {err.msg}", self.path, loc.line, loc.col) from None
        except ValueError as err:  # e.g. source contains null bytes
            raise SpecError(f"syntax error: {err}", self.path, self.origin[0], self.origin[1]) from None
        self._check_depth(tree)
        return tree

    def _check_depth(self, tree):
        """Formulas are built and printed recursively: refuse nesting beyond MAX_DEPTH
        (measured without recursion, before anything is built)."""
        stack = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, ast.expr):
                depth += 1
                if depth > MAX_DEPTH:
                    raise self.error(f"formula nested too deeply (the limit is {MAX_DEPTH} levels of "
                                     "operators, calls and parentheses)", node)
            stack.extend((child, depth) for child in ast.iter_child_nodes(node))

    def _loc_chars(self, lineno, col):
        line_text = self._lines[lineno - 1]
        return self._loc(lineno, len(line_text[:col].encode("utf-8")))

    def _check_names(self, node, allowed_roles):
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in self.names:
                role = self.names[sub.id].role
                if role not in allowed_roles:
                    raise self.error(f"'{sub.id}' ({role}) cannot be used here; only "
                                     + " and ".join(r + "s" for r in allowed_roles) + " can", sub)

    # -- statements --------------------------------------------------------
    def _statements(self, body, text, narrowed=frozenset()):
        out = []
        for node in body:
            if self.errors is None:
                out.append(self._statement(node, text, narrowed))
                continue
            try:   # collecting: a wrong statement is recorded, the names it assigns poisoned
                out.append(self._statement(node, text, narrowed))
            except (SpecError, Cascade) as err:
                if isinstance(err, SpecError):
                    self.errors.append(err)
                self.poisoned |= {n.id for n in ast.walk(node)
                                  if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        return out

    def _statement(self, node, text, narrowed):
        if isinstance(node, ast.Assign):
            return self._assign(node, text, narrowed)
        if isinstance(node, ast.AugAssign):
            return self._augassign(node, text, narrowed)
        if isinstance(node, ast.If):
            return self._if(node, text, narrowed)
        if isinstance(node, ast.For):
            return self._for(node, text, narrowed)
        what = _STATEMENT_NAMES.get(type(node), type(node).__name__)
        raise self.error(f"{what} not allowed in a spec: a rule is a sequence of "
                         "'name = expression' lines and 'if' blocks", node)

    def _target(self, node):
        if not isinstance(node, ast.Name):
            raise self.error("assign to one plain name at a time", node)
        info = self.names.get(node.id)
        if not node.id.isascii():   # names reach C++ and every other target as they are
            raise self.error(f"name '{node.id}' must be ASCII (letters, digits, '_')", node)
        if info is None and (node.id in RESERVED or node.id.startswith("_")):
            raise self.error(f"'{node.id}' is reserved: the generated code uses it (so are names "
                             "starting with '_')", node)
        if info is not None and not info.assignable:
            if info.role == "hyperparameter":
                raise self.error(f"cannot assign to hyperparameter '{node.id}': hyperparameters are "
                                 "read-only (bind the new value to another name)", node)
            raise self.error(f"cannot assign to '{node.id}': it is a read-only input", node)
        return node.id

    def _bind(self, name, value, node):
        self.poisoned.discard(name)
        info = self.names.get(name)
        if value.type != NUM:
            if info is not None and info.role in ("state", "builtin"):
                raise self.error(f"'{name}' must hold a number, not a {value.type}", node)
        if value.optional:
            raise self.error("a value that may be None cannot be assigned; test it with "
                             "'is not None' in an if first", node)
        if info is not None and info.group and value.kind != HOST:
            raise self.error(f"group state '{name}' is one value per param group: assign it host values "
                             f"and group reductions (group_sum(...)), not a {value.kind} value", node)
        if info is not None and info.role == "state" and info.kind in (HOST, DEVICE) \
                and value.kind not in (HOST, DEVICE):
            raise self.error(f"scalar state '{name}' cannot hold a {value.kind} value", node)
        if info is not None and info.role == "state" and info.kind == HOST and value.kind == DEVICE:
            self.device_states.add(name)   # computed from a reduction: the loader re-parses it as such
        shape = self._shape(value.expr, node) if value.type == NUM else None
        if info is not None and (name == "weight" or info.role == "state") and shape is not None:
            declared = (info.shape or KIND_SHAPES[info.kind]) if info.kind != HOST else None
            if declared is not None and _broadcast(shape, declared) != declared:
                raise self.error(f"'{name}' has shape {shape_text(declared)}; the value assigned has "
                                 f"shape {shape_text(shape)}", node)
        if info is not None and info.role in ("state", "builtin"):
            if name == "weight" or info.role == "state":
                kind, shape = info.kind, info.shape  # arrays keep their shape whatever is assigned
            else:
                kind = value.kind
            self.names[name] = Name(name, kind, NUM, info.role, False, True, rebound=True, shape=shape,
                                    group=info.group)
        else:
            self.names[name] = Name(name, value.kind, value.type, "local", False, True,
                                    choices=getattr(info, "choices", ()), shape=shape)

    def _assign(self, node, text, narrowed):
        if len(node.targets) != 1:
            raise self.error("assign to one plain name at a time", node)
        target = self._target(node.targets[0])
        value = self._expr(node.value, narrowed)
        self._check_constants(value.expr, node.value)
        self._bind(target, value, node)
        return Assign(target, value.expr, self.names[target].kind,
                      ast.get_source_segment(text, node) or "", self._loc(node.lineno, node.col_offset))

    def _augassign(self, node, text, narrowed):
        target = self._target(node.target)
        if type(node.op) not in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            raise self.error("only +=, -=, *= and /= are allowed", node)
        load = ast.Name(id=target, ctx=ast.Load(), lineno=node.lineno, col_offset=node.col_offset)
        binop = ast.BinOp(left=load, op=node.op, right=node.value,
                          lineno=node.lineno, col_offset=node.col_offset)
        value = self._expr(binop, narrowed)
        self._bind(target, value, node)
        return Assign(target, value.expr, self.names[target].kind,
                      ast.get_source_segment(text, node) or "", self._loc(node.lineno, node.col_offset))

    def _if(self, node, text, narrowed):
        cond = self._expr(node.test, narrowed)
        if cond.type != BOOL:
            raise self.error("an if condition must be a comparison or a bool, not a number", node.test)
        if cond.kind != HOST:
            tensors = sorted({n.id for n in ast.walk(node.test)
                              if isinstance(n, ast.Name) and n.id in self.names
                              and self.names[n.id].kind != HOST})
            raise self.error("an if condition must not depend on tensors (it reads "
                             + ", ".join(f"'{t}'" for t in tensors)
                             + "); use where(cond, a, b) for element-wise choices", node.test)
        not_none, is_none = _none_tests(node.test)
        before = dict(self.names)
        body = self._statements(node.body, text, narrowed | not_none)
        after_body = self.names
        self.names = dict(before)
        orelse = self._statements(node.orelse, text, narrowed | is_none) if node.orelse else []
        after_else = self.names
        merged = {}
        for name in set(after_body) | set(after_else):
            a, b = after_body.get(name), after_else.get(name)
            if a is None or b is None:
                info = a or b
                merged[name] = replace(info, maybe_unbound_at=node.lineno)
            elif a.type != b.type:
                raise self.error(f"'{name}' is a {a.type} in one branch and a {b.type} in the other", node)
            else:
                kind = join_kinds(a.kind, b.kind)
                conflict = a.shape_conflict or b.shape_conflict
                shape_a, shape_b = _name_shape(a), _name_shape(b)
                if not conflict and shape_a != shape_b and None not in (shape_a, shape_b):
                    conflict = (f"'{name}' has shape {shape_text(shape_a)} in one branch of the if at "
                                f"update line {node.lineno} and {shape_text(shape_b)} in the other")
                merged[name] = replace(
                    a, kind=kind, rebound=a.rebound or b.rebound, shape=shape_a, shape_conflict=conflict,
                    maybe_unbound_at=a.maybe_unbound_at if a.maybe_unbound_at is not None else b.maybe_unbound_at)
        self.names = merged
        header = (ast.get_source_segment(text, node.test) or "")
        return If(cond.expr, body, orelse, header, self._loc(node.lineno, node.col_offset))

    def _for(self, node, text, narrowed):
        """`for _ in range(N):` with a literal N: the body is checked twice (the second pass
        sees the first one's results, so a name whose shape changes between iterations is
        caught) and kept once; analysis unrolls it."""
        if not (isinstance(node.target, ast.Name) and node.target.id == "_"):
            raise self.error("a loop is written 'for _ in range(N):' (the loop variable cannot be read)",
                             node.target)
        it = node.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and len(it.args) == 1 and not it.keywords):
            raise self.error("a loop runs over range(N) with one argument N", it)
        count = it.args[0]
        counted = isinstance(count, ast.Name) and count.id in self.names
        if counted:
            info = self.names[count.id]
            if info.role != "hyperparameter" or info.int_range is None \
                    or not (0 <= info.int_range[0] and info.int_range[1] <= MAX_LOOP_HYPERPARAMETER):
                raise self.error(f"the count of a loop must be an integer literal from 1 to {MAX_LOOP_COUNT}, or an "
                                 f"int hyperparameter whose range lies within [0, {MAX_LOOP_HYPERPARAMETER}]", count)
        elif not (isinstance(count, ast.Constant) and type(count.value) is int
                  and 1 <= count.value <= MAX_LOOP_COUNT):
            raise self.error(f"the count of a loop must be an integer literal from 1 to {MAX_LOOP_COUNT} "
                             "(it is unrolled when the code is generated), or an int hyperparameter", count)
        if node.orelse:
            raise self.error("a loop cannot have an else block", node.orelse[0])
        for stmt in node.body:
            if not isinstance(stmt, (ast.Assign, ast.AugAssign)):
                raise self.error("a loop body holds only assignments (no if, no nested loop)", stmt)
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                info = self.names.get(getattr(target, "id", None))
                if info is not None and (info.role == "state" or target.id == "weight"):
                    raise self.error(f"a loop cannot assign '{target.id}': assign the weight and states "
                                     "after the loop", target)
        errors = len(self.errors) if self.errors is not None else 0
        before = dict(self.names)
        body = self._statements(node.body, text, narrowed)
        if self.errors is None or len(self.errors) == errors:
            first = {stmt.target: (self.names[stmt.target].kind, _name_shape(self.names[stmt.target]))
                     for stmt in body}
            body = self._statements(node.body, text, narrowed)
            for stmt in body:
                info = self.names[stmt.target]
                if first.get(stmt.target, (info.kind, _name_shape(info))) != (info.kind, _name_shape(info)):
                    raise self.error(f"'{stmt.target}' changes its shape from one iteration of the loop "
                                     "to the next", node)
        if counted:   # repeated at run time: the body computes arrays only, and what it binds
            for stmt in body:   # for the first time is undefined after zero iterations
                if stmt.kind == HOST:
                    raise self.error(f"'{stmt.target}': a loop counted by a hyperparameter computes arrays only "
                                     "(compute scalars before the loop)", node)
                if stmt.target not in before and not self.names[stmt.target].shape_conflict:
                    info = self.names[stmt.target]
                    self.names[stmt.target] = Name(
                        info.name, info.kind, info.type, info.role, shape=info.shape,
                        shape_conflict=f"'{stmt.target}' is first assigned inside the loop at update line "
                                       f"{node.lineno}, which may run zero times")
            header = f"for _ in range({count.id})"
            return Loop(count.id, body, header, self._loc(node.lineno, node.col_offset))
        header = f"for _ in range({count.value})"
        return Loop(count.value, body, header, self._loc(node.lineno, node.col_offset))

    # -- shapes ------------------------------------------------------------
    def _shape(self, expr, node):
        """The symbolic (rows, cols) shape of an array value; None for host values. Checks
        matrix products and broadcasting, raising at `node`."""
        if not hasattr(self, "_shapes"):
            self._shapes = {}
        key = (expr, tuple(sorted((n, _name_shape(i)) for n, i in self.names.items()
                                  if n in {s.name for s in expr.free_symbols})))
        if key in self._shapes:
            return self._shapes[key]
        shape = self._compute_shape(expr, node)
        self._shapes[key] = shape
        return shape

    def _compute_shape(self, expr, node):
        if isinstance(expr, sympy.Symbol):
            info = self.names.get(expr.name)
            return None if info is None else _name_shape(info)
        if not expr.args or isinstance(expr, IsNone):
            return None
        args = [self._shape(a, node) for a in expr.args]
        if isinstance(expr, (Solve, SolveRight)):
            square, other = (args[0], args[1]) if isinstance(expr, Solve) else (args[1], args[0])
            if square is not None and other is not None \
                    and square[0] != (other[0] if isinstance(expr, Solve) else other[1]):
                raise self.error(f"{'solve(a, b)' if isinstance(expr, Solve) else 'solve_right(b, a)'}: sizes "
                                 f"differ ({shape_text(square)} against {shape_text(other)})", node)
            return other
        if isinstance(expr, NormLowerBound):
            return ("1", "1")
        if isinstance(expr, WHOLE_REDUCTIONS):
            if len(args) == 2 and args[0] is not None and args[1] is not None \
                    and _broadcast(args[0], args[1]) is None:
                raise self.error(f"dot: shapes {shape_text(args[0])} and {shape_text(args[1])} do not broadcast "
                                 "(element-wise operations broadcast only 1 against a size)", node)
            return ("1", "1")
        if isinstance(expr, Normal):
            return ("rows", "cols")
        if isinstance(expr, ROW_REDUCTIONS + COL_REDUCTIONS + (Transpose,)):
            a = args[0]
            if a is None:
                return None
            return (a[0], "1") if isinstance(expr, ROW_REDUCTIONS) else ("1", a[1]) \
                if isinstance(expr, COL_REDUCTIONS) else (a[1], a[0])
        if isinstance(expr, MatMul):
            a, b = args
            if a is None or b is None:
                return None
            if a[1] != b[0]:
                raise self.error(f"matmul: inner sizes differ ({shape_text(a)} times {shape_text(b)})", node)
            return (a[0], b[1])
        shape = None
        for a in args:
            if a is None:
                continue
            if shape is None:
                shape = a
                continue
            joined = _broadcast(shape, a)
            if joined is None:
                raise self.error(f"shapes {shape_text(shape)} and {shape_text(a)} do not broadcast "
                                 "(element-wise operations broadcast only 1 against a size)", node)
            shape = joined
        return shape

    # -- expressions -------------------------------------------------------
    def _expr(self, node, narrowed=frozenset()):
        method = getattr(self, "_expr_" + type(node).__name__, None)
        if method is None:
            what = _EXPRESSION_NAMES.get(type(node), type(node).__name__)
            if isinstance(node, ast.IfExp):
                raise self.error("conditional expressions are not allowed; use where(cond, a, b)", node)
            raise self.error(f"{what} not allowed in a spec", node)
        value = method(node, narrowed)
        if value.type == NUM and not isinstance(node, (ast.Name, ast.Constant)):
            self._check_constants(value.expr, node)
        if value.kind != HOST and not isinstance(node, (ast.Name, ast.Constant)):
            self._shape(value.expr, node)
        return value

    def _check_constants(self, expr, node):
        """Every number sympy folded (here or inside a product or power) must print as a finite,
        real float64 literal of a sane magnitude."""
        numbers = [expr] if expr.is_Number else [a for a in expr.atoms(sympy.Number)]
        if expr.has(sympy.I, sympy.zoo, sympy.oo, sympy.nan):
            raise self.error("this folds to a complex, infinite or undefined constant", node)
        for number in numbers:
            if not number.is_finite or number.is_real is False:
                raise self.error("this folds to a complex, infinite or undefined constant", node)
            if number.is_Rational:
                # exact integer comparisons: p or q may be far beyond float64 ((10**15)**-64)
                p, q = abs(int(number.p)), abs(int(number.q))
                big, tiny = p > _MAX_MAGNITUDE_INT * q, 0 < p and p * _MAX_MAGNITUDE_INT < q
            else:
                big, tiny = abs(number) > MAX_MAGNITUDE, 0 < abs(number) < 1 / MAX_MAGNITUDE
            if big:
                raise self.error(f"this folds to a constant beyond the limit |x| <= {MAX_MAGNITUDE:g} "
                                 "(number magnitudes)", node)
            if tiny:
                # float64 would print it as 0 or a subnormal: the formula would not be the one written
                raise self.error(f"this folds to a nonzero constant below the limit |x| >= {1 / MAX_MAGNITUDE:g} "
                                 "(number magnitudes)", node)

    def _expr_Name(self, node, narrowed):
        if node.id in self.poisoned:
            raise Cascade(node.id)
        info = self.names.get(node.id)
        if info is None:
            known = sorted(self.names)
            close = difflib.get_close_matches(node.id, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(f"unknown name '{node.id}'{hint} (known names: {', '.join(known)})", node)
        if info.maybe_unbound_at is not None:
            raise self.error(f"'{node.id}' may be unassigned here: only one branch of the if at "
                             f"update line {info.maybe_unbound_at} assigns it", node)
        if info.shape_conflict:
            raise self.error(info.shape_conflict + ": it cannot be read here", node)
        if info.type == "list":
            raise self.error(f"'{node.id}' is a list of {len(info.elements)} numbers: read one element, "
                             f"{node.id}[0] to {node.id}[{len(info.elements) - 1}]", node)
        if info.list_of:
            raise self.error(f"unknown name '{node.id}'; did you mean "
                             f"'{info.list_of}[{info.elements[0]}]'?", node)
        optional = info.optional and node.id not in narrowed
        if info.type == "enum":
            return Value(sympy.Symbol(node.id), "enum:" + node.id, info.kind)
        symbol = sympy.Symbol(node.id)
        return Value(symbol, info.type, info.kind, optional)

    def _expr_Subscript(self, node, narrowed):
        """`betas[1]`: one element of a list hyperparameter, by a literal index."""
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.poisoned:
            raise Cascade(base.id)
        info = self.names.get(base.id) if isinstance(base, ast.Name) else None
        if info is None or info.type != "list":
            raise self.error("indexing ('a[i]') not allowed in a spec: only a list hyperparameter's "
                             "elements are read by index (betas[0])", node)
        index = node.slice
        if not (isinstance(index, ast.Constant) and type(index.value) is int):
            raise self.error(f"index {base.id}[...] with an integer literal", index)
        if not 0 <= index.value < len(info.elements):
            raise self.error(f"index {index.value} is outside '{base.id}' (elements 0 to "
                             f"{len(info.elements) - 1})", index)
        element = info.elements[index.value]
        return Value(sympy.Symbol(element), NUM, HOST)

    def _expr_Constant(self, node, narrowed):
        value = node.value
        if value is None:
            return Value(sympy.S.Zero, NONE, HOST)
        if isinstance(value, bool):
            return Value(sympy.true if value else sympy.false, BOOL, HOST)
        if isinstance(value, int):
            if abs(value) > MAX_INT_LITERAL:
                raise self.error(f"integer literal {value} is too large (at most 2**53)", node)
            return Value(sympy.Integer(value), NUM, HOST)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.error("number literal overflows to infinity", node)
            return Value(sympy.Float(value), NUM, HOST)
        if isinstance(value, str):
            return Value(StringLiteral(value), STR, HOST)
        raise self.error(f"{type(value).__name__} literals are not allowed in a spec", node)

    def _number(self, value, node, what):
        if value.type == NUM and not value.optional:
            return value
        if value.type == NUM:
            raise self.error(f"'{_name_of(node)}' may be None; use it as a clip() bound, or test "
                             f"'{_name_of(node)} is not None' in an if first", node)
        if value.type == BOOL:
            label = f"'{_name_of(node)}' is a bool" if isinstance(node, ast.Name) else "a comparison is a bool"
            raise self.error(f"{label}: it cannot be used {what} (use it in an if or in where())", node)
        if value.type.startswith("enum:"):
            raise self.error(f"'{value.type[5:]}' is an enum: compare it with one of its choices, "
                             f"it cannot be used {what}", node)
        if value.type == STR:
            raise self.error("strings are only allowed in comparisons with an enum hyperparameter", node)
        raise self.error("None is only allowed in 'x is None' / 'x is not None'", node)

    def _expr_BinOp(self, node, narrowed):
        if type(node.op) not in _BINOPS:
            raise self.error(f"operator '{type(node.op).__name__}' is not allowed "
                             "(use + - * / ** % and the language's functions)", node)
        left = self._number(self._expr(node.left, narrowed), node.left, "in arithmetic")
        right = self._number(self._expr(node.right, narrowed), node.right, "in arithmetic")
        kind = join_kinds(left.kind, right.kind)
        a, b = left.expr, right.expr
        op = type(node.op)
        if op is ast.Add:
            expr = a + b
        elif op is ast.Sub:
            expr = a - b
        elif op is ast.Mult:
            expr = a * b
        elif op is ast.Div:
            if b.is_zero:
                raise self.error("division by zero", node.right)
            expr = a / b
        elif op is ast.Mod:
            if kind != HOST:
                raise self.error("'%' applies to scalars (hyperparameters, t, ...), not to tensors", node)
            if b.is_zero:
                raise self.error("modulo by zero", node.right)
            expr = sympy.Mod(a, b)
        else:
            if isinstance(b, sympy.Number) and abs(float(b)) > MAX_EXPONENT:
                raise self.error(f"exponent {b} is too large (|exponent| <= {MAX_EXPONENT})", node.right)
            if isinstance(a, sympy.Number) and a.is_zero and isinstance(b, sympy.Number) and b < 0:
                raise self.error("division by zero (0 to a negative power)", node)
            expr = a ** b
        return Value(expr, NUM, kind)

    def _expr_UnaryOp(self, node, narrowed):
        operand = self._expr(node.operand, narrowed)
        if isinstance(node.op, ast.Not):
            if operand.type != BOOL:
                raise self.error("'not' needs a bool or a comparison", node)
            return Value(sympy.Not(operand.expr), BOOL, operand.kind)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._number(operand, node.operand, "in arithmetic")
            return Value(-operand.expr if isinstance(node.op, ast.USub) else operand.expr, NUM, operand.kind)
        raise self.error("operator '~' is not allowed", node)

    def _expr_BoolOp(self, node, narrowed):
        values = [self._expr(v, narrowed) for v in node.values]
        word = "and" if isinstance(node.op, ast.And) else "or"
        for v, sub in zip(values, node.values):
            if v.type != BOOL:
                raise self.error(f"'{word}' needs bools or comparisons on both sides", sub)
        fn = sympy.And if word == "and" else sympy.Or
        return Value(fn(*[v.expr for v in values]), BOOL, join_kinds(*[v.kind for v in values]))

    def _expr_Compare(self, node, narrowed):
        if len(node.ops) != 1:
            raise self.error("chained comparisons are not allowed; write (a < b) and (b < c)", node)
        op, right_node = node.ops[0], node.comparators[0]
        if isinstance(op, (ast.Is, ast.IsNot)):
            return self._is_none(node, op, right_node, narrowed)
        if type(op) not in _COMPARE:
            raise self.error(f"comparison '{type(op).__name__}' is not allowed", node)
        left = self._expr(node.left, narrowed)
        right = self._expr(right_node, narrowed)
        enum = left if left.type.startswith("enum:") else right if right.type.startswith("enum:") else None
        if enum is not None:
            return self._enum_compare(node, op, left, right, enum)
        if left.type == BOOL and right.type == BOOL and isinstance(op, (ast.Eq, ast.NotEq)):
            expr = sympy.Equivalent(left.expr, right.expr)
            return Value(expr if isinstance(op, ast.Eq) else sympy.Not(expr), BOOL,
                         join_kinds(left.kind, right.kind))
        left = self._number(left, node.left, "in a comparison")
        right = self._number(right, right_node, "in a comparison")
        expr = _COMPARE[type(op)](left.expr, right.expr)
        return Value(expr, BOOL, join_kinds(left.kind, right.kind))

    def _enum_compare(self, node, op, left, right, enum):
        other = right if enum is left else left
        hp = enum.type[5:]
        if not isinstance(op, (ast.Eq, ast.NotEq)):
            raise self.error(f"'{hp}' is an enum: only == and != apply to it", node)
        if other.type != STR:
            raise self.error(f"'{hp}' is an enum: compare it with a string, one of "
                             + ", ".join(repr(c) for c in self.names[hp].choices), node)
        value = other.expr.value
        if value not in self.names[hp].choices:
            raise self.error(f"'{value}' is not a choice of '{hp}' (choices: "
                             + ", ".join(repr(c) for c in self.names[hp].choices) + ")", node)
        expr = sympy.Eq(enum.expr, other.expr)
        return Value(expr if isinstance(op, ast.Eq) else sympy.Not(expr), BOOL, HOST)

    def _is_none(self, node, op, right_node, narrowed):
        if not (isinstance(right_node, ast.Constant) and right_node.value is None):
            raise self.error("'is' is only allowed as 'x is None' or 'x is not None'", node)
        if not isinstance(node.left, ast.Name):
            raise self.error("'is None' applies to an optional hyperparameter name", node.left)
        info = self.names.get(node.left.id)
        if info is None:
            self._expr(node.left, narrowed)  # raises "unknown name"
        if not info.optional:
            raise self.error(f"'{node.left.id}' is never None (declare it optional = true)", node.left)
        expr = IsNone(sympy.Symbol(node.left.id))
        return Value(expr if isinstance(op, ast.Is) else sympy.Not(expr), BOOL, HOST)

    def _expr_Call(self, node, narrowed):
        if not isinstance(node.func, ast.Name):
            raise self.error("only the language's functions can be called ("
                             + ", ".join(sorted(FUNCTIONS)) + ")", node)
        name = node.func.id
        if name not in FUNCTIONS:
            if name in self.names:
                raise self.error(f"'{name}' is not a function", node.func)
            if name in _ALIASES:
                hint = f"; {_ALIASES[name]}"
            else:
                close = difflib.get_close_matches(name, sorted(FUNCTIONS), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(f"unknown function '{name}'{hint} (functions: "
                             + ", ".join(sorted(FUNCTIONS)) + ")", node.func)
        if node.keywords:
            raise self.error(f"{name}() takes positional arguments only", node)
        cls, arities = FUNCTIONS[name]
        if len(node.args) not in arities:
            expected = " or ".join(str(a) for a in arities)
            hint = f"; {_ARITY_HINTS[name]}" if name in _ARITY_HINTS else ""
            raise self.error(f"{name}() takes {expected} argument{'s' if arities[-1] > 1 else ''}, "
                             f"got {len(node.args)}{hint}", node)
        return getattr(self, "_call_" + name, self._call_numeric)(cls, name, node, narrowed)

    def _call_numeric(self, cls, name, node, narrowed):
        args = [self._number(self._expr(a, narrowed), a, f"as an argument of {name}()") for a in node.args]
        return Value(cls(*[a.expr for a in args]), NUM, join_kinds(*[a.kind for a in args]))

    def _call_clip(self, cls, name, node, narrowed):
        x = self._number(self._expr(node.args[0], narrowed), node.args[0], "as the value of clip()")
        bounds = []
        for arg in node.args[1:]:
            value = self._expr(arg, narrowed)
            if value.optional and value.type == NUM:
                bounds.append(value)  # None means "no bound", decided when specialised
                continue
            bound = self._number(value, arg, "as a bound of clip()")
            if bound.kind != HOST:
                raise self.error("clip() bounds must be scalars, not tensors", arg)
            bounds.append(bound)
        return Value(cls(x.expr, *[b.expr for b in bounds]), NUM, x.kind)

    def _call_where(self, cls, name, node, narrowed):
        cond = self._expr(node.args[0], narrowed)
        if cond.type != BOOL:
            raise self.error("the first argument of where() must be a comparison or a bool", node.args[0])
        a = self._number(self._expr(node.args[1], narrowed), node.args[1], "as a branch of where()")
        b = self._number(self._expr(node.args[2], narrowed), node.args[2], "as a branch of where()")
        return Value(cls(cond.expr, a.expr, b.expr), NUM, join_kinds(cond.kind, a.kind, b.kind))

    def _call_isfinite(self, cls, name, node, narrowed):
        x = self._number(self._expr(node.args[0], narrowed), node.args[0], "as an argument of isfinite()")
        return Value(cls(x.expr), BOOL, x.kind)

    def _folded_kind(self, expr, kind):
        """The kind of a value of kind `kind` once sympy has folded it: `grad - grad` is 0, a
        host value, though written with tensors. (Folding only drops terms: never more than
        `kind`.)"""
        from .analysis import expression_kind
        folded = expression_kind(expr, {name: info.kind for name, info in self.names.items()})
        return folded if KIND_ORDER[folded] < KIND_ORDER[kind] else kind

    def _reduced(self, name, node, arg, narrowed, rows=False):
        """The operand of a reduction: a number that depends on a tensor (for a row reduction,
        on more than one value per row)."""
        x = self._number(self._expr(arg, narrowed), arg, f"as an argument of {name}()")
        kind = self._folded_kind(x.expr, x.kind)
        folded = f" (it simplifies to {sympy.sstr(x.expr)})" if kind != x.kind else ""
        if kind == HOST:
            raise self.error(f"{name}() reduces a tensor; its argument does not depend on one{folded}", node)
        if kind == DEVICE:
            raise self.error(f"{name}() reduces a tensor; its argument is one value per tensor "
                             f"(a reduction's result or a scalar state), not a tensor{folded}", node)
        if rows and kind == ROWS:
            raise self.error(f"{name}() reduces each row; its argument already has one value per row{folded}", node)
        return Value(x.expr, x.type, kind, x.optional)

    def _call_whole(self, cls, name, node, narrowed):
        """norm, sum, max, min: one value per tensor (a device scalar)."""
        x = self._reduced(name, node, node.args[0], narrowed)
        return Value(cls(x.expr), NUM, DEVICE)

    _call_norm = _call_sum = _call_max = _call_min = _call_whole

    def _call_dot(self, cls, name, node, narrowed):
        a = self._number(self._expr(node.args[0], narrowed), node.args[0], "as an argument of dot()")
        b = self._number(self._expr(node.args[1], narrowed), node.args[1], "as an argument of dot()")
        if join_kinds(a.kind, b.kind) in (HOST, DEVICE):
            raise self.error("dot() reduces a tensor; neither argument depends on one", node)
        if self._folded_kind(a.expr * b.expr, join_kinds(a.kind, b.kind)) in (HOST, DEVICE):
            raise self.error("dot() reduces a tensor; the product of its arguments simplifies to "
                             f"{sympy.sstr(a.expr * b.expr)}, which does not depend on one", node)
        return Value(cls(a.expr, b.expr), NUM, DEVICE)

    def _call_rows(self, cls, name, node, narrowed):
        """row_mean, row_sum, row_max, row_min: one value per row."""
        x = self._reduced(name, node, node.args[0], narrowed, rows=True)
        return Value(cls(x.expr), NUM, ROWS if x.kind == TENSOR else DEVICE)

    _call_row_mean = _call_row_sum = _call_row_max = _call_row_min = _call_rows

    def _matrix_argument(self, name, node, arg, narrowed):
        x = self._number(self._expr(arg, narrowed), arg, f"as an argument of {name}()")
        if x.kind == HOST:
            raise self.error(f"{name}() takes a matrix; its argument does not depend on a tensor", arg)
        return x

    def _call_cols(self, cls, name, node, narrowed):
        """col_mean, col_sum, col_max, col_min: one value per column of the matrix view."""
        x = self._matrix_argument(name, node, node.args[0], narrowed)
        if self._folded_kind(x.expr, x.kind) == HOST:
            raise self.error(f"{name}() takes a matrix; its argument simplifies to {sympy.sstr(x.expr)}, "
                             "which does not depend on a tensor", node.args[0])
        return Value(cls(x.expr), NUM, DEVICE if x.kind in (ROWS, DEVICE) else COLS)

    _call_col_mean = _call_col_sum = _call_col_max = _call_col_min = _call_cols

    def _call_group(self, cls, name, node, narrowed):
        """group_sum, group_max, group_min: one host value per step from one value per tensor
        of the param group (codegen/group_stage.py splits the update at them)."""
        arg = node.args[0]
        x = self._number(self._expr(arg, narrowed), arg, f"as an argument of {name}()")
        kind = self._folded_kind(x.expr, x.kind)
        if kind == HOST:
            raise self.error(f"{name}() combines one value per parameter of the group; its argument does "
                             "not depend on a parameter (a host value is the same for every one)", arg)
        if kind != DEVICE:
            hint = "sum(x), dot(a, b), max(x) or norm(x)**2" if kind == TENSOR else "sum(x) of it"
            raise self.error(f"{name}() combines one value per parameter; its argument is a {kind} value: "
                             f"reduce it over the tensor first ({hint})", arg)
        return Value(cls(x.expr), NUM, HOST)

    _call_group_sum = _call_group_max = _call_group_min = _call_group

    def _call_group_norm(self, cls, name, node, narrowed):
        """group_norm(x): the L2 norm of x over every parameter of the group, as
        sqrt(group_sum(sum(x * x))) (one sum of squares per tensor, added in float64)."""
        arg = node.args[0]
        x = self._reduced(name, node, arg, narrowed)
        return Value(Sqrt(GroupSum(TensorSum(x.expr * x.expr))), NUM, HOST)

    def _call_transpose(self, cls, name, node, narrowed):
        x = self._matrix_argument(name, node, node.args[0], narrowed)
        return Value(Transpose(x.expr), NUM, {ROWS: COLS, COLS: ROWS}.get(x.kind, x.kind))

    def _call_matmul(self, cls, name, node, narrowed):
        a = self._matrix_argument(name, node, node.args[0], narrowed)
        b = self._matrix_argument(name, node, node.args[1], narrowed)
        return Value(MatMul(a.expr, b.expr), NUM, TENSOR)

    def _square_argument(self, name, node, narrowed, k=0):
        """The matrix argument k of inverse_root(), eigh(), qr(), triu(), norm_lower_bound(),
        solve() and solve_right(): square in the matrix view."""
        a = self._matrix_argument(name, node, node.args[k], narrowed)
        shape = self._shape(a.expr, node.args[k])
        if shape is None or shape[0] != shape[1] or shape[0] == "1":
            what = "is not a matrix" if shape is None or shape == ("1", "1") else f"has shape {shape_text(shape)}"
            raise self.error(f"{name}() takes a square matrix, such as matmul(g, transpose(g)) or a "
                             f"state of shape \"rows_by_rows\" or \"cols_by_cols\"; its argument {what}",
                             node.args[k])
        return a

    def _call_inverse_root(self, cls, name, node, narrowed):
        a = self._square_argument(name, node, narrowed)
        p = self._number(self._expr(node.args[1], narrowed), node.args[1], "as the root of inverse_root()")
        if p.kind != HOST or p.optional:
            raise self.error("inverse_root(a, p): p is one number for the whole step (a hyperparameter, "
                             "a constant or a host value that is never None)", node.args[1])
        return Value(cls(a.expr, p.expr), NUM, TENSOR)

    def _call_eigh(self, cls, name, node, narrowed):
        a = self._square_argument(name, node, narrowed)
        return Value(cls(a.expr), NUM, TENSOR)

    _call_qr = _call_triu = _call_eigh

    def _call_norm_lower_bound(self, cls, name, node, narrowed):
        a = self._square_argument(name, node, narrowed)
        return Value(cls(a.expr), NUM, DEVICE)

    def _call_solve(self, cls, name, node, narrowed):
        """solve(a, b) = a^-1 b and solve_right(b, a) = b a^-1: `a` square, `b` a matrix whose
        rows (columns for solve_right) match a's size."""
        square = 0 if cls is Solve else 1
        a = self._square_argument(name, node, narrowed, square)
        b = self._matrix_argument(name, node, node.args[1 - square], narrowed)
        expr = cls(a.expr, b.expr) if cls is Solve else cls(b.expr, a.expr)
        self._shape(expr, node)         # the sizes, checked at the call
        return Value(expr, NUM, TENSOR)

    _call_solve_right = _call_solve

    def _call_sort(self, cls, name, node, narrowed):
        """sort_rows(x, key), sort_cols(x, key): x a matrix, key one value per row (rows) or
        per column (cols) of it."""
        x = self._matrix_argument(name, node, node.args[0], narrowed)
        key = self._matrix_argument(name, node, node.args[1], narrowed)
        shape, key_shape = self._shape(x.expr, node.args[0]), self._shape(key.expr, node.args[1])
        if shape is None or shape == ("1", "1"):
            raise self.error(f"{name}() reorders a matrix; its first argument is not one", node.args[0])
        rows = cls is SortRows
        wanted = (shape[0], "1") if rows else ("1", shape[1])
        if key_shape != wanted:
            what = "row" if rows else "column"
            raise self.error(f"{name}(x, key): key is one value per {what} of x, shape {shape_text(wanted)}; "
                             f"it has shape {shape_text(key_shape) if key_shape else '(1, 1)'}", node.args[1])
        return Value(cls(x.expr, key.expr), NUM, TENSOR)

    _call_sort_rows = _call_sort_cols = _call_sort

    def _call_normal(self, cls, name, node, narrowed):
        seed = self.names.get("seed")
        if seed is None or seed.role != "hyperparameter" or seed.type != NUM:
            raise self.error("normal() needs an int hyperparameter 'seed' that makes its noise reproducible", node)
        args = [self._number(self._expr(a, narrowed), a, "as an argument of normal()") for a in node.args]
        for arg, sub in zip(args, node.args):
            if arg.kind != HOST:
                raise self.error("normal() takes scalar mean and std", sub)
        self._normal_calls += 1
        return Value(Normal(args[0].expr, args[1].expr, sympy.Integer(self._normal_calls)), NUM, TENSOR)


# Names other array libraries give to the language's reductions, with what to write instead
_ALIASES = {
    "mean": "a whole-tensor mean is sum(x) / numel; per row or column: row_mean(x), col_mean(x)",
    "average": "a whole-tensor mean is sum(x) / numel; per row or column: row_mean(x), col_mean(x)",
    "amax": "did you mean 'max'?",
    "amin": "did you mean 'min'?",
    "vdot": "did you mean 'dot'?",
    "inner": "did you mean 'dot'?",
    "reduce_sum": "did you mean 'sum'?",
    "reduce_max": "did you mean 'max'?",
    "reduce_min": "did you mean 'min'?",
    "fmax": "did you mean 'maximum'?",
    "fmin": "did you mean 'minimum'?",
}

# Arity mistakes with a likely meaning
_ARITY_HINTS = {
    "max": "max(x) is the largest element of a tensor; the element-wise maximum of two values is maximum(a, b)",
    "min": "min(x) is the smallest element of a tensor; the element-wise minimum of two values is minimum(a, b)",
    "sum": "sum(x) adds every element of one tensor; sum(a * b) or dot(a, b) adds products",
    "dot": "dot(a, b) is the sum of every element of a * b",
}


def _name_shape(info):
    if info.kind == HOST or info.type != NUM:
        return None
    return info.shape or KIND_SHAPES[info.kind]


def _broadcast(a, b):
    """The shape of an element-wise operation on shapes a and b, or None."""
    out = []
    for x, y in zip(a, b):
        if x == y or y == "1":
            out.append(x)
        elif x == "1":
            out.append(y)
        else:
            return None
    return tuple(out)


def _lines(text):
    """Lines as Python's tokenizer counts them (not str.splitlines: U+2028, form feeds and
    the like do not end a line of Python)."""
    return re.split(r"\r\n|\r|\n", text)


def _name_of(node):
    return node.id if isinstance(node, ast.Name) else ast.unparse(node)


def _none_tests(test):
    """Names known not to be None in an if's body and in its else branch."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.left, ast.Name) \
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None:
        if isinstance(test.ops[0], ast.IsNot):
            return frozenset({test.left.id}), frozenset()
        if isinstance(test.ops[0], ast.Is):
            return frozenset(), frozenset({test.left.id})
    return frozenset(), frozenset()
