"""Random valid specs over the whole grammar, for the differential verifier.

`generate(seed)` returns the TOML text of one spec, a deterministic function of the seed.
Each spec is one of the rule kinds the language has, with its statements drawn at random:

- element-wise: chains of every element-wise function (arithmetic, small powers, sqrt, exp,
  log, abs, sign, maximum, minimum, both clips, where) over the gradient, the weight, states
  of every init and dtype (read-only copies of the initial weight and scalar states that
  start from a hyperparameter too), hyperparameters of every type (float, int, bool, enum,
  optional, lists read by index), the built-in inputs (lr, initial_lr, t, ...), `if`/`else` on host conditions (hyperparameters, t, host scalar states),
  literal loops, states that exist under a `when`, and noise;
- reductions: whole-tensor reductions (norm, sum, dot, max, min) read before and after
  the states they feed, per-tensor scalar states (device scalars) read before the pass that
  rewrites them, row reductions (row_mean, row_sum, row_max, row_min) and row states;
- group values, in a share (`GROUPED`) of the element-wise, reduction and row rules:
  group_sum, group_max and group_min over whole-tensor reductions (or values computed from
  one) and group_norm, reading tensor states before and after they are rewritten; group
  states from a number or a hyperparameter, read by the per-element code, by `if`
  conditions and, through their old value, by the partials (`Builder.group_pieces`);
- matrix rules: products, transposes, row and column reductions (means, sums, maxima,
  minima), whole-tensor ones, row and column states, square states (rows_by_rows,
  cols_by_cols) with inverse roots refreshed on host conditions, eigenvectors and sorted
  power iterations (qr, sort_rows, sort_cols), triangular factors fitted to random probes
  (triu, solve, solve_right, norm_lower_bound, normal()), scalar
  states, loops counted by an int hyperparameter, both matrix views, booleans between
  stages;
- modes: `[modes]` train/eval weight switches.

Values stay bounded whatever the data: every state is a convex mix of its old value and a
squashed term (`x / (1 + abs(x))`, clipped or bounded functions), and the weight moves by
lr times a bounded term, so a disagreement the verifier reports is a real one, not
overflow. Every generated spec must load: `tests/test_verify.py` runs a seeded batch.
"""
import random

UNARY = ("sqrt(abs({x}))", "exp(-abs({x}))", "log(1 + abs({x}))", "abs({x})", "sign({x})", "({x}) ** 2",
         "({x}) ** 3 / (1 + ({x}) ** 2)", "clip({x}, 0.7)", "clip({x}, -0.5, 0.9)", "-({x})")
BINARY = ("{a} + {b}", "{a} - {b}", "{a} * {b}", "{a} / (abs({b}) + 1)", "maximum({a}, {b})", "minimum({a}, {b})",
          "where({a} > {b}, {a}, {b})", "where({a} < 0, {b}, {a})")


class Builder:
    """One spec's hyperparameters, states and statements, drawn from `rng`."""

    def __init__(self, rng, name):
        self.rng = rng
        self.name = name
        self.hyper = {}         # name -> TOML value text
        self.states = {}        # name -> TOML value text
        self.lines = []         # update block lines
        self.tensors = ["grad", "weight"]
        self.host = ["lr", "lr / initial_lr"]      # host values readable in expressions
        self.fractions = []     # host values in [0, 1)
        self.extra = []         # top-level keys before `update`
        self.tables = []        # extra tables after [states]
        self.counter = 0

    # -- names ------------------------------------------------------------------------
    def fresh(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def fraction(self):
        """A hyperparameter in [0, 1) (a decay rate), or an element of a list of them."""
        if self.rng.random() < 0.2:
            name = self.fresh("bl")
            values = [self.rng.choice([0.5, 0.8, 0.9, 0.95]) for _ in range(self.rng.randint(2, 3))]
            self.hyper[name] = f'{{ default = [{", ".join(map(str, values))}], range = "[0, 1)" }}'
            elements = [f"{name}[{k}]" for k in range(len(values))]
            self.fractions.extend(elements)
            self.host.extend(elements)
            return self.rng.choice(elements)
        name = self.fresh("b")
        self.hyper[name] = f'{{ default = {self.rng.choice([0.5, 0.8, 0.9, 0.95])}, range = "[0, 1)" }}'
        self.fractions.append(name)
        self.host.append(name)
        return name

    def positive(self):
        name = self.fresh("c")
        self.hyper[name] = f'{{ default = {self.rng.choice([0.1, 0.5, 1.0, 2.0])}, range = "(0, 10]" }}'
        self.host.append(name)
        return name

    # -- expressions ------------------------------------------------------------------
    def leaf(self):
        return self.rng.choice(self.tensors)

    def expr(self, depth=2):
        """A tensor expression of bounded depth over the readable tensors and host values."""
        r = self.rng.random()
        if depth == 0 or r < 0.2:
            x = self.leaf()
            if self.rng.random() < 0.3:
                return f"{self.rng.choice(self.host)} * {x}"
            return x
        if r < 0.5:
            return self.rng.choice(UNARY).format(x=self.expr(depth - 1))
        return "(" + self.rng.choice(BINARY).format(a=self.expr(depth - 1), b=self.expr(depth - 1)) + ")"

    def squashed(self, depth=2):
        x = self.expr(depth)
        return f"{x} / (1 + abs({x}))" if self.rng.random() < 0.7 else f"clip({x}, 1.0)"

    def assign(self, target, value, indent=""):
        self.lines.append(f"{indent}{target} = {value}")

    def local(self, indent=""):
        name = self.fresh("u")
        self.assign(name, self.squashed(), indent)
        self.tensors.append(name)
        return name

    # -- pieces -----------------------------------------------------------------------
    def gradient_line(self):
        if self.rng.random() < 0.8:
            self.assign("grad", "clip(grad * rescale_grad, clip_gradient) + wd * weight")
        else:
            self.assign("grad", "clip(grad * rescale_grad + wd * weight, clip_gradient)")

    def tensor_state(self):
        name = self.fresh("s")
        init = self.rng.choice(['"zeros"', '"weight"', '{ init = "zeros", dtype = "float32" }'])
        self.states[name] = init
        b = self.rng.choice(self.fractions) if self.fractions and self.rng.random() < 0.5 else self.fraction()
        if self.rng.random() < 0.5:      # read before it is written
            self.tensors.append(name)
        self.assign(name, f"{b} * {name} + (1 - {b}) * ({self.squashed()})")
        if name not in self.tensors:
            self.tensors.append(name)
        return name

    def host_scalar_state(self):
        name = self.fresh("h")
        if self.rng.random() < 0.3:     # starting from a hyperparameter's value
            self.states[name] = f'{{ init = "{self.positive()}", shape = "scalar" }}'
        else:
            self.states[name] = f"{{ init = {self.rng.choice([0.0, 1.0])} }}"
        b = self.fraction()
        self.host.append(name)
        self.assign(name, f"{b} * {name} + (1 - {b})")
        return name

    def anchor_state(self):
        """A read-only copy of the weight taken when the state is created (the initial point)."""
        name = self.fresh("p")
        self.states[name] = '"weight"'
        self.tensors.append(name)
        return name

    def weight_line(self, step=None):
        step = step or self.squashed()
        self.assign("weight", f"weight - lr * ({step})")

    def if_block(self):
        """An if/else on a host condition, each branch assigning the same local."""
        choices = [f"t > {self.rng.choice([4, 5, 6])}", "t % 2 == 0"]
        flag = self.fresh("f")
        self.hyper[flag] = f"{{ default = {self.rng.choice(['true', 'false'])} }}"
        choices += [flag, f"not {flag}"]
        mode = self.fresh("m")
        self.hyper[mode] = '{ default = "x", choices = ["x", "y"] }'
        choices.append(f'{mode} == "y"')
        if self.host[1:]:
            choices.append(f"{self.rng.choice(self.host[1:])} > 0.3")
        condition = self.rng.choice(choices)
        name = self.fresh("u")
        self.lines.append(f"if {condition}:")
        self.assign(name, self.squashed(), "    ")
        self.lines.append("else:")
        self.assign(name, self.squashed(), "    ")
        self.tensors.append(name)

    def optional_clip(self):
        name = self.fresh("o")
        self.hyper[name] = '{ optional = true, range = "[0, inf)" }'
        local = self.fresh("u")
        self.assign(local, f"clip({self.expr(1)}, {name})")
        self.tensors.append(local)
        if self.rng.random() < 0.5:
            self.lines.append(f"if {name} is not None:")
            self.assign(local, f"{local} * {name} / (1 + {name})", "    ")

    def loop(self):
        name = self.fresh("u")
        self.assign(name, self.squashed(1))
        self.lines.append(f"for _ in range({self.rng.choice([1, 2, 3])}):")
        self.assign(name, f"0.5 * {name} + 0.5 * ({name}) / (1 + abs({name}))", "    ")
        self.tensors.append(name)

    def when_state(self):
        b = self.fresh("k")
        self.hyper[b] = f'{{ default = {self.rng.choice([0.0, 0.9])}, range = "[0, 1)" }}'
        name = self.fresh("s")
        self.states[name] = f'{{ init = "zeros", when = "{b} != 0" }}'
        step = self.fresh("u")
        self.assign(step, self.squashed(1))
        self.lines.append(f"if {b} != 0:")
        self.assign(name, f"{b} * {name} + {step}", "    ")
        self.assign(step, f"{name} / (1 + abs({name}))", "    ")
        self.tensors.append(step)

    def noise(self):
        self.hyper["seed"] = '{ default = 0, type = "int", range = "[0, inf)" }'
        return f"normal(0, {self.rng.choice([0.01, 0.1])} * lr)"

    def whole(self, x):
        """A whole-tensor reduction of `x` (norm, sum, dot with another tensor, max, min);
        its value may be negative (written through abs() where that matters)."""
        kind = self.rng.choice(["norm", "sum", "dot", "max", "min"])
        if kind == "dot":
            return f"dot({x}, {self.rng.choice(self.tensors)})"
        return f"{kind}({x})"

    def norm_pieces(self):
        """Whole-tensor reductions read by the weight update or by states, before or after a
        device scalar state they feed; outputs that read none land in an earlier pass than
        the reduction's."""
        n = self.fresh("n")
        self.assign(n, self.whole(self.rng.choice(self.tensors)))
        pieces = [f"{self.squashed(1)} / (abs({n}) + 1)"] if self.rng.random() < 0.6 else []
        if self.rng.random() < 0.7:
            v = self.fresh("v")
            self.states[v] = f"{{ init = {self.rng.choice([0.0, 1.0])} }}"
            b = self.fraction()
            before = self.rng.random() < 0.6
            if before:     # the old value is read, by the weight or by a state of an earlier pass
                if self.rng.random() < 0.5:
                    s = self.fresh("s")
                    self.states[s] = '"zeros"'
                    self.assign(s, f"{b} * {s} + (1 - {b}) * {v} * ({self.squashed(1)})")
                    self.tensors.append(s)
                    if self.rng.random() < 0.5:     # a reduction of that state: a second pass
                        m = self.fresh("n")
                        self.assign(m, self.whole(s))
                        n = f"({n} + {m})"
                pieces.append(f"{v} * {self.squashed(1)}")
            self.assign(v, f"{b} * {v} + (1 - {b}) * {n} / (1 + abs({n}))")
            if not before:
                pieces.append(f"{v} * {self.squashed(1)}")
        if pieces and self.rng.random() < 0.4:    # a reduction of a value computed from the first
            m = self.fresh("n")
            self.assign(m, self.whole(pieces[0]))
            pieces.append(f"{self.squashed(1)} * {m} / (1 + abs({m}))")
        return pieces

    def group_pieces(self):
        """Group reductions and group states (one float64 per param group, docs/group-values.md),
        all at top level and in one stage: the reductions come first, each reading tensors
        computed so far, a tensor state read by its old value (rewritten after them) and a
        group state's old value; then the host statements that rewrite the group states from
        them; then the state read before. Nothing a reduction reads depends on a group value of
        the same step, so no draw breaks the one-stage rule."""
        rng = self.rng
        old_state = None
        if rng.random() < 0.4:      # a tensor state read by a partial before it is rewritten
            old_state = self.fresh("s")
            self.states[old_state] = rng.choice(['"zeros"', '"weight"'])
        groups = []                 # group states, read (old values) by partials and weight
        for _ in range(rng.randint(0, 2)):
            g = self.fresh("d")
            if rng.random() < 0.4:      # starting from a hyperparameter's value
                self.states[g] = f'{{ init = "{self.positive()}", shape = "group" }}'
            else:
                self.states[g] = f'{{ init = {rng.choice([0.0, 0.5, 1.0])}, shape = "group" }}'
            groups.append(g)
        readable = self.tensors + ([old_state] if old_state else [])
        values = []                 # bounded host values computed from the group reductions
        for _ in range(rng.randint(1, 3)):
            x = rng.choice(readable)
            op = rng.choice(["sum", "sum", "max", "min", "norm"])
            if op == "norm":
                reduction = f"group_norm({x})"
            else:
                kind = rng.choice(["sum", "dot", "max", "min", "norm2", "local"])
                if kind == "norm2":
                    per_tensor = f"norm({x}) ** 2"
                elif kind == "dot":
                    per_tensor = f"dot({x}, {rng.choice(readable)})"
                elif kind == "local":       # a value computed from a whole-tensor reduction
                    n = self.fresh("n")
                    self.assign(n, self.whole(x))
                    per_tensor = f"{n} / (1 + abs({n}))"
                else:
                    per_tensor = f"{kind}({x})"
                if groups and rng.random() < 0.4:       # a group state's old value in the partial
                    per_tensor = f"{rng.choice(groups)} * {per_tensor}"
                reduction = f"group_{op}({per_tensor})"
            name = self.fresh("g")
            if rng.random() < 0.5:      # squashed where it is computed (the reduction read twice)
                self.assign(name, f"{reduction} / (1 + abs({reduction}))")
            else:
                self.assign(name, reduction)
                self.assign(name, f"{name} / (1 + abs({name}))")
            values.append(name)
        pieces = []
        for g in groups:
            b = self.fraction()
            if rng.random() < 0.5:      # the old value read by the weight update
                pieces.append(f"{g} * ({self.squashed(1)})")
            self.assign(g, f"{b} * {g} + (1 - {b}) * {rng.choice(values)}")
            if rng.random() < 0.5:      # the new value
                pieces.append(f"{g} * ({self.squashed(1)})")
        if old_state:
            b = self.fraction()
            self.assign(old_state, f"{b} * {old_state} + (1 - {b}) * {rng.choice(values)} * ({self.squashed(1)})")
            self.tensors.append(old_state)
        self.host.extend(values + groups)       # read by later expressions and if conditions
        pieces.append(f"{rng.choice(values)} * ({self.squashed(1)})")
        return pieces

    def row_of(self, x):
        """A row reduction of `x` (row_mean, row_sum, row_max, row_min); a sum squashed."""
        kind = self.rng.choice(["row_mean", "row_sum", "row_max", "row_min"])
        if kind == "row_sum":
            return f"row_sum({x}) / (1 + abs(row_sum({x})))"
        return f"{kind}({x})"

    def row_pieces(self):
        r = self.fresh("r")
        self.states[r] = '{ init = "zeros", shape = "rows" }'
        b = self.fraction()
        before = self.rng.random() < 0.6
        pieces = []
        if before:
            if self.rng.random() < 0.5:     # a state of an earlier pass reads the old row value
                s = self.fresh("s")
                self.states[s] = '"zeros"'
                self.assign(s, f"{b} * {s} + (1 - {b}) * ({self.squashed(1)}) / (sqrt({r}) + 1)")
                self.tensors.append(s)
            pieces.append(f"{self.squashed(1)} / (sqrt({r}) + 1)")
        self.assign(r, f"{b} * {r} + (1 - {b}) * {self.row_of('grad * grad')}")
        if not before:
            pieces.append(f"{self.squashed(1)} / (sqrt({r}) + 1)")
        if self.rng.random() < 0.5:
            pieces.append(f"(grad - {self.row_of('grad')}) / (1 + abs(grad))")
        return pieces


def _elementwise(b, reductions):
    b.gradient_line()
    for _ in range(b.rng.randint(0, 2)):
        b.tensor_state()
    steps = []
    features = ["if", "optional", "loop", "when", "host", "where", "noise", "anchor"]
    chosen = b.rng.sample(features, b.rng.randint(1, 3))
    if b.rng.random() < GROUPED:    # group reductions among the other features
        chosen.insert(b.rng.randint(0, len(chosen)), "group")
    for feature in chosen:
        if feature == "group":
            steps += b.group_pieces()
        elif feature == "if":
            b.if_block()
        elif feature == "optional":
            b.optional_clip()
        elif feature == "loop":
            b.loop()
        elif feature == "when":
            b.when_state()
        elif feature == "host":
            h = b.host_scalar_state()
            steps.append(f"{h} * {b.leaf()} / (1 + abs({b.leaf()}))")
        elif feature == "noise" and not reductions:
            steps.append(b.noise())
        elif feature == "anchor":
            p = b.anchor_state()
            steps.append(f"(weight - {p}) / (1 + abs(weight - {p}))")
    if reductions == "norm":
        steps += b.norm_pieces()
    elif reductions == "rows":
        steps += b.row_pieces()
    steps.append(b.squashed())
    b.weight_line(" + ".join(f"({s})" for s in steps))


def _matrix(b):
    view = b.rng.choice(["first_rest", "last_two"])
    b.extra.append(f'matrix = "{view}"')
    b.gradient_line()
    m = b.fresh("x")
    kind = b.rng.choice(["gram", "cols", "rows", "loop", "square"])
    if kind == "gram":
        b.assign(m, "matmul(grad, transpose(grad))")
        scale = b.rng.choice([f"norm({m})", f"max(abs({m}))", f"abs(sum({m}))", f"abs(dot({m}, {m}))"])
        b.assign(m, f"{m} / ({scale} + 1)")
        u = f"matmul({m}, grad)"
    elif kind == "cols":
        c = b.fresh("c")
        b.states[c] = '{ init = "zeros", shape = "cols" }'
        f = b.fraction()
        b.assign(c, f"{f} * {c} + (1 - {f}) * {_along(b, 'col', 'grad * grad', 'rows')}")
        chan = b.fresh("q")
        b.assign(chan, f"{_along(b, 'col', 'grad', 'rows')} > 0")       # a boolean read by a later stage
        u = f"where({chan}, grad / (sqrt({c}) + 1), grad / (sqrt({c}) + 2))"
    elif kind == "rows":
        r = b.fresh("r")
        b.states[r] = '{ init = "zeros", shape = "rows" }'
        f = b.fraction()
        b.assign(r, f"{f} * {r} + (1 - {f}) * {_along(b, 'row', 'grad * grad', 'cols')}")
        u = f"grad / (sqrt({r}) + 1)"
        if b.rng.random() < 0.5:        # a row extremum and a column one in one expression
            u = f"{u} + (grad - {_along(b, 'row', 'grad', 'cols')}) * ({_along(b, 'col', 'abs(grad)', 'rows')})"
            u = f"({u}) / (1 + abs({u}))"
    elif kind == "square":
        u = _square(b)
    else:
        k = b.fresh("k")
        b.hyper[k] = f'{{ default = {b.rng.choice([1, 2, 3])}, type = "int", range = "[0, 5]" }}'
        b.assign(m, "grad / (norm(grad) + 1)")
        b.lines.append(f"for _ in range({k}):")
        b.assign(m, f"1.5 * {m} - 0.5 * matmul(matmul({m}, transpose({m})), {m})", "    ")
        u = m
    if view == "first_rest" and b.rng.random() < 0.5:
        v = b.fresh("v")
        b.states[v] = "{ init = 0.0 }"
        f = b.fraction()
        inner = _along(b, "row", "abs(grad)", "cols")
        b.assign(v, f"{f} * {v} + (1 - {f}) * {_along(b, 'col', inner, 'rows')}")
        u = f"({u}) * (1 + {v})"
    b.weight_line(f"({u}) / (1 + abs({u}))")


def _square(b):
    """A square state (rows_by_rows or cols_by_cols) accumulating the gradient's Gram matrix,
    and the step preconditioned by it: an inverse root (kept in a second square state,
    refreshed on host conditions on t, as Shampoo's) or its eigenvectors (the gradient
    rotated into the eigenbasis, scaled there per element and rotated back, as SOAP's: a
    value that does not depend on the signs the library gives the eigenvectors)."""
    side = b.rng.choice(["rows", "cols"])
    kind = b.rng.random()
    if kind >= 0.75:
        return _fitted(b, side)
    s = b.fresh("s")
    scale = b.fresh("e")
    b.hyper[scale] = f'{{ default = {b.rng.choice([0.5, 1.0, 2.0])}, range = "(0, inf)" }}'
    init = b.rng.choice(['"identity"', "1.5", f'"{scale}"'])
    b.states[s] = f'{{ init = {init}, shape = "{side}_by_{side}" }}'
    gram = "matmul(grad, transpose(grad))" if side == "rows" else "matmul(transpose(grad), grad)"
    b.assign(s, f"{s} + {gram} / (1 + norm(grad) ** 2)")        # eigenvalues in [init, init + steps]

    def apply(m, x):        # the side's product with the gradient
        return f"matmul({m}, {x})" if side == "rows" else f"matmul({x}, {m})"

    if kind < 0.35:
        root = b.rng.choice([1, 2, 4])
        inv = b.fresh("i")
        b.states[inv] = f'{{ init = "zeros", shape = "{side}_by_{side}" }}'
        b.lines.append(f"if {b.rng.choice(['t % 2 == 1', 't <= 3', 't > 0'])}:")
        b.assign(inv, f"inverse_root({s}, {root})", "    ")
        return apply(inv, "grad")
    q = b.fresh("q")
    if kind < 0.5:
        b.assign(q, f"eigh({s})")
    else:       # SOAP's refresh: one power iteration of a kept basis, sorted by its estimates
        b.states[q] = f'{{ init = "identity", shape = "{side}_by_{side}" }}'
        power, estimate, second = b.fresh("w"), b.fresh("k"), b.fresh("v")
        b.assign(power, f"matmul({s}, {q})")
        b.assign(estimate, f"col_sum({q} * {power})")
        b.states[second] = '"zeros"'
        b.assign(second, f"0.9 * {second} + 0.1 * grad * grad")
        by_rows = f"sort_rows({{}}, transpose({estimate}))"        # the rows of a (rows, .) value
        # the second moment sorted by its rows, directly or through transposes (the basis's
        # columns are sorted just below): both sorts in every such spec
        sort = by_rows.format(second) if side == "rows" else \
            f"transpose({by_rows.format(f'transpose({second})')})"
        b.assign(second, sort)
        b.assign(q, f"qr(sort_cols({power}, {estimate}))")
    rotated = b.fresh("p")
    b.assign(rotated, f"matmul(transpose({q}), grad)" if side == "rows" else f"matmul(grad, {q})")
    scaled = f"{rotated} / (abs({rotated}) + 1)"
    return f"matmul({q}, {scaled})" if side == "rows" else f"matmul({scaled}, transpose({q}))"


def _fitted(b, side):
    """A triangular factor fitted to random probes as PSGD-Kron fits its own (triu, solve or
    solve_right, norm_lower_bound, normal() between matrix operations), on every step or
    on host conditions on t, and the step preconditioned by its Gram matrix."""
    q, probe, a, inv, pa, pb = (b.fresh(x) for x in "qvabgh")
    b.states[q] = f'{{ init = "identity", shape = "{side}_by_{side}" }}'
    b.hyper["seed"] = '{ default = 0, type = "int", range = "[0, inf)" }'
    rows = side == "rows"
    indent = ""
    if b.rng.random() < 0.5:
        b.lines.append(f"if {b.rng.choice(['t % 2 == 1', 't <= 2'])}:")
        indent = "    "
    b.assign(probe, "normal(0, 1)", indent)
    b.assign(a, f"matmul({q}, grad)" if rows else f"matmul(grad, transpose({q}))", indent)
    right = b.rng.choice([f"solve_right({probe}, {q})", f"transpose(solve(transpose({q}), transpose({probe})))"])
    b.assign(inv, f"solve(transpose({q}), {probe})" if rows else right, indent)
    for gram, x in ((pa, a), (pb, inv)):
        b.assign(gram, f"matmul({x}, transpose({x}))" if rows else f"matmul(transpose({x}), {x})", indent)
    b.assign(q, f"{q} - 0.1 * matmul(triu({pa} - {pb}), {q}) / (norm_lower_bound({pa} + {pb}) + 1e-30)", indent)
    gram = f"matmul(transpose({q}), {q})"
    return f"matmul({gram}, grad)" if rows else f"matmul(grad, {gram})"


def _along(b, axis, x, count):
    """A reduction of `x` along rows ("row") or columns ("col") of the matrix view: mean,
    maximum, minimum or a sum divided by the `count` of its terms."""
    kind = b.rng.choice(["mean", "sum", "max", "min"])
    if kind == "sum":
        return f"{axis}_sum({x}) / {count}"
    return f"{axis}_{kind}({x})"


def _modes(b):
    f = b.fraction()
    b.states["z"] = '"weight"'
    b.states["xa"] = '"weight"'
    b.gradient_line()
    b.assign("z", f"z - lr * ({b.squashed()})")
    b.assign("xa", f"{f} * xa + (1 - {f}) * z")
    b.assign("weight", f"{f} * xa + (1 - {f}) * z")
    b.tables.append(f'[modes]\ntrain = "weight = {f} * xa + (1 - {f}) * z"\neval = "weight = xa"')


KINDS = ("elementwise", "norm", "rows", "matrix", "modes")
GROUPED = 0.45      # share of element-wise, norm and row rules that draw group reductions


def generate(seed):
    """The TOML text of one valid random spec (class name `Rand<seed>`)."""
    rng = random.Random(seed)
    name = f"Rand{seed}"
    b = Builder(rng, name)
    kind = KINDS[seed % len(KINDS)] if rng.random() < 0.8 else rng.choice(KINDS)
    if kind == "matrix":
        _matrix(b)
    elif kind == "modes":
        _modes(b)
    else:
        _elementwise(b, {"norm": "norm", "rows": "rows"}.get(kind))
    return render(b, kind)


def render(b, kind):
    text = [f'name = "{b.name}"', f'summary = "A random {kind} rule (seeded) for the differential verifier."']
    text += b.extra
    text.append('update = """')
    text += b.lines
    text.append('"""')
    text.append("")
    text.append("[hyperparameters]")
    text.append(f"learning_rate = {b.rng.choice([0.1, 0.05])}")
    text += [f"{k} = {v}" for k, v in b.hyper.items()]
    if b.states:
        text.append("")
        text.append("[states]")
        text += [f"{k} = {v}" for k, v in b.states.items()]
    for table in b.tables:
        text.append("")
        text.append(table)
    return "\n".join(text) + "\n"
