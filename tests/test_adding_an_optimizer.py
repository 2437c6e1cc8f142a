"""docs/adding-an-optimizer.md, done exactly as written: its shell commands, spec and
Python blocks run in order in a temporary folder (with a temporary optforge cache)."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "adding-an-optimizer.md"
BLOCK = re.compile(r"```(sh|toml|python)\n(.*?)```", re.S)


def blocks():
    return BLOCK.findall(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_has_every_step():
    kinds = [kind for kind, _ in blocks()]
    assert kinds == ["sh", "toml", "sh", "sh", "python", "python"]


def test_follow_the_guide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    optforge_cli = [sys.executable, "-m", "optforge"]
    namespace = {}
    for kind, text in blocks():
        if kind == "sh":
            for line in text.strip().splitlines():
                argv = shlex.split(line)
                assert argv[0] == "optforge"
                result = subprocess.run(optforge_cli + argv[1:], capture_output=True, text=True,
                                        env=dict(os.environ))
                assert result.returncode == 0, result.stdout + result.stderr
                if argv[1] == "new":
                    assert (tmp_path / "my_specs" / "sgdw.toml").is_file()
                if argv[1] == "check":
                    assert "my_specs/sgdw.toml: ok, SGDW (mxnet2)" in result.stdout
                if argv[1] == "show":
                    assert result.stdout.startswith("SGDW (mxnet2) - SGD with momentum and decoupled weight decay")
                    assert "mom    = momentum * mom + lr * grad" in result.stdout
                if argv[1] == "docs":
                    page = Path(result.stdout.strip())
                    assert page.is_relative_to(tmp_path / "cache" / "docs") and page.name == "sgdw.html"
                    assert "<h1>SGDW <span class=\"flavor\">MXNet 2.0 conventions</span></h1>" in page.read_text()
                    assert (page.parent.parent / "sgdw.md").is_file()
        elif kind == "toml":
            target = text.splitlines()[0].lstrip("# ").strip()
            (tmp_path / target).write_text(text, encoding="utf-8")
        else:
            exec(compile(text, str(GUIDE), "exec"), namespace)   # the guide's own code
    # the spec was generated once and cached on disk
    cached = list((tmp_path / "cache" / "specs").glob("*/numpy/sgdw.py"))
    assert len(cached) == 1


def test_cached_spec_loads_without_the_generator(tmp_path):
    """A second process finds the disk cache: no sympy, same class; an edit regenerates."""
    spec = tmp_path / "sgdw.toml"
    text = [t for k, t in blocks() if k == "toml"][0]
    spec.write_text(text, encoding="utf-8")
    env = dict(os.environ, OPTFORGE_CACHE_DIR=str(tmp_path / "cache"))
    probe = ("import sys, optforge; cls = optforge.load_spec(sys.argv[1]); "
             "print(cls.__name__, 'sympy' in sys.modules, cls._module.__file__)")
    first = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, env=env,
                           check=True).stdout.split()
    second = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, env=env,
                            check=True).stdout.split()
    assert first[:2] == ["SGDW", "True"]        # generated: the generator ran
    assert second == ["SGDW", "False", first[2]]   # cached: imported directly
    spec.write_text(text.replace("default = 0.9", "default = 0.8"), encoding="utf-8")
    third = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, env=env,
                           check=True).stdout.split()
    assert third[1] == "True" and third[2] != first[2]


def test_load_spec_reports_every_mistake(tmp_path, monkeypatch):
    import optforge
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "Bad"\nupdate = """\nmom = momentum * mom + grad\nweight = weight - lr * sqr(mom)\n'
                    'mom = mom + gard\n"""\n[hyperparameters]\nmomentum = 0.5\n[states]\nmom = "zeros"\n')
    with pytest.raises(optforge.SpecError) as info:
        optforge.load_spec(spec)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{spec}:4:24: unknown function 'sqr'; did you mean 'sqrt'? (functions: abs, clip, col_max, col_mean, "
        "col_min, col_sum, dot, eigh, exp, group_max, group_min, group_norm, group_sum, inverse_root, isfinite, "
        "log, matmul, max, maximum, min, minimum, norm, norm_lower_bound, normal, qr, row_max, row_mean, row_min, "
        "row_sum, sign, solve, solve_right, sort_cols, sort_rows, sqrt, sum, transpose, triu, where)",
        f"{spec}:5:13: unknown name 'gard'; did you mean 'grad'? (known names: clip_gradient, cols, grad, initial_lr, lr, "
        "machine_epsilon, mom, momentum, ndim, numel, rescale_grad, rows, t, wd, weight)",
    ]
