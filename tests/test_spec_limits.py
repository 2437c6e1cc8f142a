"""Specs that used to pass `check` but generate broken code, crash the loader, or grow
without bound: each is a SpecError at a position inside the file, and the stated limits
(docs/spec-format.md) name themselves. `optforge check`, `generate` and `load_spec` all run
the same checks (load_rule, then every emitter)."""
import signal
import time

import pytest

import optforge
from optforge import SpecError
from optforge.codegen.analysis import analyse
from optforge.codegen.authoring import check_spec
from optforge.codegen.loader import load_rule
from optforge.codegen.parser import MAX_DEPTH


def spec(update, extra=""):
    return f'name = "T"\nupdate = """\n{update}\n"""\n{extra}'


HP = "[hyperparameters]\nbeta = 0.5\n"
STEP = "weight = weight - lr * grad"

# (id, spec text, message fragment, line)
CASES = [
    ("skip-if-constant", spec(STEP) + 'skip_if = "True"\n', "'skip_if' is always true", 5),
    ("requires-constant", 'requires = "1 > 0"\n' + spec(STEP), "'requires' is always true", 1),
    ("inf-after-folding", spec(STEP + " * ((1.5)**63)**63"), "number magnitudes", 3),
    ("huge-in-product", spec("weight = weight - (lr * 1.5**63)**63 * grad"), "number magnitudes", 3),
    ("complex", spec(STEP + " * (-1)**0.5"), "complex", 3),
    ("int-to-str-limit", spec(STEP + " * ((10**15)**63)**64"), "number magnitudes", 3),
    # the denominator is beyond float64: compared as integers, not converted
    ("tiny-rational", spec(STEP + " * (10**15)**-64"), "below the limit", 3),
    ("tiny-float", spec(STEP + " * 1e-200 * 1e-200"), "below the limit", 3),
    ("exp-overflow", spec(STEP + " * exp(1000)"), "infinite", 3),
    ("hyperparameter-update", spec(STEP, "[hyperparameters]\nupdate = 0.5\n"), "reserved", 6),
    ("hyperparameter-SPEC", spec(STEP, "[hyperparameters]\nSPEC = 0.5\n"), "reserved", 6),
    ("hyperparameter-underscore", spec(STEP, "[hyperparameters]\n_ = 0.5\n"), "reserved", 6),
    ("hyperparameter-step", spec(STEP, "[hyperparameters]\nstep = 0.5\n"), "reserved", 6),
    ("hyperparameter-params", spec(STEP, "[hyperparameters]\nparams = 0.5\n"), "parameter group", 6),
    ("keyword-weight_decay", spec(STEP, "[hyperparameters]\ndecay = { default = 0.5, keyword = 'weight_decay' }\n"),
     "parameter group", 6),
    ("state-xp", spec("xp = grad\n" + STEP, "[states]\nxp = 'zeros'\n"), "reserved", 7),
    ("local-math", spec("math = lr * 2\nweight = weight - math * grad"), "reserved", 3),
    ("local-non-ascii", spec("é = grad * 2\nweight = weight - lr * é"), "must be ASCII", 3),
    ("local-xp", spec("xp = grad * 2\nweight = weight - lr * xp"), "reserved", 3),
    ("aggregate-max-string", spec(STEP, '[options]\naggregate_num = {env="X", default=4, max="y"}\n'),
     "aggregate_num", 6),
    ("aggregate-env-name", spec(STEP, '[options]\naggregate_num = {env="A=B", default=4}\n'), "aggregate_num", 6),
    ("chain-of-500-terms", spec(STEP + " + grad" * 500), "nested too deeply", 3),
    ("deep-unary-minus", spec("weight = weight - lr * " + "-" * 3000 + "grad"), "nested too deeply", 3),
    ("nested-parentheses", spec("weight = weight - lr * " + "(" * 300 + "grad" + ")" * 300), None, 3),
    ("huge-toml-integer", spec(STEP, "[hyperparameters]\nbeta = " + "9" * 4400 + "\n"), "4000 digits", 6),
    ("escaped-one-line-update", 'name = "T"\nupdate = "weight = weight - lr * grad\\nweight = weight + $"\n',
     "syntax error", 2),
    ("ten-ifs", spec("\n".join(f"if beta > {k}:\n    weight = weight * 2" for k in range(10)) + "\n" + STEP, HP),
     "2**8 variants", 19),
    ("five-compound-ifs", spec("\n".join(f"if beta > {k} and t > {k}:\n    weight = weight * 2" for k in range(5))
                               + "\n" + STEP, HP), "2**8 variants", 11),
    ("statements", spec("\n".join(f"x{k} = grad * {k}" for k in range(201)) + "\n" + STEP),
     "limit of 200", 203),
    ("hyperparameters", spec(STEP, "[hyperparameters]\n" + "".join(f"h{k} = 1.0\n" for k in range(65))),
     "limit of 64", 5),
    ("states", spec(STEP, "[states]\n" + "".join(f"s{k} = 'zeros'\n" for k in range(33))), "limit of 32", 5),
]


@pytest.mark.parametrize("name, text, fragment, line", CASES, ids=[c[0] for c in CASES])
def test_positioned_spec_error(tmp_path, name, text, fragment, line):
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        analyse(load_rule(path))     # the limit on variants is checked where they are made
    err = info.value
    if fragment is not None:
        assert fragment in str(err)
    lines = text.split("\n")
    assert err.line == line and 1 <= err.col <= len(lines[err.line - 1]) + 1, str(err)
    summary, errors = check_spec(path)       # `optforge check` reports the same, as a SpecError
    assert summary is None and errors


def test_depth_limit_leaves_room_for_real_formulas(tmp_path):
    path = tmp_path / "t.toml"
    depth = MAX_DEPTH - 4
    path.write_text(spec("weight = weight - lr * " + "clip(" * depth + "grad" + ", 1)" * depth), encoding="utf-8")
    summary, errors = check_spec(path)
    assert errors == [] and "1 variants" in summary


@pytest.mark.parametrize("file_name", ["my.opt.toml", ".hidden.toml", "my-opt.toml", "class.toml"])
def test_spec_file_names_must_name_a_module(tmp_path, monkeypatch, file_name):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / file_name
    path.write_text(spec(STEP), encoding="utf-8")
    with pytest.raises(SpecError, match="must be a Python identifier") as info:
        optforge.load_spec(path, register=False)
    assert (info.value.line, info.value.col) == (1, 1)


@pytest.mark.parametrize("file_name", ["__.toml", "__init__.toml", "_private.toml"])
def test_spec_file_names_starting_with_an_underscore_are_refused(tmp_path, monkeypatch, file_name):
    # `__init__.toml` would generate the packages' own __init__.py
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / file_name
    path.write_text(spec(STEP), encoding="utf-8")
    with pytest.raises(SpecError, match="must not start with '_'") as info:
        optforge.load_spec(path, register=False)
    assert (info.value.line, info.value.col) == (1, 1)


@pytest.mark.parametrize("name", ["__", "_T", "__init__"])
def test_optimizer_names_starting_with_an_underscore_are_refused(tmp_path, monkeypatch, name):
    """The lower-cased name starts every kernel symbol (`___default_f32` was built, then
    never found: the native build looks up no name starting with '_')."""
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "t.toml"
    path.write_text(spec(STEP).replace('"T"', f'"{name}"', 1), encoding="utf-8")
    with pytest.raises(SpecError, match="must not start with '_'") as info:
        optforge.load_spec(path, register=False)
    assert (info.value.line, info.value.col) == (1, 8)
    summary, errors = check_spec(path)
    assert summary is None and [(e.line, e.col) for e in errors] == [(1, 8)]


def test_a_constant_condition_free_skip_if_generates_valid_code(tmp_path):
    """skip_if reading only built-in inputs: a function without keyword-only parameters."""
    from optforge.codegen.analysis import analyse
    from optforge.codegen.render import render_spec
    path = tmp_path / "t.toml"
    path.write_text(spec(STEP) + 'skip_if = "t > 3"\n', encoding="utf-8")
    rule = load_rule(path)
    namespace = {}
    exec(compile(render_spec(rule, analyse(rule), "t.toml", "t")["numpy/t.py"], "t.py", "exec"), namespace)
    assert namespace["skip"](t=4) is True and namespace["skip"](t=1) is False


def test_a_non_utf8_base_is_reported_at_extends(tmp_path):
    (tmp_path / "base.toml").write_bytes(b'name = "B"\nsummary = "\xff"\n')
    path = tmp_path / "derived.toml"
    path.write_text('extends = "base.toml"\nname = "D"\n', encoding="utf-8")
    with pytest.raises(SpecError, match="not valid UTF-8") as info:
        load_rule(path)
    assert (info.value.path, info.value.line, info.value.col) == (str(path), 1, 11)


@pytest.mark.parametrize("text, line, col", [
    # a lone carriage return is no TOML line break: the file is read without newline translation
    ('\rname = "T"\nupdate = "weight = weight"\n', 1, 1),
    # U+2028 ends no line of Python or TOML: the mistake is on the line after the comment
    ('name = "T"\nupdate = """\n# a\u2028b\nweight = weight - lr * gard\n"""\n', 4, 24),
    ('name = "T"\r\nupdate = """\r\nweight = weight - lr * gard\r\n"""\r\n', 3, 24),
])
def test_positions_count_lines_as_the_file_does(tmp_path, text, line, col):
    path = tmp_path / "t.toml"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(SpecError) as info:
        load_rule(path)
    assert (info.value.line, info.value.col) == (line, col), str(info.value)


CHAINED_BLOCK = """if t > {k}:
    mean = beta1 * mean + (1 - beta1) * grad
    var = beta2 * var + (1 - beta2) * grad**2
    grad = mean / (sqrt(var) + epsilon)
"""


def _within(seconds, run):
    """run(), failing (instead of hanging) past `seconds` of wall time; returns (result, CPU seconds)."""
    def alarm(signum, frame):
        raise AssertionError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        start = time.process_time()
        result = run()
        return result, time.process_time() - start
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the time limit needs SIGALRM")
def test_eight_chained_conditions_end_quickly(tmp_path):
    """8 conditions (256 variants, within the limit), each block reading the one before: the
    buffer plan walked every path through the chain of values (over 10 s); now the code of
    every variant is planned in linear time and the too large CUDA file stops rendering at
    the size limit."""
    path = tmp_path / "t.toml"
    path.write_text(spec("".join(CHAINED_BLOCK.format(k=k) for k in range(1, 9)) + STEP,
                         "[hyperparameters]\nbeta1 = 0.9\nbeta2 = 0.999\nepsilon = 1e-8\n"
                         "[states]\nmean = 'zeros'\nvar = 'zeros'\n"), encoding="utf-8")
    (summary, errors), cpu = _within(60, lambda: check_spec(path))
    assert summary is None and [(e.line, e.col) for e in errors] == [(3, 1)]
    assert "more than 2000000 characters" in str(errors[0])
    assert cpu < 3, f"{cpu:.1f} s"


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the time limit needs SIGALRM")
def test_a_long_chain_of_shared_values_is_planned_in_linear_time(tmp_path):
    # each value reads the one before three times: 3**16 paths through the chain
    path = tmp_path / "t.toml"
    path.write_text(spec("x = grad\n" + "x = x * x + x\n" * 16 + "weight = weight - lr * x"), encoding="utf-8")
    (summary, errors), cpu = _within(30, lambda: check_spec(path))
    assert errors == [] and "1 variants" in summary
    assert cpu < 3, f"{cpu:.1f} s"
