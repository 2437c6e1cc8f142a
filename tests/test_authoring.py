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


def test_check_reports_every_independent_mistake(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    where = [line.split(": ", 1)[0] for line in out]
    assert where == [f"{path}:2:1", f"{path}:7:16", f"{path}:10:24", f"{path}:15:6", f"{path}:17:1"]
    assert "unknown key 'summry'; did you mean 'summary'?" in out[0]
    assert "unknown function 'sqr'" in out[1]
    assert "default 1.5 of 'momentum' is outside its range" in out[2]
    assert "state init 'ones'" in out[3]
    assert "unknown option 'lazy_updat'" in out[4]
    # 'gard' on line 5 reads momentum, whose entry is wrong: not reported as a second mistake,
    # and neither are 'mom'/'weight', which depend on that line
    assert not any("gard" in line for line in out)


def test_check_a_good_spec_and_a_syntax_error(tmp_path, repo_root):
    summary, errors = check_spec(repo_root / "specs" / "torch" / "adam.toml")
    assert errors == [] and summary.startswith("Adam (torch)")
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "X"\nupdate = "weight = weight -"\n')
    summary, errors = check_spec(broken)
    assert summary is None and len(errors) == 1 and errors[0].line == 2
