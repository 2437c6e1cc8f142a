"""The differential verifier (`optforge check --verify`, optforge/verify/) and what it found.

Every accepted spec must compute on the native CPU kernels (single- and multi-tensor), on
the CUDA kernels compiled for the host and in optforge.torch what its NumPy `step`
computes: bit for bit where the generator says so (`codegen.targets.Coverage.exact`),
else within `verifier.ULPS` units in the last place of each array's largest magnitude
(reductions summed in double in another order; exp, log and powers from each target's
math library: a few ulps per step over four steps, against a wrong formula's percents).

- the specs of the regressions below (passes reading a scalar state before the pass that
  rewrites it, scalar states of matrix rules, booleans between matrix stages);
- a seeded batch of random valid specs over the whole grammar (`verify.random_specs`):
  200 in every run, 3000 with `pytest --long`; every one must load and agree everywhere;
- every shipped spec (`optforge check --verify specs/...`).
"""
import os
import re
from pathlib import Path

import numpy as np
import pytest

import optforge
from optforge.codegen.errors import SpecError
from optforge.runtime.backends import native
from optforge.runtime.engine import group as group_values
from optforge.verify import batch, random_specs, resolve, runs, verify
from optforge.verify import verifier

import cuda_host

ONE_PASS = '''name = "OnePass"
update = """
a = norm(grad)
weight = weight - lr * v * grad
v = v + a
"""
[hyperparameters]
learning_rate = 0.1
[states]
v = { init = 1.0 }
'''

TWO_PASS = '''name = "TwoPass"
update = """
a = norm(grad)
s = s + v * grad
b = norm(s)
weight = weight - lr * v * grad
v = v + a / b
"""
[hyperparameters]
learning_rate = 0.1
[states]
v = { init = 1.0 }
s = "zeros"
'''

MATRIX_SCALAR = '''name = "MatrixScalar"
update = """
v = 0.5 * v + col_mean(row_mean(grad))
weight = weight - lr * v * grad
"""
[hyperparameters]
learning_rate = 0.1
[states]
v = { init = 0.0 }
'''

CHANNELS = '''name = "Channels"
update = """
x = grad * grad
chan = col_mean(x) == 0
weight = where(chan, weight, weight - lr * grad)
"""
[hyperparameters]
learning_rate = 0.1
'''

ROW_STATE_READ_EARLY = '''name = "RowEarly"
update = """
r2 = row_mean(grad * grad)
weight = weight - lr * grad / (sqrt(r) + 1)
r = 0.5 * r + 0.5 * r2
"""
[hyperparameters]
learning_rate = 0.1
[states]
r = { init = "zeros", shape = "rows" }
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    cuda_host.need(cuda_host.compiler(), "g++")
    return tmp_path_factory.mktemp("verify")


def spec(tmp_path, text, name):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def assert_agrees(report):
    text = "\n".join(report.lines())
    assert not report.failed, text
    statuses = {o.target: o.status for o in report.outcomes}
    assert all(s in ("reference", "bit-identical", "within tolerance") for s in statuses.values()), text
    return text


@pytest.mark.parametrize("text,name", [(ONE_PASS, "onepass"), (TWO_PASS, "twopass"),
                                       (ROW_STATE_READ_EARLY, "rowearly")])
def test_a_state_read_before_the_pass_that_rewrites_it_is_its_old_value_on_every_target(
        tmp_path, folder, text, name, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    cls, label, covered = resolve(spec(tmp_path, text, name))
    assert covered.gap is None and not covered.exact     # kernels, norms summed in double
    # the defect: the weight update read the slot the norms pass fills later (v = 0);
    # one step by hand: fused and step within the norms' rounding
    weights = [np.linspace(-2, 2, 60, dtype=np.float64).reshape(6, 10) for _ in range(2)]
    grads = np.cos(np.arange(60.0)).reshape(6, 10)
    opts = [cls(use_fused_step=fused) for fused in (False, True)]
    states = [o.create_state(0, w) for o, w in zip(opts, weights)]
    for o, w, s in zip(opts, weights, states):
        for _ in range(3):
            o.update(0, w, grads.copy(), s)
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-13, atol=1e-13)
    assert_agrees(verify(cls, label, covered, folder))


def test_a_scalar_state_of_a_matrix_rule_holds_its_one_value(tmp_path, folder, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    cls, label, covered = resolve(spec(tmp_path, MATRIX_SCALAR, "matrixscalar"))
    opt = cls(use_fused_step=False)
    weight, grad = np.ones((3, 4)), np.arange(12.0).reshape(3, 4)
    state = opt.create_state(0, weight)
    opt.update(0, weight, grad, state)     # raised "cannot reshape array of size 12 into shape ()"
    assert state.shape == () and state == 0.5 * 0.0 + grad.mean()
    assert_agrees(verify(cls, label, covered, folder))


def test_a_per_matrix_mean_into_a_scalar_state_under_last_two_is_a_positioned_error(tmp_path):
    path = spec(tmp_path, MATRIX_SCALAR.replace('update = """', 'matrix = "last_two"\nupdate = """'), "lastwo")
    with pytest.raises(SpecError, match="one value per matrix of the batch") as err:
        optforge.load_spec(path)
    assert (err.value.line, err.value.col) == (4, 1)


def test_a_boolean_between_matrix_stages_keeps_the_native_and_cuda_kernels(tmp_path, folder, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    cls, label, covered = resolve(spec(tmp_path, CHANNELS, "channels"))
    assert covered.gap is None and covered.exact
    report = verify(cls, label, covered, folder)
    assert_agrees(report)
    assert {o.target: o.status for o in report.outcomes}["CUDA compiled for the host"] == "bit-identical"


NOISE_WITH_NORM = '''name = "NoisyNorm"
update = """
n = norm(grad)
weight = weight - lr * grad / (n + 1) + normal(0, 0.01)
"""
[hyperparameters]
learning_rate = 0.1
seed = { default = 0, type = "int", range = "[0, inf)" }
'''


def test_a_rule_without_kernels_says_why_in_check_and_refuses_a_demanded_native_backend(tmp_path, monkeypatch,
                                                                                     capsys):
    from optforge.cli import main
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = spec(tmp_path, NOISE_WITH_NORM, "noisynorm")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}:4:1: targets: NumPy only, no native CPU or CUDA kernels: noise (normal()) in a rule " \
           "with reductions" in out
    cls = optforge.load_spec(path, register=False)
    opt = cls()
    weight = np.ones(5, np.float32)
    state = opt.create_state(0, weight)
    monkeypatch.setenv(native.BACKEND_ENV, "native")
    with pytest.raises(RuntimeError, match="OPTFORGE_CPU_BACKEND=native, but NoisyNorm has no native CPU kernels"):
        opt.update(0, weight, np.ones(5, np.float32), state)
    assert (weight == 1).all() and opt._index_update_count == {}
    monkeypatch.setenv(native.BACKEND_ENV, "")      # not demanded: the NumPy code runs
    opt.update(0, weight, np.ones(5, np.float32), state)
    assert (weight != 1).all()


def test_the_verifier_reports_a_kernel_that_computes_something_else(tmp_path, folder, monkeypatch):
    """A wrong native kernel (here: its update scaled by 1 + 2^-20 after it ran) is a
    disagreement naming the target, the setting, the step and the array."""
    cls, label, covered = resolve(optforge.__path__[0] + "/specs/adam.toml")
    execute = native.execute

    def wrong(optimizer, indices, weights, *args, **kwargs):
        execute(optimizer, indices, weights, *args, **kwargs)
        for w in weights:
            w *= 1 + 2.0 ** -20
    monkeypatch.setattr(native, "execute", wrong)
    report = verify(cls, label, covered, folder, cuda=False, torch=False, dtypes=("float32",), quick=True)
    assert report.failed
    line = next(line for line in report.lines() if "one update for all" in line)
    assert "DIFFERS" in line and "step 1, parameter 0 weight" in line and "not bit-identical" in line


GROUPED = '''name = "Grouped"
update = """
grad = clip(grad * rescale_grad, clip_gradient)
a = group_sum(dot(grad, p0 - weight))
b = group_max(max(abs(s)))
s = 0.5 * s + 0.5 * grad
c = group_norm(s)
d = 0.9 * d + 0.1 * a / (1 + abs(a))
weight = weight - lr * (d * grad + b * s / (1 + c))
"""
[hyperparameters]
learning_rate = 0.1
d0 = { default = 0.5, range = "(0, 10]" }
[states]
d = { init = "d0", shape = "group" }
s = "zeros"
p0 = "weight"
'''


def test_a_group_rule_runs_in_every_layout_on_every_target(tmp_path, folder, monkeypatch):
    """Group values differ with the split of the parameters into groups: each target runs in
    every layout against step in the same one. The CUDA target's partials stage runs on the
    host arrays (it raised without a GPU: the CuPy code ran on DeviceArrays). The partials are
    sums the kernels add in another order than NumPy's: the targets agree within the
    verifier's ulp tolerance, not bit for bit."""
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    cls, label, covered = resolve(spec(tmp_path, GROUPED, "grouped"))
    assert covered.gap is None and not covered.exact     # every target has kernels; partials are sums
    shapes = verifier.scenario.shapes_for(cls.SPEC)
    layouts = runs.layouts(len(shapes))
    assert [[len(g) for g in layout] for layout in layouts] == [[5], [1, 2, 2]]
    # the layouts are not the same computation (a target run in the wrong one would differ)
    finals = [runs.mxnet_run(cls, {}, shapes, "float64", 1, fused=False, multi=multi, groups=groups).steps[-1][4][0]
              for multi, groups in ((False, None),) + tuple((True, g) for g in layouts)]
    assert all(not np.array_equal(a, b) for k, a in enumerate(finals) for b in finals[k + 1:])
    report = verify(cls, label, covered, folder, dtypes=("float32",), quick=True)
    text = assert_agrees(report)
    assert report.layouts == ("groups of 5", "groups of 1+2+2"), text
    statuses = {o.target: o.status for o in report.outcomes}
    assert statuses["CUDA compiled for the host"] in ("bit-identical", "within tolerance"), text


def test_the_verifier_compares_the_group_states(tmp_path, folder, monkeypatch):
    """A native path whose group state is off by 2^-12 after the step (the weights of that
    step still right; beyond the 1024-ulp float32 tolerance of a rule whose partials are sums)
    is a disagreement naming the step, the group and the state."""
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    cls, label, covered = resolve(spec(tmp_path, GROUPED, "grouped"))
    updates = group_values.updates

    def wrong(engine, planned):
        found = updates(engine, planned)
        if os.environ.get(native.BACKEND_ENV) == "native":     # (the native targets demand it)
            found = {name: value * (1 + 2.0 ** -12) for name, value in found.items()}
        return found
    monkeypatch.setattr(group_values, "updates", wrong)
    report = verify(cls, label, covered, folder, cuda=False, torch=False, dtypes=("float32",), quick=True)
    assert report.failed
    line = next(line for line in report.lines() if "one update for all" in line)
    assert "DIFFERS" in line and "step 1, group 0 state 'd'" in line and "groups of 5" in line, line


def test_random_specs_are_deterministic_and_valid():
    assert random_specs.generate(7) == random_specs.generate(7)
    assert random_specs.generate(7) != random_specs.generate(8)


@pytest.fixture(scope="module")
def random_batch(request, tmp_path_factory, folder):
    """The verifier's reports of the seeded batch, built together (verify/batch.py)."""
    count = 3000 if request.config.getoption("--long") else 200
    root = tmp_path_factory.mktemp("random")
    paths = batch.write_specs(range(count), root / "specs")
    return batch.verify_batch(paths, root / "build")


def test_every_random_spec_loads_and_runs_every_target_as_step_does(random_batch):
    kinds = {}
    failures = []
    for path, report in random_batch:
        kind = path.read_text().split("A random ", 1)[1].split(" rule", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
        statuses = {o.target: o.status for o in report.outcomes}
        if report.failed or any(s not in ("reference", "bit-identical", "within tolerance")
                                for s in statuses.values()):
            failures.append("\n".join(report.lines()) + "\n" + path.read_text())
    assert not failures, f"{len(failures)} of {len(random_batch)} random specs disagree:\n\n" + "\n\n".join(failures[:5])
    assert len(random_batch) >= 200
    assert set(kinds) == set(random_specs.KINDS)      # every kind of rule the language has
    assert min(kinds.values()) >= len(random_batch) // 10
    # group rules: a good share, each run in every layout of its parameters into groups
    grouped = [(path, report) for path, report in random_batch if "group_" in path.read_text()]
    assert len(grouped) >= len(random_batch) // 6
    for _, report in grouped:      # (rules with row states take no 0-d tensor: 4 shapes)
        assert len(report.shapes) >= 4 and report.layouts == (f"groups of {len(report.shapes)}",
                                                             f"groups of 1+2+{len(report.shapes) - 3}")


def test_the_random_batch_reaches_every_construct(random_batch):
    text = "\n".join(path.read_text() for path, _ in random_batch)
    for construct in ("norm(", "row_mean(", "col_mean(", "= sum(", "= dot(", "= max(", "= min(", "row_sum(",
                      "row_max(", "row_min(", "col_sum(", "col_max(", "col_min(", "matmul(", "transpose(", "where(", "normal(",
                      "clip(", "exp(", "log(", "sqrt(", "sign(", "maximum(", "minimum(", "**", "if ", "else:",
                      "for _ in range(", "is not None", 'shape = "rows"', 'shape = "cols"', "when =",
                      'dtype = "float32"', '"weight"', "{ init = 0.0 }", "[modes]", 'matrix = "last_two"',
                      'matrix = "first_rest"', "choices", 'type = "int"', "optional = true", "t > ", "t % 2",
                      "group_sum(", "group_max(", "group_min(", "group_norm(", 'shape = "group"',
                      'shape = "rows_by_rows"', 'shape = "cols_by_cols"', "inverse_root(", "eigh(", "qr(",
                      "sort_rows(", "sort_cols(", "triu(", "solve(", "solve_right(", "norm_lower_bound("):
        assert construct in text, construct
    # group states from a number and from a hyperparameter, their old values read by a partial
    assert re.search(r'init = \d\.\d, shape = "group"', text) and re.search(r'init = "c\d+", shape = "group"', text)
    assert re.search(r"group_\w+\(d\d+ \* ", text)
    # partials reading tensor states before and after the statement that rewrites them
    reads = {"before": 0, "after": 0}
    for path, _ in random_batch:
        lines = path.read_text().split("\n")
        for k, line in enumerate(lines):
            if "group_" in line:
                for state in set(re.findall(r"\bs\d+\b", line)):
                    written = [j for j, other in enumerate(lines) if other.startswith(f"{state} = ")]
                    reads["before"] += any(j > k for j in written)
                    reads["after"] += any(j < k for j in written)
    assert reads["before"] and reads["after"], reads


SHIPPED = sorted((Path(optforge.__path__[0]) / "specs").rglob("*.toml"))


@pytest.fixture(scope="module")
def shipped_batch(request, tmp_path_factory):
    """The verifier's reports of every shipped spec (float32 and float64, every reachable
    variant, a tensor across the kernels' chunks); host CUDA builds shared with the tests'."""
    cuda_host.need(cuda_host.compiler(), "g++")
    folder = cuda_host.cache_folder(request.config, tmp_path_factory)
    return dict(batch.verify_batch(SHIPPED, folder, dtypes=("float32", "float64"), quick=False, large=True))


@pytest.mark.parametrize("path", SHIPPED, ids=[f"{p.parent.name}-{p.stem}" for p in SHIPPED])
def test_every_shipped_spec_computes_the_same_on_every_target(path, shipped_batch):
    report = shipped_batch[path]
    assert_agrees(report)
    assert report.variants, "\n".join(report.lines())
