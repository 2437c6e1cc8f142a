"""The IR of one optimizer rule: its symbol table and its statements.

A `Rule` is what the parser builds from a spec: hyperparameters, states and the
update block as an ordered list of statements whose right-hand sides are sympy
expressions over plain names (a name may be rebound; `analysis` turns the
statements into straight-line code per variant).
"""
import math
from dataclasses import dataclass, field

import sympy

# Value kinds, ordered by how far they spread when combined.
HOST = "host"        # a float64 scalar computed once per step per parameter
DEVICE = "device"    # a scalar produced by a reduction: stays with the arrays
ROWS = "rows"        # one value per row, shape (rows, 1)
# States of one square matrix per matrix of the view (Shampoo's preconditioners), by their
# symbolic shape: the kind stays TENSOR, the parser and the matrix stages read the shape
SQUARE_SHAPES = {"rows_by_rows": ("rows", "rows"), "cols_by_cols": ("cols", "cols")}
COLS = "cols"        # one value per column, shape (1, cols) (matrix rules)
TENSOR = "tensor"    # one value per element (or a matrix of another shape: see `shape`)
KIND_ORDER = {HOST: 0, DEVICE: 1, ROWS: 2, COLS: 2, TENSOR: 3}

# Matrix views (the `matrix` key): how a parameter of any rank is seen as (rows, cols)
MATRIX_VIEWS = ("first_rest", "last_two")


def join_kinds(*kinds):
    if ROWS in kinds and COLS in kinds:   # (rows, 1) against (1, cols) broadcasts to the whole matrix
        return TENSOR
    return max(kinds, key=KIND_ORDER.__getitem__, default=HOST)


@dataclass(frozen=True)
class Location:
    path: str
    line: int | None = None
    col: int | None = None


@dataclass(frozen=True)
class Range:
    """A closed/open interval such as [0, 1) or (0, inf]."""

    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    def __contains__(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        above = value >= self.lo if self.lo_closed else value > self.lo
        below = value <= self.hi if self.hi_closed else value < self.hi
        return above and below

    def __str__(self):
        def fmt(x):
            if math.isinf(x):
                return "-inf" if x < 0 else "inf"
            return repr(int(x)) if float(x).is_integer() else repr(x)
        return ("[" if self.lo_closed else "(") + f"{fmt(self.lo)}, {fmt(self.hi)}" + ("]" if self.hi_closed else ")")


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: str                    # "float" | "int" | "bool" | "enum"
    default: object              # None when optional without a default
    optional: bool = False       # None is an accepted value
    range: Range | None = None
    choices: tuple = ()
    doc: str = ""
    loc: Location | None = None
    keyword: str = ""            # params-style API: hyperparameters sharing one form a tuple (betas)
    list: str = ""               # an element of this list hyperparameter (`betas[0]` is `betas_0`)


@dataclass(frozen=True)
class State:
    name: str
    init: object                 # "zeros" | "weight" | a float (scalar states)
    dtype: str = "weight"        # "weight" (the weight's dtype) | "float32"
    shape: str = "weight"        # "weight" | "rows" | "cols" | "scalar" | "group" (one float64 per param group)
                                 # | "rows_by_rows" | "cols_by_cols" (a square matrix per matrix of the view)
    when: object = None          # sympy boolean over hyperparameters, or None (always)
    when_text: str = ""
    doc: str = ""
    loc: Location | None = None
    device: bool = False         # a scalar computed from a reduction: kept with the arrays
    quantize: str = ""           # "signed" | "unsigned": may be stored quantized (8-bit, bfloat16); "" never

    @property
    def kind(self):
        if self.device:
            return DEVICE
        return {"weight": TENSOR, "rows": ROWS, "cols": COLS, "scalar": HOST, "group": HOST,
                "rows_by_rows": TENSOR, "cols_by_cols": TENSOR}[self.shape]

    @property
    def matrix_shape(self):
        """The symbolic shape of a square state in the matrix view, else None."""
        return SQUARE_SHAPES.get(self.shape)


@dataclass
class Assign:
    target: str
    expr: sympy.Basic
    kind: str
    text: str
    loc: Location


@dataclass
class If:
    cond: sympy.Basic
    body: list
    orelse: list
    text: str
    loc: Location


@dataclass
class Loop:
    """`for _ in range(count):`: the body runs `count` times; no `if` and no state assignment
    inside. A literal count is unrolled when the rule is specialised; a count that names an
    int hyperparameter stays one body, repeated by the generated code (`analysis.LoopBlock`)."""

    count: object                # int, or the name of an int hyperparameter
    body: list
    text: str
    loc: Location


def walk(block):
    """Every statement of a block, depth first, `if` and loop bodies included."""
    for stmt in block:
        yield stmt
        if isinstance(stmt, If):
            yield from walk(stmt.body)
            yield from walk(stmt.orelse)
        elif isinstance(stmt, Loop):
            yield from walk(stmt.body)


@dataclass(frozen=True)
class Builtin:
    name: str
    kind: str
    doc: str
    optional: bool = False
    assignable: bool = False


# Names every rule can read (DESIGN.md, "A spec").
BUILTINS = {
    b.name: b for b in (
        Builtin("weight", TENSOR, "the parameter, updated in place", assignable=True),
        Builtin("grad", TENSOR, "the gradient (never modified: rebinding makes a local copy)", assignable=True),
        Builtin("lr", HOST, "this parameter's learning rate (scheduler and lr_mult applied)", assignable=True),
        Builtin("initial_lr", HOST, "this parameter's learning rate when the optimizer was created (before "
                "any scheduler or change of the rate; lr_mult applied)"),
        Builtin("wd", HOST, "this parameter's weight decay (wd_mult applied)", assignable=True),
        Builtin("t", HOST, "this parameter's update count; the first step is begin_num_update + 1"),
        Builtin("rescale_grad", HOST, "gradient scale factor"),
        Builtin("clip_gradient", HOST, "gradient clipping bound, or None", optional=True),
        Builtin("ndim", HOST, "the parameter's number of axes (0 for a scalar)"),
        Builtin("numel", HOST, "the parameter's number of elements"),
        Builtin("rows", HOST, "rows of the parameter's matrix view (see `matrix`)"),
        Builtin("cols", HOST, "columns of the parameter's matrix view (see `matrix`)"),
        Builtin("machine_epsilon", HOST, "the weight dtype's machine epsilon (finfo(dtype).eps)"),
    )
}

# Built-in inputs that depend only on the parameter's shape and dtype: they may also appear
# in a state's `when` (states_present takes the parameter).
SHAPE_INPUTS = ("ndim", "numel", "rows", "cols", "machine_epsilon")

# Base-class constructor arguments a spec may give its own default (MXNet 2.0 signatures).
OPTIONS = {
    "use_fused_step": bool,
    "aggregate_num": int,
    "lazy_update": bool,
    "multi_precision": bool,
    "wd": float,                 # a class's own default weight decay (torch's AdamW: 0.01)
}


@dataclass
class Rule:
    """One optimizer rule as parsed from its spec."""

    name: str                    # class name, e.g. "Adam"
    key: str                     # registry key, e.g. "adam"
    flavor: str
    summary: str
    references: tuple
    notes: tuple
    deviations: tuple
    learning_rate: float
    hyperparameters: tuple       # of Hyperparameter, in declaration order
    states: tuple                # of State, in declaration order
    statements: list             # of Assign / If
    update_text: str
    skip_if: object = None       # host condition: skip the whole update when true
    skip_if_text: str = ""
    requires: object = None      # host condition every step must satisfy (else ValueError)
    requires_text: str = ""
    name_flags: dict = field(default_factory=dict)   # bool input -> name suffixes that set it
    decay_suffixes: tuple | None = None   # names that keep wd (others get wd_mult 0); None: flavor's rule
    lr_before_count: bool = False         # read lr/wd before counting the step (MXNet 1.x LBSGD)
    sparse_update: str = "standard"       # row-sparse gradients without a lazy_update option
    options: dict = field(default_factory=dict)
    path: str = ""
    source: str = ""             # the spec file text (for `optforge show`)
    extends: str = ""
    matrix: str = ""                      # "first_rest" | "last_two" for matrix rules, else ""
    modes: dict = field(default_factory=dict)   # "train"/"eval" -> (statements, text): weight rewrites

    def hyperparameter(self, name):
        for hp in self.hyperparameters:
            if hp.name == name:
                return hp
        return None

    def state(self, name):
        for st in self.states:
            if st.name == name:
                return st
        return None
