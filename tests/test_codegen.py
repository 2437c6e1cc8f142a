"""The generator's analysis: host scalars hoisted, CSE, power expansion, specialisation,
in-place schedules, determinism."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import optforge
from optforge.codegen import generate
from optforge.codegen.analysis import analyse
from optforge.codegen.loader import load_rule
from optforge.codegen.tac import lower


def _kernel_source(name, variant=None):
    module = optforge.runtime.registry.lookup(name)._module
    variants = module.VARIANTS
    v = variants[variant] if variant is not None else next(iter(variants.values()))
    return inspect.getsource(v["kernel"]), inspect.getsource(v["host"])


def test_host_scalars_are_hoisted_out_of_the_kernel():
    kernel, host = _kernel_source("adam")
    assert "beta1**t" in host and "math.sqrt" in host          # bias correction on the host ...
    assert "**" not in kernel and "math." not in kernel          # ... never per element
    assert "xp.power" not in kernel
    assert "c_1 = 1 - beta1" in host                             # (1 - beta1) computed once too


def test_common_subexpressions_are_computed_once():
    kernel, _ = _kernel_source("adam")
    # the clipped, decayed gradient feeds both moments but is computed once
    assert kernel.count("xp.multiply(grad, rescale_grad)") == 1
    assert kernel.count("xp.multiply(weight, wd)") == 1


def test_small_integer_powers_are_expanded():
    kernel, _ = _kernel_source("adam")
    assert "xp.multiply(t0, t0" in kernel    # grad**2 as a product


def test_adam_kernel_needs_two_temporaries():
    kernel, _ = _kernel_source("adam")
    temps = {line.split("=")[0].strip() for line in kernel.splitlines() if " = xp." in line}
    assert temps == {"t0", "t1"}


@pytest.mark.parametrize("name,variants", [("rmsprop", {"centered", "not_centered"}),
                                           ("sgd", {"momentum_eq_0", "momentum_ne_0"}),
                                           ("signum", {"momentum_eq_0", "momentum_ne_0"})])
def test_bool_and_state_conditions_become_straight_line_variants(name, variants):
    module = optforge.runtime.registry.lookup(name)._module
    assert {v["name"] for v in module.VARIANTS.values()} == variants
    for v in module.VARIANTS.values():
        body = inspect.getsource(v["kernel"]).split('"""')[2]   # below the docstring
        branches = [ln.strip() for ln in body.splitlines() if ln.strip().startswith("if ")]
        assert all(b.endswith("is not None:") for b in branches), branches   # only None guards


class _RecordingXp:
    """Forwards to NumPy and records which functions a kernel calls."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(np, name)


@pytest.mark.parametrize("clip,expected", [(None, False), (0.5, True)])
def test_clip_with_none_bound_does_not_run(clip, expected):
    module = optforge.runtime.registry.lookup("adam")._module
    v = module.VARIANTS[()]
    scalars = v["host"](lr=0.1, wd=0.0, t=1, rescale_grad=1.0, clip_gradient=clip,
                        beta1=0.9, beta2=0.999, epsilon=1e-8)
    xp = _RecordingXp()
    w, g, m, s = (np.ones(4) for _ in range(4))
    v["kernel"](xp, w, g, m, s, **scalars)
    assert ("clip" in xp.calls) is expected


def test_specialisation_drops_absent_states(repo_root):
    rule = load_rule(repo_root / "specs" / "sgd.toml")
    analysis = analyse(rule)
    plain = next(v for v in analysis.variants.values() if v.name == "momentum_eq_0")
    program = lower(plain, rule)
    assert set(program.inputs) == {"weight", "grad"} and set(program.outputs) == {"weight"}


def test_generated_code_is_deterministic(repo_root, tmp_path):
    """Two runs under different hash seeds render byte-identical files."""
    script = ("import sys, json; from optforge.codegen import generate; "
              "files = generate.render_all(sys.argv[1]); "
              "print(json.dumps(files, sort_keys=True))")
    outs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.append(subprocess.run([sys.executable, "-c", script, str(repo_root)], env=env,
                                   capture_output=True, text=True, check=True).stdout)
    assert outs[0] == outs[1]


def test_committed_generated_code_is_fresh(repo_root):
    assert generate.check(repo_root) == []


BRANCHED_LOCAL = '''name = "BranchedLocal"
update = """
x = beta * 2
if t > 2:
    x = beta - 3
y = beta * 2
if y < 0:
    y = -y
if x < 0:
    grad = -grad
if y < 0:
    grad = 100 * grad
weight = weight - lr * grad
"""
[hyperparameters]
beta = { default = 1.0, range = "(-inf, inf)" }
'''


@pytest.mark.parametrize("beta, t, sign", [(1.0, 1, 1), (1.0, 3, -1), (-1.0, 1, -1), (-1.0, 3, -1), (4.0, 3, 1)])
def test_a_condition_on_a_local_an_if_rebinds_follows_each_branch(tmp_path, monkeypatch, beta, t, sign):
    """`x` is `2 * beta` or `beta - 3` after the first `if`: the condition `x < 0` is expanded
    along each way through it (it used to keep the value before the `if` only, and the
    analysis failed on a condition its atoms did not decide). `y` is never negative after
    its `if`, so the last branch never runs."""
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "branched_local.toml"
    path.write_text(BRANCHED_LOCAL, encoding="utf-8")
    cls = optforge.load_spec(path, register=False)
    for fused in (False, True):
        opt = cls(beta=beta, learning_rate=0.5, begin_num_update=t - 1, use_fused_step=fused)
        weight, grad = np.ones(8), np.full(8, 2.0)
        opt.update(0, weight, grad, opt.create_state(0, weight))
        np.testing.assert_array_equal(weight, 1 - 0.5 * sign * grad)
