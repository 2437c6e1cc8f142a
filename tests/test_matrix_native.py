"""The native CPU stage kernels of matrix rules (Muon, Adafactor in both flavors).

A matrix rule's element-wise stages run as generated C++ (generated/cpu/<spec>.cpp)
between NumPy's products and reductions (runtime/backends/native_matrix.py). Each test
compares `fused_step` (the stage kernels) with `step` (the generated NumPy kernel, which
tests/test_matrix_rules.py checks against hand-written references and torch.optim) and
checks that the stage kernels really ran.

Tolerance: none, float32 and float64 alike (`assert_array_equal`). The stage kernels
compute the same IEEE operations in the same order as the NumPy kernel (the same
three-address code; additions, products, quotients and square roots are correctly
rounded in both; compiled with -ffp-contract=off, so no fused multiply-adds; host scalars
rounded to the math type once, as NumPy does with a Python float), and every product
and reduction is the very same NumPy call, so the results are the same bits.

Steps: 6, with begin_num_update > 0, wd > 0, rescale_grad != 1, signed data with values
beyond the clip bound, a learning rate changed between steps; shapes 2-D tall, wide and
square, >2-D (Muon's rule: refused; Adafactor's: factored along the last two axes) and 1-D
(Adafactor's unfactored fallback).
"""
import numpy as np
import pytest

import optforge
from optforge.codegen.matrix_stages import Library, Marker, Stage, split
from optforge.runtime.backends import native, native_build, native_matrix
from support import count_stage_runs, signed

BEGIN = 4
STEPS = 6
LEARNING_RATES = {1: 0.05, 3: 0.02, 5: 0.08}
MUON_SHAPES = [(6, 4), (3, 8), (5, 5), (40, 24)]
ADAFACTOR_SHAPES = [(6, 4), (3, 8), (7,), (2, 3, 5), (2, 2, 3, 4), (130, 600)]
CASES = [
    ("torch", "muon", MUON_SHAPES, {}),
    ("torch", "muon", MUON_SHAPES, {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3}),
    ("torch", "adafactor", ADAFACTOR_SHAPES, {}),
    ("torch", "adafactor", ADAFACTOR_SHAPES, {"maximize": True, "epsilon1": 1e-20, "d": 2.0}),
    ("mxnet2", "adafactor", ADAFACTOR_SHAPES, {"beta1": 0.9}),
    ("mxnet2", "adafactor", ADAFACTOR_SHAPES, {"relative_step": False, "scale_parameter": False}),
    ("mxnet2", "sm3", ADAFACTOR_SHAPES, {}),
    ("mxnet2", "sm3", ADAFACTOR_SHAPES, {"beta": 0.9, "momentum": 0.5}),
]


@pytest.fixture(autouse=True)
def stage_calls(monkeypatch):
    """Parameter steps the stage kernels ran (a comparison must not see the NumPy fallback)."""
    return count_stage_runs(monkeypatch)


def _pair(flavor, name, hyper, clip):
    return [optforge.create(name, flavor=flavor, use_fused_step=fused, wd=0.03, rescale_grad=0.7,
                            clip_gradient=clip, begin_num_update=BEGIN, **hyper) for fused in (True, False)]


def fused_against_step(flavor, name, shapes, hyper, dtype, clip, device=np.copy, assert_same=None):
    """`fused_step` (the stage kernels) against `step` (the NumPy kernel): STEPS updates of
    every shape with wd, rescale_grad, begin_num_update, the clip and a changing learning
    rate, weights and states compared after each by `assert_same(ours, theirs, message)`
    (default: equal bit for bit); the fused side's weights and gradients are `device(array)`
    (a copy; CuPy arrays on a GPU); the steps must change the weights."""
    assert_same = assert_same or (lambda ours, theirs, message: np.testing.assert_array_equal(
        ours, theirs, err_msg=message))
    rng = np.random.default_rng(len(name) + 7 * len(hyper))
    fused, plain = _pair(flavor, name, hyper, clip)
    theirs = [signed(rng, s, 1.5, dtype) for s in shapes]
    ours = [device(w) for w in theirs]
    start = [w.copy() for w in theirs]
    s_ours = [fused.create_state(i, w) for i, w in enumerate(ours)]
    s_theirs = [plain.create_state(i, w) for i, w in enumerate(theirs)]
    indices = list(range(len(shapes)))
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            fused.set_learning_rate(LEARNING_RATES[step])
            plain.set_learning_rate(LEARNING_RATES[step])
        grads = [signed(rng, s, 2.0, dtype) for s in shapes]
        fused.update(indices, ours, [device(g) for g in grads], s_ours)
        plain.update(indices, theirs, grads, s_theirs)
        for i in indices:
            assert_same(ours[i], theirs[i], f"weight {i} after step {step}")
            a = s_ours[i] if isinstance(s_ours[i], tuple) else (s_ours[i],)
            b = s_theirs[i] if isinstance(s_theirs[i], tuple) else (s_theirs[i],)
            for x, y in zip(a, b, strict=True):
                assert_same(x, y, f"state of {i} after step {step}")
    assert all(not np.array_equal(w, w0) for w, w0 in zip(theirs, start))      # the steps did something


@pytest.mark.parametrize("clip", [None, 0.6], ids=["noclip", "clip0.6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("flavor,name,shapes,hyper", CASES, ids=[f"{f}-{n}{h}" for f, n, _, h in CASES])
def test_stage_kernels_equal_the_numpy_kernel_bit_for_bit(flavor, name, shapes, hyper, dtype, clip, stage_calls):
    fused_against_step(flavor, name, shapes, hyper, dtype, clip)
    assert stage_calls == [True] * (STEPS * len(shapes))      # every parameter step ran the stages


def test_the_numpy_kernel_runs_where_the_stage_kernels_do_not_apply(monkeypatch, stage_calls):
    rng = np.random.default_rng(3)
    fused, plain = _pair("torch", "adafactor", {}, None)
    # float16 weights (no float16 stage kernels) and a strided weight run the NumPy kernel
    for weight in (signed(rng, (6, 4), 1.0, np.float16), signed(rng, (6, 8), 1.0, np.float32)[:, ::2]):
        theirs = weight.copy()
        s1, s2 = fused.create_state(0, weight), plain.create_state(0, theirs)
        grad = signed(rng, weight.shape, 1.0, weight.dtype)
        fused.update(0, weight, grad, s1)
        plain.update(0, theirs, grad, s2)
        np.testing.assert_array_equal(weight, theirs)
    # float16: the NumPy kernel; the strided weight: plain NumPy arrays of one dtype, so the
    # stages run on it through its strides and the result is written back into it
    assert stage_calls == [False, True]
    monkeypatch.setenv(native.BACKEND_ENV, "numpy")
    stage_calls.clear()
    w = signed(rng, (5, 7), 1.0, np.float64)
    fused.update(1, w, signed(rng, (5, 7), 1.0, np.float64), fused.create_state(1, w))
    assert stage_calls == [False]


def test_the_split_keeps_element_wise_stages_between_library_operations():
    """Muon's variants: every stage is element-wise and reads only inputs or values of earlier
    items; products and transposes are library operations; the loop's markers stay in order."""
    from pathlib import Path
    from optforge.codegen.analysis import analyse
    from optforge.codegen.loader import load_rule
    from optforge.codegen.tac import lower
    rule = load_rule(Path(optforge.__file__).resolve().parent / "specs" / "torch" / "muon.toml")
    for variant in analyse(rule).variants.values():
        program = lower(variant, rule)
        items = split(program)
        done = {v.id for v in program.inputs.values()}
        ops = []
        for item in items:
            if isinstance(item, Stage):
                assert item.vals and all(v.op not in ("matmul", "transpose", "norm") for v in item.vals)
                assert all(a.id in done for a in item.reads)
                assert item.stores
                done |= {v.id for v in item.vals}
                ops.append("stage")
            else:
                assert isinstance(item, (Library, Marker))
                done.add(item.val.id)
                ops.append(item.val.op)
        assert sorted(done - {v.id for v in program.inputs.values()}) == sorted(v.id for v in program.code)
        assert ops.count("matmul") == 3 and ops.count("loop") == 1 and ops.index("loop") < ops.index("end")
        assert [o for o in ops if o in ("loop", "end")] == ["loop", "end"]


TWIST = '''name = "Twist"
update = """
g = clip(grad * rescale_grad, clip_gradient)
s = matmul(transpose(g), g)
y = transpose(matmul(s, transpose(g)))
mom = beta * mom + y / maximum(norm(y), 1e-8) + row_mean(g) * col_mean(g) - sqrt(abs(g))
weight = weight - lr * (mom + wd * weight)
"""
[hyperparameters]
beta = 0.9
[states]
mom = { init = "zeros" }
'''


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_a_loaded_spec_runs_its_stages_with_transposed_and_broadcast_operands(tmp_path, monkeypatch, dtype,
                                                                              stage_calls):
    """A spec of optforge.load_spec (its stage kernels from the cache entry's cpu/ folder):
    a stage reads a transposed product (strided columns: the general loop) and a row mean
    times a column mean (broadcast operands), bit for bit as the NumPy kernel."""
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "twist.toml"
    path.write_text(TWIST)
    cls = optforge.load_spec(path)     # (loaded once per process: the class is kept in memory)
    rng = np.random.default_rng(9)
    fused, plain = (cls(learning_rate=0.1, wd=0.05, rescale_grad=0.8, clip_gradient=1.2, use_fused_step=f)
                    for f in (True, False))
    shapes = [(5, 3), (3, 7), (2, 3, 4)]
    ours = [signed(rng, s, 1.5, dtype) for s in shapes]
    theirs = [w.copy() for w in ours]
    source = native_matrix.source_of(fused._module)
    assert source.is_file() and source.parent.name == "cpu" and "generated" not in source.parts
    s1 = [fused.create_state(i, w) for i, w in enumerate(ours)]
    s2 = [plain.create_state(i, w) for i, w in enumerate(theirs)]
    for _ in range(3):
        grads = [signed(rng, s, 2.0, dtype) for s in shapes]
        fused.update([0, 1, 2], ours, grads, s1)
        plain.update([0, 1, 2], theirs, grads, s2)
        for a, b, x, y in zip(ours, theirs, s1, s2):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(x, y)
    assert stage_calls == [True] * 9


def test_a_library_that_cannot_be_built_warns_once_and_the_numpy_kernel_runs(monkeypatch, stage_calls):
    def broken(path, kernel=None):
        raise RuntimeError("c++ failed to compile")

    monkeypatch.setattr(native_build, "load", broken)
    monkeypatch.setattr(native_matrix, "_LIBRARIES", {})
    monkeypatch.setattr(native, "_warned", set())
    rng = np.random.default_rng(11)
    fused, plain = _pair("torch", "muon", {}, None)
    w1 = signed(rng, (6, 4), 1.0, np.float64)
    w2 = w1.copy()
    s1, s2 = fused.create_state(0, w1), plain.create_state(0, w2)
    with pytest.warns(RuntimeWarning, match="cannot be built .*c\\+\\+ failed to compile.*NumPy code runs") as record:
        for _ in range(2):
            g = signed(rng, (6, 4), 1.0, np.float64)
            fused.update(0, w1, g, s1)
            plain.update(0, w2, g, s2)
    assert len([w for w in record if "cannot be built" in str(w.message)]) == 1      # once
    np.testing.assert_array_equal(w1, w2)
    assert stage_calls == [False, False]


@pytest.mark.parametrize("threads", [1, 2])
def test_stages_of_2_20_elements_and_more_share_rows_across_threads(threads, stage_calls):
    """Stages of at least 2^20 elements run on OpenMP threads: the same bits as the NumPy
    kernel whatever the thread count (each element is computed alone)."""
    native.set_num_threads(threads)
    try:
        rng = np.random.default_rng(21)
        fused, plain = _pair("torch", "adafactor", {}, 0.6)
        shapes = [(2, 520, 1031)]           # 2 matrices of 520 x 1031: 1 072 240 elements
        ours = [signed(rng, s, 1.5, np.float32) for s in shapes]
        theirs = [w.copy() for w in ours]
        s1, s2 = [fused.create_state(0, ours[0])], [plain.create_state(0, theirs[0])]
        for _ in range(2):
            grads = [signed(rng, s, 2.0, np.float32) for s in shapes]
            fused.update([0], ours, grads, s1)
            plain.update([0], theirs, grads, s2)
            np.testing.assert_array_equal(ours[0], theirs[0])
            for x, y in zip(s1[0], s2[0], strict=True):
                np.testing.assert_array_equal(x, y)
        assert stage_calls == [True, True]
    finally:
        native.set_num_threads(None)


def test_an_output_written_in_place_only_when_nothing_later_reads_its_old_value(tmp_path, monkeypatch, stage_calls):
    """`mom`'s new value is computed before a product and a norm, and its old value is read
    after them: `mom` must not be written in place (its copy happens at the end), the weight
    may; fused equals the NumPy kernel bit for bit either way."""
    from optforge.codegen.analysis import analyse
    from optforge.codegen.loader import load_rule
    from optforge.codegen.matrix_stages import in_place
    from optforge.codegen.tac import lower
    text = TWIST.replace('name = "Twist"', 'name = "OldRead"').replace(
        "mom = beta * mom + y / maximum(norm(y), 1e-8) + row_mean(g) * col_mean(g) - sqrt(abs(g))",
        "m = beta * mom + g\\nn = norm(m)\\nold = mom * n\\nmom = m\\nz = matmul(m, transpose(m))").replace(
        "weight = weight - lr * (mom + wd * weight)",
        "weight = weight - lr * (matmul(z, m) / n + old + wd * weight)")
    path = tmp_path / "oldread.toml"
    path.write_text(text)
    rule = load_rule(path)
    for variant in analyse(rule).variants.values():
        program = lower(variant, rule)
        chosen = in_place(program, split(program))
        assert "weight" in chosen and "mom" not in chosen, chosen
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    cls = optforge.load_spec(path)
    rng = np.random.default_rng(2)
    fused, plain = (cls(learning_rate=0.1, wd=0.05, use_fused_step=f) for f in (True, False))
    w1 = signed(rng, (6, 5), 1.0, np.float64)
    w2 = w1.copy()
    s1, s2 = fused.create_state(0, w1), plain.create_state(0, w2)
    for _ in range(3):
        g = signed(rng, (6, 5), 1.0, np.float64)
        fused.update(0, w1, g, s1)
        plain.update(0, w2, g, s2)
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(s1, s2)
    assert stage_calls == [True] * 3


def test_a_gradient_that_is_the_weight_is_read_as_a_copy(stage_calls):
    """The stages write outputs into their arrays as they go; a gradient that is the weight
    itself is copied before the step (a step computes from the values its arrays hold when
    it is called), so the stage kernels run and equal the NumPy kernel's step."""
    rng = np.random.default_rng(8)
    fused, plain = _pair("torch", "muon", {}, None)
    w1 = signed(rng, (6, 4), 1.0, np.float64)
    w2 = w1.copy()
    s1, s2 = fused.create_state(0, w1), plain.create_state(0, w2)
    fused.update(0, w1, w1, s1)
    plain.update(0, w2, w2, s2)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(s1, s2)
    assert stage_calls == [True]
