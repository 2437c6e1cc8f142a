"""Matrix-shaped rules (Muon, Adafactor): the spec language's matrix constructs, the
generated code against hand-written references (tests/reference/torch_optim.py, from
torch.optim's documented algorithms; tests/reference/papers.py for the paper's Adafactor,
the MXNet-style flavor), parity with torch.optim itself, the rank condition, and the
fallback of every backend to the generated NumPy code.

Reference comparisons run 6 steps on parameters of several shapes (2-D tall and wide for
both; 1-D and 3-D for Adafactor), signed data with values beyond the clip bound, wd > 0,
rescale_grad != 1 (MXNet-style API), a learning rate changed between steps and
begin_num_update > 0. Tolerances:
- float64 against the references: rtol 1e-9, atol 1e-12. The same formulas in another
  operation order; Muon's five Newton-Schulz iterations multiply rounding errors by the
  iteration's gain (its coefficients are about 3.4, -4.8, 2.0), so a little looser than
  support.py's 1e-10, still far below any semantic difference.
- float32: rtol 1e-4, atol 1e-5 (the products sum in float32 in BLAS order; the same gain).
- torch.optim in float64: 1e-6 relative (the issue's bound; observed about 1e-14).
- torch.optim.Muon as it is (Newton-Schulz in bfloat16, 8 mantissa bits, unit roundoff
  2**-8 ~ 4e-3 amplified by five iterations) against optforge in float32: each step's
  update within 8e-2 of torch's, relative to the update's largest element (observed 2-5e-2);
  the same comparison in float64 with the bfloat16 cast removed is within 1e-6.
"""
import numpy as np
import pytest

import optforge
from optforge import SpecError
from reference import papers, torch_optim
from support import signed

BEGIN = 3
STEPS = 6
LEARNING_RATES = {1: 0.05, 3: 0.02, 5: 0.08}
WD = 0.02
RESCALE = 0.7
TOL = {np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12), np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5)}

MUON_SHAPES = [(6, 4), (3, 8), (5, 5)]
ADAFACTOR_SHAPES = [(6, 4), (3, 8), (7,), (2, 3, 5)]
CASES = [
    ("muon", MUON_SHAPES, {}), ("muon", MUON_SHAPES, {"nesterov": False}),
    ("muon", MUON_SHAPES, {"adjust_lr_fn": "match_rms_adamw", "momentum": 0.8, "ns_steps": 3}),
    ("muon", MUON_SHAPES, {"ns_steps": 12, "ns_a": 2.0, "ns_b": -1.5, "ns_c": 0.5}),
    ("adafactor", ADAFACTOR_SHAPES, {}), ("adafactor", ADAFACTOR_SHAPES, {"epsilon1": 1e-20, "d": 2.0}),
    ("adafactor", ADAFACTOR_SHAPES, {"maximize": True, "beta2_decay": -0.5, "epsilon2": 0.1}),
]
# The paper's Adafactor (MXNet-style flavor, specs/adafactor.toml) against tests/reference/papers.py
SM3_SHAPES = [(6, 4), (7,), (2, 3, 5)]
PAPER_CASES = [
    ("sm3", SM3_SHAPES, {}), ("sm3", SM3_SHAPES, {"beta": 0.9, "momentum": 0.5, "epsilon": 1e-8}),
    ("adafactor", ADAFACTOR_SHAPES, {}), ("adafactor", ADAFACTOR_SHAPES, {"beta1": 0.9, "d": 2.0}),
    ("adafactor", ADAFACTOR_SHAPES, {"relative_step": False, "scale_parameter": False}),
    ("adafactor", ADAFACTOR_SHAPES, {"warmup_init": True, "decay_rate": -0.5, "epsilon1": 1e-3}),
]
FLAVORED = [("torch", *c) for c in CASES] + [("mxnet2", *c) for c in PAPER_CASES]


def _close(actual, expected, dtype, what):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               err_msg=what, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("flavor,name,shapes,hp", FLAVORED, ids=[f"{f}-{n}{hp}" for f, n, _, hp in FLAVORED])
def test_matrix_rules_match_their_references(flavor, name, shapes, hp, dtype, clip):
    rng = np.random.default_rng(len(name) * 13 + len(hp))
    opt = optforge.create(name, flavor=flavor, wd=WD, rescale_grad=RESCALE, clip_gradient=clip,
                          begin_num_update=BEGIN, **hp)
    rule = (torch_optim if flavor == "torch" else papers).MATRIX_RULES[name]
    weights = [signed(rng, s, 1.5, dtype) for s in shapes]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    expected_w = [w.copy() for w in weights]
    expected_s = [{} for _ in weights]
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            lr = LEARNING_RATES[step]
            opt.set_learning_rate(lr)
        grads = [signed(rng, s, 2.0, dtype) for s in shapes]
        before = [g.copy() for g in grads]
        for i in range(len(weights)):
            expected_w[i], expected_s[i] = rule(expected_w[i], grads[i], expected_s[i], lr=lr, wd=WD,
                                                t=BEGIN + step, rescale_grad=RESCALE, clip_gradient=clip, **hp)
        opt.update(list(range(len(weights))), weights, grads, states)
        for i, w in enumerate(weights):
            np.testing.assert_array_equal(grads[i], before[i], err_msg="the caller's gradient changed")
            assert w.dtype == dtype
            _close(w, expected_w[i], dtype, f"{name} weight {i} after step {step}")
            names = opt._present_states(w)
            parts = states[i] if isinstance(states[i], tuple) else (states[i],)
            assert set(names) == set(expected_s[i])
            for state_name, part in zip(names, parts):
                assert part.shape == expected_s[i][state_name].shape
                _close(part, expected_s[i][state_name], dtype, f"{name} {state_name} {i} after step {step}")
    assert opt._index_update_count == {i: BEGIN + STEPS for i in range(len(shapes))}


def test_adafactor_states_follow_the_rank():
    opt = optforge.create("adafactor", flavor="torch")
    assert opt._present_states(np.zeros((4, 5))) == ("row_var", "col_var")
    assert opt._present_states(np.zeros(5)) == ("variance",)
    row, col = opt.create_state(0, np.zeros((2, 3, 5), np.float32))
    assert row.shape == (2, 3, 1) and col.shape == (2, 1, 5) and row.dtype == np.float32
    assert opt.create_state(0, np.zeros(7)).shape == (7,)


# -- the rank condition -----------------------------------------------------------------------
def test_muon_refuses_other_ranks_before_anything_changes():
    opt = optforge.create("muon", flavor="torch")
    with pytest.raises(ValueError, match="requires ndim == 2"):
        opt.create_state(0, np.zeros(5))
    w, g = np.ones((4, 3)), np.ones((4, 3))
    state = opt.create_state(0, w)
    vector, vstate = np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match="requires ndim == 2"):
        opt.update([0, 1], [w, vector], [g, np.ones(3)], [state, vstate])
    np.testing.assert_array_equal(w, np.ones((4, 3)))
    np.testing.assert_array_equal(state, 0)
    assert opt._index_update_count == {}
    with pytest.raises(ValueError, match="Muon requires ndim == 2; parameter 1 of shape \\(3,\\)"):
        optforge.optim.Muon([np.ones((4, 3)), np.ones(3)])


def test_optforge_torch_muon_refuses_a_bias_at_construction():
    torch = pytest.importorskip("torch")
    import optforge.torch as ot
    # torch's own check and wording (torch_frontend/torch_checks.py)
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        ot.Muon([torch.zeros(4, 3, requires_grad=True), torch.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError):     # torch's own rule, for comparison
        torch.optim.Muon([torch.zeros(3, requires_grad=True)])


# -- parity with torch.optim -------------------------------------------------------------------
def _torch_pair(cls_ours, cls_torch, shapes, dtype, **kwargs):
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(7)
    start = [torch.randn(s, dtype=dtype, generator=gen) * 1.5 for s in shapes]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    return gen, ours, theirs, cls_ours(ours, **kwargs), cls_torch(theirs, **kwargs)


def test_adafactor_equals_torch_optim_in_float64():
    torch = pytest.importorskip("torch")
    import optforge.torch as ot
    gen, ours, theirs, a, b = _torch_pair(ot.Adafactor, torch.optim.Adafactor, ADAFACTOR_SHAPES,
                                          torch.float64, lr=0.05, weight_decay=0.02)
    for step in range(6):
        for group in (a.param_groups[0], b.param_groups[0]):
            group["lr"] = [0.05, 0.05, 0.02, 0.02, 0.08, 0.08][step]
        for x, y in zip(ours, theirs):
            g = torch.randn(x.shape, dtype=torch.float64, generator=gen) * 2
            x.grad, y.grad = g.clone(), g.clone()
        a.step()
        b.step()
        for x, y in zip(ours, theirs):
            assert torch.allclose(x.detach(), y.detach(), rtol=1e-6, atol=1e-12), f"step {step}"
    for x, y in zip(ours, theirs):
        for key in b.state[y]:
            assert torch.allclose(a.state[x][key].double(), b.state[y][key].double(), rtol=1e-6, atol=1e-12)


def _muon_steps(dtype, without_bfloat16, monkeypatch, **settings):
    """Each step from equal weights and buffers: the largest difference of the two updates
    relative to the largest element of torch's update."""
    torch = pytest.importorskip("torch")
    import optforge.torch as ot
    gen, ours, theirs, a, b = _torch_pair(ot.Muon, torch.optim.Muon, MUON_SHAPES, dtype,
                                          lr=0.05, weight_decay=0.02, **settings)
    errors = []
    for step in range(4):
        for x, y in zip(ours, theirs):
            g = torch.randn(x.shape, dtype=dtype, generator=gen) * 2
            x.grad, y.grad = g.clone(), g.clone()
        start = [y.detach().clone() for y in theirs]
        a.step()
        with monkeypatch.context() as patch:
            if without_bfloat16:   # torch's own Newton-Schulz code, its bfloat16 cast made a copy
                patch.setattr(torch.Tensor, "bfloat16", lambda self, *args, **kw: self.clone())
            b.step()
        for x, y, s in zip(ours, theirs, start):
            errors.append(float((x.detach() - y.detach()).abs().max() / (y.detach() - s).abs().max()))
            with torch.no_grad():
                y.copy_(x)
        for x, y in zip(ours, theirs):
            with torch.no_grad():
                b.state[y]["momentum_buffer"].copy_(a.state[x]["momentum_buffer"])
    return errors


def test_muon_equals_torch_newton_schulz_without_bfloat16_in_float64(monkeypatch):
    torch = pytest.importorskip("torch")
    assert max(_muon_steps(torch.float64, True, monkeypatch)) < 1e-6
    assert max(_muon_steps(torch.float64, True, monkeypatch, ns_steps=3, nesterov=False, momentum=0.9,
                           adjust_lr_fn="match_rms_adamw")) < 1e-6


def test_muon_is_near_torch_optim_muon_as_it_is(monkeypatch):
    torch = pytest.importorskip("torch")
    errors = _muon_steps(torch.float32, False, monkeypatch)
    assert max(errors) < 8e-2
    assert max(errors) > 1e-4     # torch really ran bfloat16: the comparison is not vacuous


# -- every backend runs the generated NumPy code for matrix rules -------------------------------
def test_matrix_rules_have_stage_kernels_only_on_the_cpu_and_fused_step_equals_step():
    from optforge.generated.numpy.torch import adafactor, muon
    from pathlib import Path
    root = Path(optforge.__file__).resolve().parent / "generated"
    for module, name in ((muon, "muon"), (adafactor, "adafactor")):
        assert not (root / "cuda" / "torch" / f"{name}.cu").exists()
        assert (root / "cpu" / "torch" / f"{name}.cpp").exists()     # stage kernels (test_matrix_native.py)
        assert all(callable(v["stages"]) for v in module.VARIANTS.values())
        assert not any(v["elementwise"] for v in module.VARIANTS.values())
    for name, shapes in (("muon", MUON_SHAPES), ("adafactor", ADAFACTOR_SHAPES)):
        rng = np.random.default_rng(5)
        fused = optforge.create(name, flavor="torch", use_fused_step=True)
        plain = optforge.create(name, flavor="torch", use_fused_step=False)
        w1 = [signed(rng, s, 1.0, np.float32) for s in shapes]
        w2 = [w.copy() for w in w1]
        s1 = [fused.create_state(i, w) for i, w in enumerate(w1)]
        s2 = [plain.create_state(i, w) for i, w in enumerate(w2)]
        for _ in range(3):
            grads = [signed(rng, s, 2.0, np.float32) for s in shapes]
            fused.update(list(range(len(shapes))), w1, grads, s1)
            plain.update(list(range(len(shapes))), w2, grads, s2)
        for a, b in zip(w1, w2):
            np.testing.assert_array_equal(a, b)


# -- the spec language -------------------------------------------------------------------------
TOY = '''name = "Toy"
{top}
update = """
{update}
"""
[hyperparameters]
beta = 0.5
n = {{ default = 3, type = "int", range = "[0, 10]" }}
n_free = {{ default = 3, type = "int" }}
[states]
mom = {{ init = "zeros" }}
{states}
'''


def _load(tmp_path, update, top="", states=""):
    from optforge.codegen.loader import load_rule
    path = tmp_path / "toy.toml"
    path.write_text(TOY.format(top=top, update=update.strip("\n"), states=states))
    return load_rule(path)


ERRORS = [
    ("inner", "a = matmul(grad, grad)\nmom = grad\nweight = weight - lr * mom",
     4, 5, "matmul: inner sizes differ ((rows, cols) times (rows, cols))"),
    ("broadcast", "a = matmul(grad, transpose(grad))\nmom = grad + a\nweight = weight - lr * mom",
     5, 7, "shapes (rows, rows) and (rows, cols) do not broadcast"),
    ("state-shape", "a = matmul(transpose(grad), grad)\nmom = a\nweight = weight - lr * mom",
     5, 1, "'mom' has shape (rows, cols); the value assigned has shape (cols, cols)"),
    ("host-transpose", "a = transpose(beta)\nmom = grad\nweight = weight - lr * mom",
     4, 15, "transpose() takes a matrix"),
    ("loop-count", "x = grad\nfor _ in range(beta):\n    x = x * 2\nmom = x\nweight = weight - lr * mom",
     5, 16, "the count of a loop must be an integer literal from 1 to 8, or an int hyperparameter whose range"),
    ("loop-unbounded", "x = grad\nfor _ in range(n_free):\n    x = x * 2\nmom = x\nweight = weight - lr * mom",
     5, 16, "an int hyperparameter whose range lies within [0, 1000]"),
    ("loop-host", "x = grad\nfor _ in range(n):\n    k = beta * 2\n    x = x * k\nmom = x\nweight = weight - lr * mom",
     5, 1, "'k': a loop counted by a hyperparameter computes arrays only"),
    ("loop-zero", "for _ in range(n):\n    y = grad * 2\nmom = y\nweight = weight - lr * mom",
     6, 7, "'y' is first assigned inside the loop at update line 1, which may run zero times"),
    ("loop-big", "x = grad\nfor _ in range(9):\n    x = x * 2\nmom = x\nweight = weight - lr * mom",
     5, 16, "from 1 to 8"),
    ("loop-var", "x = grad\nfor i in range(3):\n    x = x * 2\nmom = x\nweight = weight - lr * mom",
     5, 5, "the loop variable cannot be read"),
    ("loop-state", "for _ in range(3):\n    mom = mom * 2\nweight = weight - lr * mom",
     5, 5, "a loop cannot assign 'mom'"),
    ("loop-if", "x = grad\nfor _ in range(3):\n    if beta > 0:\n        x = x * 2\nmom = x\nweight = weight - lr * mom",
     6, 5, "a loop body holds only assignments"),
    ("loop-product", "x = grad\nfor _ in range(2):\n    x = matmul(transpose(x), grad)\nmom = grad\nweight = weight - lr * mom",
     6, 9, "matmul: inner sizes differ ((cols, cols) times (rows, cols))"),   # found in the second iteration
    ("loop-shape", "x = grad\nfor _ in range(2):\n    x = transpose(x) * 2\nmom = grad\nweight = weight - lr * mom",
     5, 1, "changes its shape from one iteration"),
    ("branch-shape", "x = grad\nif beta > 0:\n    x = transpose(grad)\nmom = x\nweight = weight - lr * mom",
     7, 7, "'x' has shape (cols, rows) in one branch of the if at update line 2 and (rows, cols) in the other"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_matrix_constructs_are_checked_with_positions(case, tmp_path):
    ident, update, line, col, fragment = case
    with pytest.raises(SpecError) as info:
        _load(tmp_path, update)
    err = info.value
    assert fragment in err.message, f"{ident}: {err}"
    assert (err.line, err.col) == (line, col), f"{ident}: {err}"


def test_state_conditions_may_read_the_shape_but_not_the_step(tmp_path):
    rule = _load(tmp_path, "mom = grad\ncol = col_mean(grad)\nweight = weight - lr * mom",
                 states='col = { init = "zeros", shape = "cols", when = "ndim >= 2" }\n')
    assert rule.matrix == "first_rest"     # a column state makes it a matrix rule
    with pytest.raises(SpecError, match="'t' \\(builtin\\) cannot be used here"):
        _load(tmp_path, "mom = grad\nweight = weight - lr * mom",
              states='other = { init = "zeros", when = "t > 2" }\n')
    with pytest.raises(SpecError, match="'matrix' must be one of"):
        _load(tmp_path, "mom = grad\nweight = weight - lr * mom", top='matrix = "columns"')


def test_a_loop_unrolls_to_the_same_code_as_written_out(tmp_path):
    from optforge.codegen.analysis import analyse
    looped = _load(tmp_path, "x = grad\nfor _ in range(3):\n    x = beta * x + matmul(matmul(x, transpose(x)), x)\n"
                             "mom = x\nweight = weight - lr * mom")
    (tmp_path / "b").mkdir()
    written = _load(tmp_path / "b", "x = grad\n" + "x = beta * x + matmul(matmul(x, transpose(x)), x)\n" * 3
                    + "mom = x\nweight = weight - lr * mom")
    a, b = analyse(looped).variants, analyse(written).variants
    assert [v.outputs for v in a.values()] == [v.outputs for v in b.values()]
    assert type(looped.statements[1]).__name__ == "Loop" and looped.statements[1].count == 3


def test_docs_print_products_transposes_and_loops_as_mathematics():
    from optforge.codegen.formulas import Formulas
    from optforge.codegen.loader import load_rule
    from pathlib import Path
    rule = load_rule(Path(optforge.__file__).resolve().parent / "specs" / "torch" / "muon.toml")
    lines = Formulas(rule).lines()
    latex = "\n".join(line.latex for line in lines)
    assert "\\textbf{repeat}\\ \\mathrm{ns\\_steps}\\ \\textbf{times}:" in latex
    assert "^{\\top}" in latex and "matmul" not in latex and "transpose" not in latex
    mathml = "".join(line.mathml for line in lines)
    assert "<mi>⊤</mi>" in mathml and "\u2062" in mathml
    loops = [line for line in lines if line.kind == "loop"]
    assert len(loops) == 2 and all(line.depth == 1 for line in loops)


def test_unrolled_loops_count_toward_the_statement_limit(tmp_path):
    body = "".join("    x = x * 1.5 + grad\n" for _ in range(30))
    with pytest.raises(SpecError, match="once its loops are unrolled: more than the limit of 200") as info:
        _load(tmp_path, "x = grad\nfor _ in range(8):\n" + body + "mom = x\nweight = weight - lr * mom")
    assert (info.value.line, info.value.col) == (5, 1)
    rule = _load(tmp_path, "x = grad\nfor _ in range(6):\n" + body + "mom = x\nweight = weight - lr * mom")
    assert rule.statements[1].count == 6      # 184 statements unrolled: within the limit


def test_a_loop_counted_by_a_hyperparameter_repeats_its_body_that_many_times(tmp_path):
    path = tmp_path / "doubling.toml"
    path.write_text('name = "Doubling"\nupdate = """\nx = grad\nfor _ in range(n):\n    y = x * 2\n'
                    '    x = y + 0\nweight = weight - lr * x\n"""\n[hyperparameters]\n'
                    'n = { default = 3, type = "int", range = "[0, 10]" }\n')
    cls = optforge.load_spec(path)
    assert cls.SPEC["matrix"] == "first_rest"    # the generated NumPy code repeats it: a matrix rule
    for n in (0, 1, 3):
        opt = cls(learning_rate=0.5, n=n)
        w = np.zeros((2, 3))
        opt.update(0, w, np.ones((2, 3)), opt.create_state(0, w))
        np.testing.assert_array_equal(w, -0.5 * 2.0 ** n)


def test_symmetric_products_are_found_and_printed_as_a_product_with_a_transpose(tmp_path):
    """X X^T, X^T X, linear combinations of them and S S of a symmetric S are symmetric (so
    S S is printed S S^T, a syrk in NumPy); anything mixing in a non-symmetric array is not."""
    from optforge.codegen.analysis import analyse
    from optforge.codegen.emitters.numpy_module import matrix_kernel_lines
    from optforge.codegen.tac import lower, symmetric
    rule = _load(tmp_path, "a = matmul(grad, transpose(grad))\nb = 2 * a + matmul(a, a)\n"
                           "c = matmul(transpose(grad), grad) + 1\nd = matmul(c, c)\n"
                           "e = matmul(b, grad) + matmul(matmul(b, b), grad) + matmul(grad, d)\n"
                           "mom = e\nweight = weight - lr * mom")
    (variant,) = analyse(rule).variants.values()
    program = lower(variant, rule)
    found = symmetric(program)
    by_id = {v.id: v for v in program.code}
    products = [v for v in program.code if v.op == "matmul"]
    squares = [v for v in products if v.args[0] is v.args[1]]
    assert len(squares) == 3 and all(v.id in found for v in squares)     # a a, b b, c c
    general = [v for v in products if v.args[0] is not v.args[1] and "transpose" not in
               (v.args[0].op, v.args[1].op)]
    assert len(general) == 3 and not any(v.id in found for v in general)   # b g, (b b) g, g d
    assert not any(by_id[i].op == "transpose" for i in found)
    lines = "\n".join(matrix_kernel_lines(program, rule.matrix))
    for v in squares:
        assert f"xp.matmul(_t{v.args[0].id}, xp.swapaxes(_t{v.args[0].id}, -1, -2))" in lines
