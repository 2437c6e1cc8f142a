"""Malformed specs: each raises SpecError naming file, line and column with an actionable
message, and nothing in a spec is ever executed."""
import textwrap

import pytest

from optforge import SpecError
from optforge.codegen.loader import load_rule

HEADER = 'name = "Toy"\nupdate = """\n'          # the update's first line is file line 3
TABLES = '''
[hyperparameters]
momentum = { default = 0.9, range = "[0, 1)" }
mode = { default = "a", choices = ["a", "b"] }
nesterov = false
clipw = { optional = true, range = "[0, inf)" }

[states]
mom = "zeros"
'''


def with_update(update, tables=TABLES):
    """A spec whose update block starts on line 3 (column numbers are those of `update`)."""
    return HEADER + textwrap.dedent(update).strip("\n") + '\n"""\n' + tables


GOOD_UPDATE = """
grad = clip(grad * rescale_grad, clip_gradient) + wd * weight
mom = momentum * mom - lr * grad
weight = weight + mom
"""

# (id, spec text, line, column, message fragment)
CASES = [
    ("toml-syntax", 'name = "Toy\nupdate = "weight = weight"\n', 1, 12, "invalid TOML"),
    ("python-syntax", with_update("mom = momentum * mom\nweight = weight - lr *\n"), 4, None, "syntax error"),
    ("unknown-name", with_update("mom = momentum * mom - lr * gard\nweight = weight + mom"), 3, 29,
     "unknown name 'gard'; did you mean 'grad'?"),
    ("unknown-function", with_update("mom = momentum * mom - lr * sqr(grad)\nweight = weight + mom"), 3, 29,
     "unknown function 'sqr'; did you mean 'sqrt'?"),
    ("arity", with_update("mom = momentum * mom - lr * clip(grad)\nweight = weight + mom"), 3, 29,
     "clip() takes 2 or 3 arguments, got 1"),
    ("assign-hyperparameter", with_update("momentum = 0.5\n" + GOOD_UPDATE), 3, 1,
     "cannot assign to hyperparameter 'momentum'"),
    ("assign-read-only", with_update("t = t + 1\n" + GOOD_UPDATE), 3, 1, "cannot assign to 't': it is a read-only input"),
    ("state-not-initialised", with_update(GOOD_UPDATE, TABLES.replace('mom = "zeros"', 'mom = { dtype = "float32" }')),
     None, None, "state 'mom' is never initialised"),
    ("state-never-written", with_update("weight = weight - lr * grad\n"), None, None,
     "state 'mom' is never written by the update"),
    ("missing-weight-update", with_update("mom = momentum * mom - lr * grad\n"), None, None,
     "the update never assigns 'weight'"),
    ("default-outside-range", with_update(GOOD_UPDATE, TABLES.replace("default = 0.9", "default = 1.5")),
     None, None, "default 1.5 of 'momentum' is outside its range [0, 1)"),
    ("range-syntax", with_update(GOOD_UPDATE, TABLES.replace('"[0, 1)"', '"0..1"')), None, None,
     "range '0..1' is not an interval"),
    ("range-empty", with_update(GOOD_UPDATE, TABLES.replace('"[0, 1)"', '"[1, 0]"')), None, None,
     "range '[1, 0]' is empty"),
    ("bool-arithmetic", with_update("mom = momentum * mom - lr * grad\nweight = weight + nesterov * mom"), 4, 19,
     "'nesterov' is a bool: it cannot be used in arithmetic"),
    ("enum-bad-choice", with_update('if mode == "c":\n    grad = 2 * grad\n' + GOOD_UPDATE), 3, 4,
     "'c' is not a choice of 'mode' (choices: 'a', 'b')"),
    ("enum-arithmetic", with_update("mom = momentum * mom - lr * grad * mode\nweight = weight + mom"), 3, 36,
     "'mode' is an enum"),
    ("enum-default", with_update(GOOD_UPDATE, TABLES.replace('default = "a"', 'default = "z"')), None, None,
     "default 'z' of 'mode' is not one of its choices"),
    ("duplicate-name", with_update(GOOD_UPDATE, TABLES + 'momentum = "zeros"\n'), None, None,
     "state 'momentum' has the same name as a hyperparameter"),
    ("duplicate-toml-key", with_update(GOOD_UPDATE, TABLES.replace("nesterov = false", "nesterov = false\nnesterov = true")),
     None, None, "invalid TOML"),
    ("builtin-clash", with_update(GOOD_UPDATE, TABLES.replace("nesterov = false", "lr = 0.1")), None, None,
     "hyperparameter 'lr' clashes with the built-in input 'lr'"),
    ("code-execution", with_update("weight = __import__('os').system('touch {marker}')\n"), 3, 10,
     "only the language's functions can be called"),
    ("class-escape", with_update("weight = ().__class__.__bases__[0]\n"), 3, 10, "not allowed in a spec"),
    ("attribute", with_update("mom = momentum * mom - lr * grad.T\nweight = weight + mom"), 3, 29,
     "attribute access ('a.b') not allowed"),
    ("lambda", with_update("f = lambda x: x\n" + GOOD_UPDATE), 3, 5, "lambda not allowed"),
    ("comprehension", with_update("mom = [g for g in grad]\nweight = weight + mom"), 3, 7, "comprehensions not allowed"),
    ("f-string", with_update('mom = f"{grad}"\nweight = weight + mom'), 3, 7, "f-strings not allowed"),
    ("huge-exponent", with_update("mom = momentum * mom - lr * grad ** 100000\nweight = weight + mom"), 3, 37,
     "exponent 100000 is too large"),
    ("exponent-tower", with_update("mom = momentum * mom - lr * grad * 2 ** 2 ** 2 ** 2 ** 2\nweight = weight + mom"),
     3, 41, "exponent 65536 is too large"),
    ("import", with_update("import os\n" + GOOD_UPDATE), 3, 1, "import not allowed"),
    ("subscript", with_update("mom = momentum * mom - lr * grad[0]\nweight = weight + mom"), 3, 29,
     "indexing ('a[i]') not allowed"),
    ("keyword-argument", with_update("mom = momentum * mom - lr * clip(grad, c=1)\nweight = weight + mom"), 3, 29,
     "clip() takes positional arguments only"),
    ("chained-comparison", with_update("mom = where(0 < grad < 1, grad, mom)\nweight = weight + mom"), 3, 13,
     "chained comparisons are not allowed"),
    ("tensor-if", with_update("if grad > 0:\n    mom = mom\n" + GOOD_UPDATE), 3, 4,
     "an if condition must not depend on tensors (it reads 'grad')"),
    ("ternary", with_update("mom = grad if momentum > 0 else mom\nweight = weight + mom"), 3, 7,
     "conditional expressions are not allowed; use where(cond, a, b)"),
    ("unknown-top-level-key", 'name = "Toy"\nupdat = "weight = weight"\n', 2, 1,
     "unknown key 'updat'; did you mean 'update'?"),
    ("unknown-hyperparameter-key", with_update(GOOD_UPDATE, TABLES.replace("default = 0.9", "defualt = 0.9")),
     None, None, "unknown hyperparameter key 'defualt'; did you mean 'default'?"),
    ("missing-name", 'update = "weight = weight"\n', 1, 1, "missing required key 'name'"),
    ("division-by-zero", with_update("mom = momentum * mom - lr * grad / 0\nweight = weight + mom"), 3, 36,
     "division by zero"),
    ("maybe-unbound", with_update("if momentum > 0:\n    x = grad\nmom = momentum * mom - lr * x\nweight = weight + mom"),
     5, 29, "'x' may be unassigned here"),
    ("while-loop", with_update("while True:\n    pass\n" + GOOD_UPDATE), 3, 1, "while loops not allowed"),
    ("walrus", with_update("mom = (x := grad)\nweight = weight + mom"), 3, 8, "assignment expressions (':=') not allowed"),
    ("bad-class-name", with_update(GOOD_UPDATE).replace('name = "Toy"', 'name = "my-opt"'), 1, 8,
     "name 'my-opt' must be a Python identifier"),
    ("noise-without-seed", with_update("mom = momentum * mom - lr * grad\nweight = weight + mom + normal(0, 1)"), 4, 25,
     "normal() needs an int hyperparameter 'seed'"),
    ("optional-in-arithmetic", with_update("mom = momentum * mom - lr * grad * clipw\nweight = weight + mom"), 3, 36,
     "'clipw' may be None"),
    ("default-type", with_update(GOOD_UPDATE, TABLES.replace("nesterov = false", 'nesterov = { default = "x", type = "float" }')),
     None, None, "default 'x' of 'nesterov' is not a float"),
    ("state-init", with_update(GOOD_UPDATE, TABLES.replace('mom = "zeros"', 'mom = "ones"')), None, None,
     "state init 'ones' is not \"zeros\", \"weight\", a number or the name of a numeric hyperparameter"),
    ("state-init-bool-hyperparameter", with_update(GOOD_UPDATE, TABLES.replace('mom = "zeros"', 'mom = "nesterov"')),
     None, None, "state init 'nesterov' is not \"zeros\", \"weight\", a number or the name of a numeric hyperparameter"),
    ("state-init-optional-hyperparameter", with_update(GOOD_UPDATE, TABLES.replace('mom = "zeros"', 'mom = "clipw"')),
     None, None, "the name of a numeric hyperparameter that is never None"),
    ("state-init-hyperparameter-when", with_update(GOOD_UPDATE, TABLES.replace(
        'mom = "zeros"', 'mom = { init = "momentum", when = "nesterov" }')),
     None, None, "a state initialised from a hyperparameter always exists: remove 'when'"),
    ("is-none-misuse", with_update("if momentum is None:\n    grad = grad\n" + GOOD_UPDATE), 3, 4,
     "'momentum' is never None"),
    ("call-a-variable", with_update("mom = momentum(grad)\nweight = weight + mom"), 3, 7, "'momentum' is not a function"),
    ("string-arithmetic", with_update('mom = momentum * mom - lr * grad + "a"\nweight = weight + mom'), 3, 36,
     "strings are only allowed in comparisons with an enum hyperparameter"),
    ("empty-update", HEADER + '"""\n', 2, 10, "'update' must not be empty"),
    ("comment-only-update", HEADER + '# nothing yet\n"""\n', 3, 1, "the update block is empty"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_spec(case, tmp_path):
    ident, text, line, col, fragment = case
    marker = tmp_path / "executed"
    path = tmp_path / "toy.toml"
    path.write_text(text.replace("{marker}", str(marker)))
    with pytest.raises(SpecError) as info:
        load_rule(path)
    err = info.value
    assert fragment in err.message, f"{ident}: {err}"
    assert err.path == str(path)
    assert err.line is not None, f"{ident}: no line in {err}"
    if line is not None:
        assert err.line == line, f"{ident}: reported at {err.line}:{err.col}: {err}"
    if col is not None:   # Python's own syntax errors: the column is Python's
        assert err.col == col, f"{ident}: reported at {err.line}:{err.col}: {err}"
    assert str(err).startswith(f"{path}:{err.line}:")
    assert not marker.exists(), "the spec ran code"


def test_at_least_thirty_distinct_mistakes():
    assert len({c[0] for c in CASES}) >= 30
    assert len({c[4] for c in CASES}) >= 30


def test_key_errors_point_at_the_key(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(with_update(GOOD_UPDATE, TABLES.replace("default = 0.9", "default = 1.5")))
    with pytest.raises(SpecError) as info:
        load_rule(path)
    text_line = path.read_text().splitlines()[info.value.line - 1]
    assert text_line.startswith("momentum = { default = 1.5")
    assert text_line[info.value.col - 1:].startswith("1.5")


def test_valid_spec_loads(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(with_update(GOOD_UPDATE))
    rule = load_rule(path)
    assert rule.name == "Toy" and [s.name for s in rule.states] == ["mom"]


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_flavor_inherits_and_overrides(tmp_path):
    _write(tmp_path, "toy.toml", with_update(GOOD_UPDATE))
    sub = tmp_path / "other"
    sub.mkdir()
    path = _write(sub, "toy.toml", 'extends = "../toy.toml"\nflavor = "other"\nremove = ["nesterov"]\n'
                  '[hyperparameters]\nmomentum = { default = 0.5, range = "[0, 1]" }\n')
    rule = load_rule(path)
    assert rule.flavor == "other" and rule.name == "Toy"
    assert [h.name for h in rule.hyperparameters] == ["momentum", "mode", "clipw"]
    assert rule.hyperparameter("momentum").default == 0.5
    assert rule.update_text.strip().startswith("grad = clip(")


def test_error_in_an_inherited_formula_points_into_the_base_file(tmp_path):
    base = _write(tmp_path, "toy.toml", with_update(GOOD_UPDATE))
    sub = tmp_path / "other"
    sub.mkdir()
    derived = _write(sub, "toy.toml", 'extends = "../toy.toml"\nflavor = "other"\nremove = ["momentum"]\n')
    with pytest.raises(SpecError) as info:
        load_rule(derived)
    assert info.value.path == str(base) and info.value.line == 4          # `momentum` read on line 4
    assert "unknown name 'momentum'" in info.value.message


@pytest.mark.parametrize("extends,message", [
    ('"missing.toml"', "extends: no spec file missing.toml"),
    ('"toy.toml"', "extends makes a cycle"),
    ("3", "extends must name a spec file"),
])
def test_bad_extends(tmp_path, extends, message):
    path = _write(tmp_path, "toy.toml", f"extends = {extends}\n")
    with pytest.raises(SpecError, match=message) as info:
        load_rule(path)
    assert (info.value.line, info.value.col) == (1, 11)


def test_two_specs_for_one_optimizer_and_flavor(tmp_path):
    from optforge.codegen import generate
    (tmp_path / "specs").mkdir()
    _write(tmp_path / "specs", "a.toml", with_update(GOOD_UPDATE))
    _write(tmp_path / "specs", "b.toml", with_update(GOOD_UPDATE))
    with pytest.raises(SpecError, match="optimizer 'toy' of flavor 'mxnet2' is also defined by"):
        generate.load_all(tmp_path)


# Inputs on which Python's compiler warns while `ast.parse` reads them (SyntaxWarning
# "invalid decimal literal", DeprecationWarning "invalid escape sequence"): the check
# reports the formula's mistake as a positioned SpecError and nothing else.
NOISY = [
    ("decimal-literal", "mom = momentum * mom - lr * (1if momentum > 0 else 2)\nweight = weight + mom", 3, 30,
     "conditional expressions are not allowed"),
    ("escape-sequence", 'mom = momentum * mom - lr * grad * ("\\d" == 1)\nweight = weight + mom', 3, 37,
     "strings are only allowed in comparisons with an enum hyperparameter"),
]


@pytest.mark.parametrize("case", NOISY, ids=[c[0] for c in NOISY])
def test_check_reports_spec_errors_only(case, tmp_path):
    import subprocess
    import sys
    import warnings

    from optforge.codegen.authoring import check_spec
    ident, update, line, col, fragment = case
    path = tmp_path / "toy.toml"
    path.write_text(HEADER.replace('"""', "'''") + update + "\n'''\n" + TABLES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a warning that escapes would raise here
        summary, errors = check_spec(path)
    assert summary is None and len(errors) == 1, errors
    assert fragment in errors[0].message and (errors[0].line, errors[0].col) == (line, col), errors[0]
    run = subprocess.run([sys.executable, "-W", "always", "-m", "optforge", "check", str(path)],
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert f"{path}:{line}:{col}: {fragment}" in run.stdout + run.stderr


def test_undecodable_spec_is_located(tmp_path):
    path = tmp_path / "toy.toml"
    # line 3: two characters of two bytes each, then a byte that starts no UTF-8 character
    path.write_bytes(b'name = "Toy"\n# ok\n# \xc3\xa9\xc3\xa9 \xff\n')
    with pytest.raises(SpecError, match="spec is not valid UTF-8") as info:
        load_rule(path)
    assert (info.value.line, info.value.col) == (3, 6)    # the 6th character of the line: a column, not a byte


def test_bad_toml_is_located(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(with_update(GOOD_UPDATE, TABLES.replace('mode = { default = "a"', 'mode = { default = "a" x')))
    text_lines = path.read_text().split("\n")
    with pytest.raises(SpecError, match="invalid TOML") as info:
        load_rule(path)
    assert text_lines[info.value.line - 1].startswith("mode = {")
    assert info.value.col == text_lines[info.value.line - 1].index(" x") + 2    # at the stray `x`


def test_unreadable_spec_names_the_file(tmp_path):
    path = tmp_path / "toy.toml"
    path.mkdir()      # a folder: there is no text, so no line or column to give
    with pytest.raises(SpecError, match="cannot read spec") as info:
        load_rule(path)
    assert info.value.path == str(path) and info.value.line is None


MODE_TABLES = TABLES.replace("mode = {", "kind = {")   # `mode` would hide the method mode()
# [modes]: (id, the table's lines, message fragment, the text the error must point at)
MODE_CASES = [
    ("mode-reads-grad", 'train = "weight = mom"\neval = "weight = mom - lr * grad"',
     "mode 'eval' cannot read 'grad'", "weight = mom - lr"),
    ("mode-reads-t", 'train = "weight = mom * t"\neval = "weight = mom"', "mode 'train' cannot read 't'",
     "weight = mom * t"),
    ("mode-assigns-state", 'train = "weight = mom"\neval = "mom = weight\\nweight = mom"',
     "cannot assign to 'mom'", "mom = weight"),
    ("mode-missing", 'train = "weight = mom"', "[modes] needs both train and eval; 'eval' is missing",
     "modes]"),
    ("mode-unknown", 'train = "weight = mom"\neval = "weight = mom"\ntest = "weight = mom"',
     "unknown mode 'test'", "test ="),
    ("mode-if", 'train = "weight = mom"\neval = """\nif momentum > 0:\n    weight = mom\n"""',
     "mode 'eval' is straight-line assignments", "if momentum"),
    ("mode-norm", 'train = "weight = mom / norm(mom)"\neval = "weight = mom"', "mode 'train' must be element-wise",
     "weight = mom /"),
    ("mode-no-weight", 'train = "a = mom"\neval = "weight = mom"', "mode 'train' never assigns 'weight'",
     '"a = mom"'),
    ("mode-unknown-name", 'train = "weight = mmo"\neval = "weight = mom"', "unknown name 'mmo'", "mmo"),
    ("mode-not-a-string", 'train = 3\neval = "weight = mom"', "mode 'train' must be a formula string", "3\n"),
]


@pytest.mark.parametrize("case", MODE_CASES, ids=[c[0] for c in MODE_CASES])
def test_malformed_modes(case, tmp_path):
    ident, table, fragment, token = case
    text = with_update(GOOD_UPDATE, MODE_TABLES + "\n[modes]\n" + table + "\n")
    path = tmp_path / "toy.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_rule(path)
    err = info.value
    assert fragment in err.message, f"{ident}: {err}"
    offset = text.index(token, text.index("[modes]"))
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    assert (err.line, err.col) == (line, col), f"{ident}: reported at {err.line}:{err.col}, expected {line}:{col}: {err}"


def test_modes_refuse_a_hyperparameter_hiding_their_methods(tmp_path):
    path = tmp_path / "toy.toml"
    text = with_update(GOOD_UPDATE, TABLES + '\n[modes]\ntrain = "weight = mom"\neval = "weight = mom"\n')
    path.write_text(text)      # TABLES has an enum hyperparameter called `mode`
    with pytest.raises(SpecError, match="hyperparameter 'mode' would hide the method mode") as info:
        load_rule(path)
    assert text.split("\n")[info.value.line - 1].startswith("mode = {")


def test_modes_are_parsed(tmp_path):
    import sympy
    path = tmp_path / "toy.toml"
    path.write_text(with_update(GOOD_UPDATE, MODE_TABLES + '\n[modes]\ntrain = "weight = weight + momentum * mom"\n'
                                'eval = "weight = weight - momentum * mom"\n'))
    rule = load_rule(path)
    assert sorted(rule.modes) == ["eval", "train"]
    (stmt,) = rule.modes["train"][0]
    assert stmt.target == "weight" and stmt.expr == sympy.Symbol("weight") + sympy.Symbol("momentum") * sympy.Symbol("mom")
