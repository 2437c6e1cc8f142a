"""Shared helpers for the tests: seeded signed data, state comparison, stated tolerances."""
import inspect

import numpy as np

# Tolerances for comparing optforge with the hand-written references.
# Both sides compute the same formula with different operation orders (sympy's
# canonical order, hoisted host scalars computed in float64 and rounded once);
# each operation rounds by at most half an ulp, a step has up to ~25 of them and
# errors feed back through the states over the steps compared.
# - float64: rtol 1e-10 (a few thousand ulps at 1.1e-16 each, far below any
#   semantic difference such as a missing term or a swapped beta).
# - float32: rtol 2e-5 (about 170 ulps at 6e-8 each); atol 1e-6 covers values
#   that cancel to near zero, where relative error is meaningless.
TOLERANCES = {
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
    np.dtype(np.float32): dict(rtol=2e-5, atol=1e-6),
}

SHAPES = [(3, 4, 5), (7,)]


def signed(rng, shape, scale, dtype):
    """Normal data of both signs; with scale 2 many values lie beyond a clip bound of 0.6."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


def weights_and_grads(seed, shapes, steps, dtype=np.float32):
    """Float weights of `shapes` and `steps` lists of gradients for them, of both signs and
    scale 3 (beyond a clip bound of 1 once rescaled by 0.5)."""
    rng = np.random.default_rng(seed)
    weights = [signed(rng, shape, 1.0, dtype) for shape in shapes]
    return weights, [[signed(rng, shape, 3.0, dtype) for shape in shapes] for _ in range(steps)]


def as_parts(state):
    """A state as a flat tuple of arrays (None -> ())."""
    if state is None:
        return ()
    if isinstance(state, tuple):
        return state
    return (state,)


def assert_close(actual, expected, dtype, what):
    tol = TOLERANCES[np.dtype(dtype)]
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **tol)


def assert_close_to_largest(ours, expected, rtol):
    """Each array of `ours` equals its `expected` within rtol of the largest entry of them all
    (one scale: a step's rounding is relative to the weights' size, not to each entry's)."""
    scale = max(np.abs(e).max() for e in expected)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=0, atol=rtol * scale)


def assert_states_close(actual, expected, dtype, what):
    a, e = as_parts(actual), as_parts(expected)
    assert len(a) == len(e), f"{what}: state has {len(a)} parts, reference {len(e)}"
    for k, (x, y) in enumerate(zip(a, e)):
        assert_close(x, y, dtype, f"{what}, state part {k}")


# The common schedule of the reference comparisons.
BEGIN = 3                                      # begin_num_update: the first step has t = 4
STEPS = 6
LEARNING_RATES = {1: 0.05, 3: 0.02, 5: 0.08}   # set before these steps
WD = 0.02
RESCALE = 0.7


def noise(seed, index, t, shape, dtype):
    """SGLD's documented noise contract: a function of (seed, index, t, draw number) only."""
    return np.random.default_rng([seed, index, t, 1]).standard_normal(shape, dtype=dtype)


def check_against_reference(flavor, name, hp, rule, dtype, clip):
    """Run an optimizer and a reference side by side: STEPS steps on two parameters of
    different shapes, signed data with values beyond the clip bound, wd > 0, rescale_grad
    != 1, the learning rate changed between steps, begin_num_update > 0. Weights and every
    state part are compared after every step; the caller's gradients must not change."""
    import optforge
    rng = np.random.default_rng(abs(hash((flavor, name, str(hp)))) % 2**32)
    hp = dict(hp)
    wd = hp.pop("wd", WD)
    names = hp.pop("param_idx2name", {})
    lr_scale = hp.pop("lr_scale", 1.0)
    if isinstance(rule, type):     # references with memory of their own (1.x LARS, LBSGD)
        rule = rule()
    accepts = inspect.signature(rule).parameters
    # A rule that draws noise is checked on `step`, whose numbers `noise()` reproduces;
    # fused_step's kernels draw Philox numbers (the CUDA ones), and test_native_cpu.py and
    # test_cuda_cpu.py prove them equal to `step` given those numbers.
    fused = "noise" not in accepts
    opt = optforge.create(name, flavor=flavor, wd=wd, rescale_grad=RESCALE, clip_gradient=clip,
                          begin_num_update=BEGIN, param_idx2name=names, use_fused_step=fused, **hp)
    weights = [signed(rng, s, 1.5, dtype) for s in SHAPES]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    expected_w = [w.copy() for w in weights]
    expected_s = [copy_state(s) for s in states]
    lr = None
    for step in range(1, STEPS + 1):
        if step in LEARNING_RATES:
            lr = LEARNING_RATES[step] * lr_scale
            opt.set_learning_rate(lr)
        grads = [signed(rng, s, 2.0, dtype) for s in SHAPES]
        before = [g.copy() for g in grads]
        t = BEGIN + step
        for i in range(len(weights)):
            extra = {}
            if "noise" in accepts:
                extra["noise"] = noise(hp["seed"], i, t, SHAPES[i], dtype)
            if "name" in accepts:
                extra["name"] = names.get(i, str(i))
            if "named" in accepts:
                extra["named"] = i in names
            if "index" in accepts:
                extra["index"] = i
            hp_ref = {k: v for k, v in hp.items() if k != "seed"}
            expected_w[i], expected_s[i] = rule(expected_w[i], grads[i], expected_s[i], lr=lr, wd=wd, t=t,
                                                rescale_grad=RESCALE, clip_gradient=clip, **hp_ref, **extra)
        opt.update(list(range(len(weights))), weights, grads, states)
        for i in range(len(weights)):
            np.testing.assert_array_equal(grads[i], before[i], err_msg="the caller's gradient changed")
            assert weights[i].dtype == dtype
            assert_close(weights[i], expected_w[i], dtype, f"{name} weight {i} after step {step}")
            assert_states_close(states[i], expected_s[i], dtype, f"{name} param {i} after step {step}")
    assert opt.num_update == BEGIN + STEPS
    assert opt._index_update_count == {0: BEGIN + STEPS, 1: BEGIN + STEPS}


def copy_state(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.copy() for s in state)
    return state.copy()


def usable_wd(cls, wd):
    """The weight decay a test may use with `cls`: 0 where the rule requires `wd == 0`
    (GroupAdaGrad, torch's SparseAdam), else `wd`."""
    return 0.0 if cls.SPEC.get("requires") == "wd == 0" else wd


def import_file(path, name):
    """Import a generated module from its file under `name`, leaving sys.modules as it was."""
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def shapes_for(spec, shapes):
    """The test shapes a rule accepts: a rule that requires 2-D parameters (Muon) gets each
    shape seen as a matrix, (first axis, the others' product) (a vector is one column)."""
    if spec.get("requires") != "ndim == 2":
        return list(shapes)
    import math
    return [tuple(s) if len(s) == 2 else ((s[0] if s else 1), math.prod(s[1:])) for s in shapes]


def html5_error(text):
    """The first HTML5 parse error of a page as 'line:col: code', or None. html5lib's strict
    parser raises on any error (an unescaped `<` in MathML text, a stray end tag, ...),
    where a browser would silently repair the page."""
    import pytest
    html5lib = pytest.importorskip("html5lib")
    parser = html5lib.HTMLParser(strict=True)
    try:
        parser.parse(text)
    except html5lib.html5parser.ParseError:
        (line, col), code, _ = parser.errors[0]
        return f"{line}:{col}: {code}"
    return None


def count_stage_runs(monkeypatch):
    """The list each native stage-driver run (runtime/backends/native_matrix.run) appends its
    result to, so a comparison can show the stage kernels ran, not the NumPy fallback;
    skips when there is no C++ compiler."""
    import pytest
    from optforge.runtime.backends import native_build, native_matrix
    try:
        native_build.compiler()
    except native_build.CompilerMissing as err:
        pytest.skip(f"no C++ compiler: {err}")
    calls = []
    original = native_matrix.run

    def counted(*args):
        ran = original(*args)
        calls.append(ran)
        return ran

    monkeypatch.setattr(native_matrix, "run", counted)
    return calls

