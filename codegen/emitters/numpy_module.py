"""The NumPy emitter: one readable Python module per spec under generated/numpy/.

The module holds the spec's metadata, per variant a host function (float64
scalars) and a kernel function (whole-array ufunc calls, in place), written
against the array-module API so the same code runs on NumPy and CuPy arrays.
"""
import sympy

from ..literals import py_literal
from ..metadata import spec_metadata
from ..printers.arrays import ArrayPrinter
from ..printers.host import HostPrinter
from ..ir import COLS, DEVICE, ROWS
from ..schedule import Step, schedule
from ..tac import REDUCTION_OPS, SOLVE_OPS, WHOLE_OPS, Scalar, Val, lower, symmetric
from ..matrix_stages import Stage, in_place
from .c_stages import stage_programs, stage_scalars
from .templates import environment, render_limited


def render(rule, analysis, spec_path, group_module=""):
    """The module's text; `group_module`: the module name of the partials stage (rules with
    group reductions: render.group_module), relative to this module's package."""
    host = HostPrinter()
    arrays = ArrayPrinter()
    state_classes = {st.name: ("p" if st.dtype == "float32" or st.device else "w") for st in rule.states}

    state_inputs, state_terms = set(), []
    for st in rule.states:
        if st.shape == "group":     # kept by the API family with the group, not per parameter
            continue
        if st.when is None:
            state_terms.append(f"({st.name!r}, True)")
        else:
            state_inputs |= _names(st.when)
            state_terms.append(f"({st.name!r}, {host.doprint(st.when)})")
    state_lines = [f"return tuple(name for name, exists in ({', '.join(state_terms)}{',' if len(state_terms) == 1 else ''}) if exists)"
                   if state_terms else "return ()"]

    condition_inputs = set()
    for atom in analysis.atoms:
        condition_inputs |= _names(atom)
    condition_texts = [_condition(host, atom) for atom in analysis.atoms]

    programs = stage_programs(rule, analysis) if rule.matrix else []
    staged = {v.name: (p, items) for v, p, items in programs}
    variants = [_variant(rule, key, variant, host, arrays, state_classes, staged.get(variant.name))
                for key, variant in analysis.variants.items()]
    modes = [dict(_variant(mode_rule, None, variant, host, arrays, state_classes), mode=mode)
             for mode, (mode_rule, variant) in analysis.modes.items()]
    group = _group_stage(analysis.group, group_module, rule) if analysis.group else None

    skip_text, skip_inputs = "", []
    if rule.skip_if is not None:
        skip_text = host.doprint(rule.skip_if)
        skip_inputs = sorted(_names(rule.skip_if))
    requires_text, requires_inputs = "", []
    if rule.requires is not None:
        requires_text = host.doprint(rule.requires)
        requires_inputs = sorted(_names(rule.requires))

    template = environment().get_template("numpy_module.py.j2")
    return render_limited(
        template,
        rule=rule,
        spec_path=spec_path,
        update_text=rule.update_text.strip("\n"),
        spec_literal=py_literal(spec_metadata(rule, spec_path)),
        state_inputs=sorted(state_inputs),
        state_lines=state_lines,
        condition_inputs=sorted(condition_inputs),
        condition_texts=condition_texts,
        skip_text=skip_text,
        skip_inputs=skip_inputs,
        requires_text=requires_text,
        requires_inputs=requires_inputs,
        variants=variants,
        modes=modes,
        group=group,
        solves=any(v.op in SOLVE_OPS for _, program, _ in programs for v in program.code),
    ).rstrip("\n") + "\n"


def _group_stage(group, module, rule):
    """What the template needs of a rule's group reductions and group states
    (codegen/group_stage.py); the partials stage is a generated module of its own
    (`render.group_module`), None for a rule with group states and no group reduction."""
    return {
        "reductions": [(r.op, r.value, r.partial) for r in group.reductions],
        "states": [st.name for st in rule.states if st.shape == "group"],
        "module": module or None,
    }


def _variant(rule, key, variant, host, arrays, state_classes, staged=None):
    """What the template needs of one variant (or of one mode: key None); `staged`, a matrix
    rule's (program, stage items) of this variant where it has native stage kernels."""
    program = lower(variant, rule)
    kernel_lines, stage_lines, library_only = [], [], False
    if rule.matrix:
        kernel_lines = matrix_kernel_lines(program, rule.matrix)
        if staged is not None and any(isinstance(item, Stage) for item in staged[1]):
            stage_lines = matrix_kernel_lines(staged[0], rule.matrix, staged[1], f"{rule.key}_{variant.name}")
        # a variant that is library calls alone (or nothing) has no stage kernels to call:
        # its NumPy code is all there is, on every backend
        library_only = staged is not None and not stage_lines
    else:
        plan = schedule(program, state_classes)
        for step in plan.steps:
            kernel_lines.extend(arrays._print(step).split("\n"))
        for buffer, source in plan.copies:
            kernel_lines.append(arrays.copy_statement(buffer, source))
    if not kernel_lines:
        kernel_lines = ["pass"]
    defined = [sym.name for sym, _ in variant.host]
    host_params = sorted((set(variant.host_inputs()) | set(program.scalars)) - set(defined))
    host_lines = [f"{sym.name} = {host.doprint(expr)}" for sym, expr in variant.host]
    items = [f"{name!r}: {name}" for name in program.scalars]
    items += [f"{sym.name!r}: {sym.name}" for sym in variant.scalar_outputs.values()
              if sym.name not in program.scalars]
    host_return = "{" + ", ".join(items) + "}"
    if len(host_return) > 80:
        host_return = "{\n" + "".join(f"        {item},\n" for item in items) + "    }"
    written = [name for name in program.outputs]
    return {
        "mode": None,
        "key": key,
        "name": variant.name,
        "description": variant.description,
        "states": tuple(name for name in variant.states if rule.state(name).shape != "group"),
        "updates": {name: sym.name for name, sym in variant.scalar_outputs.items()},
        "host_only": [sym.name for sym in variant.scalar_outputs.values()
                      if sym.name not in program.scalars],
        "host_params": host_params,
        "host_lines": host_lines,
        "host_return": host_return,
        "arrays": list(program.inputs),
        "scalars": list(program.scalars),
        "uses_rng": any(v.op == "normal" for v in program.code),
        "whole_tensor": bool(rule.matrix) or any(v.op in WHOLE_OPS for v in program.code),
        "elementwise": not rule.matrix and not any(v.op in REDUCTION_OPS + ("normal",) for v in program.code)
        and all(v.shape not in ("rows", "device") for v in program.inputs.values()),
        "kernel_lines": kernel_lines,
        "stage_lines": stage_lines,
        "library_only": library_only,
        "written": written or ["nothing"],
        "kernel_doc": _kernel_doc(program, written or ["nothing"], rule.matrix),
    }


def _names(expr):
    return {s.name for s in expr.free_symbols if not s.name.startswith("'")}


def _condition(printer, atom):
    text = printer.doprint(atom)
    return text if isinstance(atom, sympy.Symbol) is False else f"bool({text})"


# The matrix view of a weight (the spec's `matrix` key) as a shape tuple, in generated code
VIEWS = {
    "first_rest": "(weight.shape[0], math.prod(weight.shape[1:])) if weight.ndim else (1, 1)",
    "last_two": "weight.shape if weight.ndim >= 2 else (weight.size, 1)",
}
_VIEW_SHAPES = {ROWS: "_view[:-1] + (1,)", COLS: "_view[:-2] + (1, _view[-1])",
                "rows_by_rows": "_view[:-1] + (_view[-2],)", "cols_by_cols": "_view[:-2] + (_view[-1], _view[-1])"}


def matrix_kernel_lines(program, matrix, stages=None, fn=""):
    """The kernel of a matrix rule: every array seen through the matrix view (a reshape),
    one array-module call per instruction into a new temporary (matmul through `xp`, so
    CuPy runs cuBLAS), and the weight and states written at the end. With `stages`
    (`matrix_stages.split`'s items) the element-wise instructions are replaced by one call
    of `stage` per stage (the native stage driver: `runtime/backends/native_matrix.py`); a
    stage that computes an output's final value may write it into the output's array
    (`matrix_stages.in_place`), which then needs no copy at the end."""
    printer = MatrixArrayPrinter()
    printer.symmetric = frozenset(symmetric(program))
    lines = [f"_view = {VIEWS[matrix]}"]

    def operand(a):
        if isinstance(a, Val):
            return f"_a_{a.name}" if a.op == "input" else f"_t{a.id}"
        return a

    for name, val in program.inputs.items():
        if val.shape == DEVICE:
            lines.append(f"_a_{name} = {name}")
        else:
            lines.append(f"_a_{name} = {name}.reshape({_VIEW_SHAPES.get(val.square or val.shape, '_view')})")
    indent = ""
    units = program.code if stages is None else [getattr(item, "val", item) for item in stages]
    direct = in_place(program, stages) if stages is not None else {}
    for v in units:
        if not isinstance(v, Val):      # a stage of the native driver
            lines.append(indent + stage_call(fn, v, operand, {val.id: name for name, val in direct.items()}))
            continue
        if v.op == "loop":    # a loop counted by a hyperparameter: the carried values start as
            phis = [p for p in program.code if p.op == "phi" and p.args[0] is v]   # their values before it
            for phi, init in zip(phis, v.args[1:]):
                lines.append(f"{indent}_t{phi.id} = {printer._operand(operand(init))}")
            lines.append(f"{indent}for _ in range({v.args[0].name}):")
            indent += "    "
            continue
        if v.op == "phi":
            continue
        if v.op == "end":
            phis = [p for p in program.code if p.op == "phi" and p.args[0] is v.args[0]]
            if phis:
                lines.append(f"{indent}{', '.join(f'_t{p.id}' for p in phis)} = "
                             f"{', '.join(printer._operand(operand(a)) for a in v.args[1:])}")
            else:
                lines.append(f"{indent}pass")
            indent = indent[:-4]
            continue
        if v.op == "carried":
            lines.append(f"{indent}_t{v.id} = _t{v.args[0].id}")
            continue
        if stages is not None and v.op == "norm":   # the same NumPy calls, squares into scratch memory
            lines.append(f"{indent}_t{v.id} = stage.norm({operand(v.args[0])})")
            continue
        optional = v.op == "clip" and any(isinstance(a, Scalar) and a.optional for a in v.args[1:])
        step = Step(v, f"_t{v.id}", "alias" if optional else "new", tuple(operand(a) for a in v.args))
        lines.extend(indent + line for line in printer._print(step).split("\n"))
    finals = []
    for name, value in program.outputs.items():
        if name in direct:
            continue
        source = printer._operand(operand(value))
        if not isinstance(value, Val) or value.op in ("input", "clip", "transpose"):
            # may share memory with an input written before it: keep a copy of its value now
            lines.append(f"_o_{name} = xp.array({source}, dtype={name}.dtype, copy=True)")
            source = f"_o_{name}"
        array = program.inputs[name]
        finals.append((name, source, _VIEW_SHAPES.get(array.square or array.shape, "_view")))
    for name, source, shape in finals:
        if program.inputs[name].shape == DEVICE:    # one value, (1, 1) on the view: the state is 0-d
            lines.append(f"xp.copyto({name}, xp.reshape({source}, {name}.shape))")
        else:
            lines.append(f"xp.copyto({name}, xp.broadcast_to({source}, {shape}).reshape({name}.shape))")
    return lines


def stage_call(fn, stage, operand, direct):
    """`_t3, _t5, = stage("<fn>_stage<j>", (operands), (scalars), (None, weight))`: one native
    stage call; per stored value the array it is written into, None for a new one."""
    targets = "".join(f"{operand(v)}, " for v in stage.stores)
    reads = "".join(f"{operand(a)}, " for a in stage.reads)
    scalars = "".join(f"{name}, " for name in stage_scalars(stage))
    into = "".join(f"{direct.get(v.id, 'None')}, " for v in stage.stores)
    return f"{targets}= stage('{fn}_stage{stage.index}', ({reads}), ({scalars}), ({into}))"


class MatrixArrayPrinter(ArrayPrinter):
    """Array code on the matrix view: reductions along its last two axes, products and
    transposes per matrix (a leading batch of matrices for "last_two")."""

    def _print_step_row_mean(self, step):
        return self._bind(step, f"xp.mean({self._operand(step.operands[0])}, axis=-1, keepdims=True)")

    def _print_step_col_mean(self, step):
        return self._bind(step, f"xp.mean({self._operand(step.operands[0])}, axis=-2, keepdims=True)")

    # sums, maxima and minima of rows and columns as ArrayPrinter's (double sums, NaN kept,
    # a zero extremum +0, an empty row or column -inf / +inf), along the view's axes
    def _axes(self, x):
        return "axis=-1, keepdims=True"

    def _empty_shape(self, x):
        return f"{x}.shape[:-1] + (1,)"

    def _col_axes(self, x):
        return "axis=-2, keepdims=True"

    def _print_step_col_sum(self, step):
        return self._sum(step, self._col_axes(self._operand(step.operands[0])))

    def _print_step_col_max(self, step):
        x = self._operand(step.operands[0])
        return self._extremum(step, "max", self._col_axes(x), f"{x}.shape[:-2] + (1, {x}.shape[-1])")

    def _print_step_col_min(self, step):
        x = self._operand(step.operands[0])
        return self._extremum(step, "min", self._col_axes(x), f"{x}.shape[:-2] + (1, {x}.shape[-1])")

    def _print_step_transpose(self, step):
        return self._bind(step, f"xp.swapaxes({self._operand(step.operands[0])}, -1, -2)")

    symmetric = frozenset()     # ids of symmetric values (`tac.symmetric`)
    noise_like = "_a_weight"    # the view: the same numbers in the same order as the weight's (C order)

    def _print_step_matmul(self, step):
        a, b = (self._operand(o) for o in step.operands)
        x, y = step.val.args
        if x is y and x.id in self.symmetric:
            # s s = s s^T: NumPy computes a product of an array with its own transpose as a
            # rank-k update (syrk), half the multiply-adds of s s
            b = f"xp.swapaxes({b}, -1, -2)"
        return self._bind(step, f"xp.matmul({a}, {b})")


    def _eigh(self, a):
        """LAPACK's symmetric eigendecomposition of `a`, in float32 at least."""
        return f"xp.linalg.eigh({self._lapack(a)})"

    def _print_step_inverse_root(self, step):
        """a^(-1/p) through a = Q diag(w) Q^T: Q diag(sign(w) |w|^(-1/p)) Q^T (functions.InverseRoot),
        in a's dtype."""
        a, p = (self._operand(o) for o in step.operands)
        w, q = f"_w{step.val.id}", f"_q{step.val.id}"
        root = (f"xp.matmul({q} * (xp.sign({w}) * xp.abs({w}) ** (-1.0 / {p}))[..., None, :], "
                f"xp.swapaxes({q}, -1, -2))")
        return f"{w}, {q} = {self._eigh(a)}\n" + self._bind(step, f"{root}.astype({a}.dtype, copy=False)")

    def _print_step_eigh(self, step):
        a = self._operand(step.operands[0])
        return self._bind(step, f"{self._eigh(a)}[1].astype({a}.dtype, copy=False)")

    def _print_step_qr(self, step):
        a = self._operand(step.operands[0])
        return self._bind(step, f"xp.linalg.qr({self._lapack(a)})[0].astype({a}.dtype, copy=False)")

    def _print_step_triu(self, step):
        return self._bind(step, f"xp.triu({self._operand(step.operands[0])})")

    @staticmethod
    def _lapack(a):
        """`a` in float32 at least (LAPACK has no 16-bit routines)."""
        return f"{a}.astype(xp.promote_types({a}.dtype, xp.float32), copy=False)"

    def _print_step_solve(self, step):
        # the module's _solve (templates/numpy_solve.py.j2): substitution for a triangular a
        a, b = (self._operand(o) for o in step.operands)
        return self._bind(step, f"_solve(xp, {a}, {b})")

    def _print_step_solve_right(self, step):
        """b a^-1 = (a^-T b^T)^T."""
        b, a = (self._operand(o) for o in step.operands)
        return self._bind(step, f"xp.swapaxes(_solve(xp, xp.swapaxes({a}, -1, -2), xp.swapaxes({b}, -1, -2)), -1, -2)")

    def _print_step_norm_lower_bound(self, step):
        """functions.NormLowerBound per matrix, shape (..., 1, 1): s = a / max|a|; the column
        i of s of the largest norm gives x = s_i^T s and the bound ||x s^T|| / ||x||, the row
        j of the largest norm x = s s_j^T and ||s^T x|| / ||x||; the column's when its norm is
        the larger (as the reference, pytorch_optimizer's psgd.norm_lower_bound)."""
        a = self._operand(step.operands[0])
        k = f"_n{step.val.id}"
        lines = [
            f"{k}m = xp.max(xp.abs({a}), axis=(-2, -1), keepdims=True)",
            f"{k}s = {a} / xp.where({k}m > 0, {k}m, 1)",
            f"{k}q = {k}s * {k}s",
            f"{k}c, {k}r = xp.sum({k}q, axis=-2), xp.sum({k}q, axis=-1)",
            f"{k}tiny = xp.finfo({k}s.dtype).tiny",
            f"{k}x = xp.matmul(xp.take_along_axis({k}s, xp.argmax({k}c, axis=-1)[..., None, None], axis=-1)"
            f".swapaxes(-1, -2), {k}s)",
            f"{k}x = {k}x / xp.maximum(xp.linalg.norm({k}x, axis=-1, keepdims=True), {k}tiny)",
            f"{k}b0 = xp.linalg.norm(xp.matmul({k}x, xp.swapaxes({k}s, -1, -2)), axis=-1, keepdims=True)",
            f"{k}y = xp.matmul({k}s, xp.take_along_axis({k}s, xp.argmax({k}r, axis=-1)[..., None, None], axis=-2)"
            f".swapaxes(-1, -2))",
            f"{k}y = {k}y / xp.maximum(xp.linalg.norm({k}y, axis=-2, keepdims=True), {k}tiny)",
            f"{k}b1 = xp.linalg.norm(xp.matmul(xp.swapaxes({k}s, -1, -2), {k}y), axis=-2, keepdims=True)",
            self._bind(step, f"{k}m * xp.where((xp.max({k}c, axis=-1) > xp.max({k}r, axis=-1))[..., None, None], "
                             f"{k}b0, {k}b1)"),
        ]
        return "\n".join(lines)


    def _sort(self, step, axis):
        """The rows (axis -2) or columns (axis -1) of x taken in the order of a stable sort of
        -key (largest first), the order broadcast over the other axis."""
        x, key = (self._operand(o) for o in step.operands)
        order = f"xp.argsort(-{key}, axis={axis}, kind='stable')"
        return self._bind(step, f"xp.take_along_axis({x}, xp.broadcast_to({order}, {x}.shape), axis={axis})")

    def _print_step_sort_rows(self, step):
        return self._sort(step, -2)

    def _print_step_sort_cols(self, step):
        return self._sort(step, -1)


def _kernel_doc(program, written, matrix=""):
    """The kernel's docstring: element-wise only when each element's update reads nothing
    but that element (no norms, row means, per-row or per-tensor states)."""
    if matrix:
        return (f"Update of {', '.join(written)}, in place, on the matrix view ({matrix}): "
                "not element-wise.")
    ops = {v.op for v in program.code}
    shapes = {v.shape for v in program.inputs.values()}
    whole = [w for op, w in (("norm", "norms"), ("sum", "sums"), ("max", "maxima"), ("min", "minima")) if op in ops]
    rows = [w for op, w in (("row_mean", "means"), ("row_sum", "sums"), ("row_max", "maxima"),
                            ("row_min", "minima")) if op in ops]
    reads = [what for present, what in ((whole, f"{_listed(whole)} of whole arrays"),
                                        (rows, f"{_listed(rows)} over each row"),
                                        ("rows" in shapes, "per-row states"),
                                        ("device" in shapes, "per-tensor scalar states")) if present]
    targets = ", ".join(written)
    text = (f"Update of {targets}, in place, from {', '.join(reads)}: not element-wise." if reads
            else f"Element-wise update of {targets}, in place.")
    if "normal" in ops:
        text += " Draws standard normal noise for every element from rng."
    return text


def _listed(words):
    return " and ".join(words) if len(words) <= 2 else ", ".join(words[:-1]) + " and " + words[-1]
