"""`optforge new` writes a spec that checks clean; `optforge check` reports every
independent mistake with file:line:col, and none of their cascades."""
import textwrap

import pytest

from optforge.cli import main
from optforge.codegen.authoring import check_spec, new_spec

BAD = textwrap.dedent('''\
    name = "Bad"
    summry = "typo"
    update = """
    grad = clip(grad * rescale_grad, clip_gradient)
    mom = momentum * mom + gard
    weight = weight - lr * (mom + wd * weight)
    v = beta * v + sqr(grad)
    """
    [hyperparameters]
    momentum = { default = 1.5, range = "[0, 1)" }
    beta = 0.5
    [states]
    mom = "zeros"
    v = "zeros"
    w2 = "ones"
    [options]
    lazy_updat = true
''')


def test_new_writes_a_spec_that_checks_clean(tmp_path, capsys):
    assert main(["new", "HeavyBall", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "heavyball.toml"
    text = path.read_text()
    assert 'name = "HeavyBall"' in text and text.count("#") > 10     # commented
    assert main(["check", str(path)]) == 0
    assert "ok, HeavyBall (mxnet2): 1 hyperparameters, 1 states" in capsys.readouterr().out
    assert main(["new", "HeavyBall", "--dir", str(tmp_path)]) == 1   # never overwrites by accident
    with pytest.raises(ValueError, match="not a Python identifier"):
        new_spec("my-opt", tmp_path)
    with pytest.raises(ValueError, match="starts with '_'"):
        new_spec("__", tmp_path)            # `__.toml` would be refused by check


def test_check_reports_every_independent_mistake(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    where = [line.split(": ", 1)[0] for line in out]
    assert where == [f"{path}:2:1", f"{path}:5:24", f"{path}:7:16", f"{path}:10:24", f"{path}:15:6",
                     f"{path}:17:1"]
    assert "unknown key 'summry'; did you mean 'summary'?" in out[0]
    # momentum's default is out of range, but its name and type are known: the typo on the
    # line that reads it is a mistake of its own
    assert "unknown name 'gard'; did you mean 'grad'?" in out[1]
    assert "unknown function 'sqr'" in out[2]
    assert "default 1.5 of 'momentum' is outside its range" in out[3]
    assert "state init 'ones'" in out[4]
    assert "unknown option 'lazy_updat'; did you mean 'lazy_update'?" in out[5]
    # 'mom' and 'weight' depend on the wrong line 5: not reported again
    assert len(out) == 6


def test_check_a_good_spec_and_a_syntax_error(tmp_path, repo_root):
    summary, errors = check_spec(repo_root / "specs" / "torch" / "adam.toml")
    assert errors == [] and summary.startswith("Adam (torch)")
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "X"\nupdate = "weight = weight -"\n')
    summary, errors = check_spec(broken)
    assert summary is None and len(errors) == 1 and errors[0].line == 2


def _check_lines(tmp_path, capsys, text):
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent(text))
    assert main(["check", str(path)]) == 1
    return [line.split(f"{path}:", 1)[1] for line in capsys.readouterr().out.splitlines()]


def test_check_finds_three_mistakes_in_one_run(tmp_path, capsys):
    out = _check_lines(tmp_path, capsys, '''\
        name = "Three"
        update = """
        m = beta1 * m + (1 - beta1) * gard
        weight = weight - lr * m
        """
        [hyperparameters]
        beta1 = { default = 1.5, range = "[0, 1)", rnage = "[0, 1]" }
        [states]
        m = "zeros"
        v = "zeros"
    ''')
    assert [line.split(": ", 1)[0] for line in out] == ["3:31", "7:21", "7:44", "10:1"]
    assert "unknown name 'gard'" in out[0] and "outside its range" in out[1]
    assert "unknown hyperparameter key 'rnage'; did you mean 'range'?" in out[2]
    assert "state 'v' is never written" in out[3]


def test_check_explains_keys_under_the_wrong_table(tmp_path, capsys):
    out = _check_lines(tmp_path, capsys, '''\
        name = "Scope"
        [hyperparameters]
        beta1 = { default = 0.9, rnage = "[0, 1)" }
        [states]
        m = { init = "zeros", wehn = "beta1 > 0" }
        summary = "x"
        update = """
        weight = weight - lr * grad
        """
    ''')
    assert [line.split(": ", 1)[0] for line in out] == ["3:26", "5:23", "6:1", "7:1"]
    assert "did you mean 'range'" in out[0] and "did you mean 'when'" in out[1]
    for line, key in ((out[2], "summary"), (out[3], "update")):
        assert f"'{key}' is inside the [states] table" in line and "above the first [table] header" in line
    assert not any("missing required key" in line for line in out)
