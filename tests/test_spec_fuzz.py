"""Mutated specs: a valid, importable module or a SpecError inside the file; nothing else.

Hypothesis mutates the real specs under specs/ (characters, tokens of the formula
language, TOML values) and every mutant goes through what `optforge check`,
`generate` and `load_spec` run: load, analyse, every per-spec emitter. The outcome
must be generated modules that import (and run no payload: the mutations insert code
that would create a sentinel file), or a SpecError whose every position lies inside
the file. Any other exception, or an example running past its time limit, fails.

Seeded (derandomize) so CI sees the same examples every run; OPTFORGE_FUZZ_EXAMPLES
sets how many (default 1500: about 16 s on an idle 2-core machine, well under two minutes
when it is shared; a 10 000-example run takes a few minutes).
"""
import os
import signal
import sys
from pathlib import Path

import pytest

from hypothesis import HealthCheck, given, settings, strategies as st

from optforge import SpecError
from optforge.codegen.analysis import analyse
from optforge.codegen.errors import SpecErrors
from optforge.codegen.render import render_spec
from optforge.codegen.loader import load_rule
from support import import_file

ROOT = Path(__file__).resolve().parent.parent
# every spec, flavors included ("mxnet1/adam.toml" extends "../adam.toml": the bases are copied
# unchanged next to the mutant, so merging and positions in base files are exercised too)
SPECS = {p.relative_to(ROOT / "specs").as_posix(): p.read_text(encoding="utf-8")
         for p in sorted((ROOT / "specs").rglob("*.toml"))}
EXAMPLES = int(os.environ.get("OPTFORGE_FUZZ_EXAMPLES", "1500"))
PROGRESS = int(os.environ.get("OPTFORGE_FUZZ_PROGRESS", "0"))   # print the counts every N examples
TIME_LIMIT_S = 20          # per example: far above the slowest real spec, so only a hang trips it
SENTINEL = Path(os.environ.get("TMPDIR", "/tmp")) / f"optforge-fuzz-ran-{os.getpid()}"
PAYLOAD = f'__import__("pathlib").Path({str(SENTINEL)!r}).touch()'

CHARACTERS = list("\"'\\\n\r\t ()[]{},.:;=+-*/%#<>!~^&|@0123456789eEabcxyz_") + ["\u2028", "\x00", "é"]
TOKENS = [
    " + ", " - ", " * ", " / ", " ** ", "(", ")", ",", " == ", " != ", " < ", " and ", " not ",
    "\nif beta1 > 0.5:\n    ", "\nelse:\n    ", "\n    ", "\n", "weight = ", "grad", "weight", "lr", "wd", "t",
    "rescale_grad", "clip_gradient", "sqrt(", "exp(", "log(", "abs(", "clip(", "where(", "norm(",
    "row_mean(", "normal(", "maximum(", "minimum(", "isfinite(", "sign(", "None", "is None", "True",
    "0", "1", "-1", "1e308", "1e-308", "10**300", "(1.5**63)**63", "(-1)**0.5", "exp(1000)", "2**64",
    '"""', "'''", "#", f"# \"\"\"; {PAYLOAD}; \"\"\"", PAYLOAD, "\\N", "\\x", "math", "xp", "_", "SPEC",
    "update", "step", "mom", "mean", "var", "beta1", "epsilon", "momentum",
    # matrix rules: products, transposes, column means, shape inputs and loops
    "matmul(", "transpose(", "col_mean(", "rows", "cols", "ndim", "numel", "machine_epsilon",
    "\nfor _ in range(3):\n    ", "for _ in range(", "x", "a",
    # [modes] (Schedule-Free's train/eval weight switch)
    "\n[modes]\n", "train = ", "eval = ", "z", "weight = x",
    # group reductions and group states (Prodigy, DAdaptAdam, ClippedAdamW)
    "group_sum(", "group_max(", "group_min(", "group_norm(", "sum(", "dot(", "max(", "d", "d0", "s", "p0",
    "\nd = group_sum(sum(grad))\n", "\nfor _ in range(2):\n    d = group_max(max(grad))\n",
    # square states and their matrix functions (Shampoo)
    "inverse_root(", "eigh(", "L", "R", "L_inv", "count", "update_freq", " % ",
    # PSGD-Kron's fit
    "triu(", "solve(", "solve_right(", "norm_lower_bound(", "normal(0, 1)",
]
VALUES = ["0", "-1", "1e400", "inf", "nan", '"x"', "true", "[]", "{}", '"[0, 1)"', '"(1, 0)"', "9" * 40,
          '"zeros"', '"weight"', '"float32"', '"rows"', '"scalar"', '"beta1 > 0"', '"True"',
          '{ env = "X", default = 4, max = "y" }', '"my.opt"', '"\\"\\"\\""',
          '"cols"', '"first_rest"', '"last_two"', '"ndim >= 2"', '"rows > cols"',
          '"group"', '{ init = 1.0, shape = "group" }', '{ init = "d0", shape = "group" }',
          '{ init = "zeros", shape = "group" }', '{ init = 0.0, shape = "group", when = "d0 > 0" }',
          '{ init = 0.0, shape = "group", quantize = true }', '"group_sum(sum(grad)) > 0"',
          '"rows_by_rows"', '"cols_by_cols"', '"identity"', '{ init = "epsilon", shape = "rows_by_rows" }',
          '{ init = "identity", shape = "cols_by_cols", when = "ndim >= 2" }']


def _mutate(text, mutation):
    kind, where, what = mutation
    if not text:
        return what if isinstance(what, str) else ""
    at = where % (len(text) + 1)
    if kind == "delete":
        return text[:at] + text[at + 1 + what % 8:]
    if kind == "value":   # replace the TOML value after the next '='
        eq = text.find("=", at)
        if eq == -1:
            return text
        end = text.find("\n", eq)
        end = len(text) if end == -1 else end
        return text[:eq + 1] + " " + what + text[end:]
    if kind == "replace":
        return text[:at] + what + text[at + len(what):]
    return text[:at] + what + text[at:]     # insert


mutations = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.sampled_from(CHARACTERS)),
    st.tuples(st.just("replace"), st.integers(0, 10 ** 6), st.sampled_from(CHARACTERS)),
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.sampled_from(TOKENS)),
    st.tuples(st.just("replace"), st.integers(0, 10 ** 6), st.sampled_from(TOKENS)),
    st.tuples(st.just("delete"), st.integers(0, 10 ** 6), st.integers(0, 64)),
    st.tuples(st.just("value"), st.integers(0, 10 ** 6), st.sampled_from(VALUES)),
)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"an example ran longer than {TIME_LIMIT_S} s")


def _inside(err, files):
    """The error's position lies inside the file it names."""
    text = files.get(Path(err.path).resolve())
    if text is None:
        return False
    lines = text.split("\n")
    if err.line is None or err.col is None or not 1 <= err.line <= len(lines):
        return False
    return 1 <= err.col <= len(lines[err.line - 1]) + 1


def check_mutant(text, folder, name="fuzzed.toml"):
    """Run one mutant (of specs/<name>) through load, analysis and every emitter; import what
    was generated."""
    bases = folder / "specs"
    if not bases.is_dir():
        bases.mkdir()
        for base in (ROOT / "specs").glob("*.toml"):
            (bases / base.name).write_text(SPECS[base.name], encoding="utf-8")
    flavor = Path(name).parent
    path = bases / flavor / "fuzzed.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    files = {p.resolve(): SPECS[p.name] for p in bases.glob("*.toml") if p.name in SPECS}
    files[path.resolve()] = text
    try:
        rule = load_rule(path)
        generated = render_spec(rule, analyse(rule), path.name, "fuzzed")
    except SpecError as err:
        for one in (err.errors if isinstance(err, SpecErrors) else [err]):
            assert _inside(one, files), f"position outside the file: {one}"
        return "error"
    for relative, code in generated.items():
        out = folder / "out" / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(code, encoding="utf-8")
        if relative.endswith(".py"):
            module = import_file(out, "fuzzed_" + relative.replace("/", "_")[:-3])
            assert hasattr(module, "VARIANTS")
    assert not SENTINEL.exists(), "a mutant's text ran"
    return "valid"


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the per-example time limit needs SIGALRM")
def test_mutated_specs_give_modules_or_positioned_errors(tmp_path):
    outcomes = {"valid": 0, "error": 0}

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.sampled_from(sorted(SPECS)), st.lists(mutations, min_size=1, max_size=3))
    def run(name, changes):
        text = SPECS[name]
        for change in changes:
            text = _mutate(text, change)
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIME_LIMIT_S)
        try:
            outcomes[check_mutant(text, tmp_path, name)] += 1
            if PROGRESS and sum(outcomes.values()) % PROGRESS == 0:
                print(f"fuzz: {outcomes}", file=sys.stderr, flush=True)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    try:
        run()
    finally:
        if SENTINEL.exists():
            SENTINEL.unlink()
    print(f"fuzz: {sum(outcomes.values())} examples, {outcomes['valid']} valid, {outcomes['error']} SpecError")
    # the mutations must exercise both outcomes, or the test proves little
    assert outcomes["valid"] > 0 and outcomes["error"] > 0


# -- group reductions and group states ---------------------------------------------------
# Specs assembled from pieces that use the group constructs rightly and wrongly: group_*
# calls with wrong arguments, inside if/for or an if's condition, nested (a second stage),
# group states with bad init/shape/when/quantize or assigned tensors, two-stage chains
# through locals, states and device scalars, in any order (which decides what is read
# before it is computed). Each must load and generate, or end in a positioned SpecError.
GROUP_SPEC = """name = "Grouped"
{top}update = \"\"\"
grad = clip(grad * rescale_grad, clip_gradient)
{body}
m = beta1 * m + (1 - beta1) * grad
v = 0.5 * v + norm(grad)
r = 0.5 * r + row_mean(grad * grad)
d = 0.5 * d + 0.25
weight = weight - lr * d * m
\"\"\"
[hyperparameters]
learning_rate = 0.1
beta1 = {{ default = 0.9, range = "[0, 1)" }}
d0 = {{ default = 1e-6, range = "(0, inf)" }}
flag = {{ default = false }}
k = {{ default = 2, type = "int", range = "[1, 4]" }}
[states]
m = "zeros"
p0 = "weight"
v = {{ init = 0.0 }}
r = {{ init = "zeros", shape = "rows" }}
{states}
"""
RIGHT_PIECES = [
    "a = group_sum(dot(grad, p0 - weight))", "b = group_max(max(abs(m)))",
    "e = group_norm(grad)", "n = norm(m)\nc = group_min(n)", "c = group_sum(norm(grad) ** 2)",
    "d = 0.5 * d + 0.5 * a / (1 + abs(a))", "d = maximum(d, b)", "d = where(e > 1, d / e, d)",
    "a = group_sum(sum(r)) * group_max(max(m))", "m = m * maximum(d, 1)",
    "if d > 0.5:\n    m = m * d", "a = group_sum(d * sum(grad)) / (1 + group_min(min(grad)))",
    "m = m + normal(0, 0.01)",
]
WRONG_PIECES = [
    # wrong arguments
    "a = group_sum(grad)", "a = group_sum()", "a = group_sum(sum(grad), 1)", "a = group_norm(sum(grad))",
    "a = group_max(lr)", "a = group_min(row_mean(grad))", "a = group_sum(x=sum(grad))",
    "a = group_sum(sum(grad) > 0)", "a = group_sum(group_sum(sum(grad)))", "a = group_norm(group_norm(grad) * grad)",
    "a = group_sum(sum(grad * group_sum(sum(grad))))", "a = group_sum(None)", "a = group_max(flag)",
    "a = group_sum(sum(matmul(grad, transpose(grad))))", "a = group_sum", "a = group_sum(*grad)",
    # inside if / for, in a condition
    "if flag:\n    a = group_sum(sum(grad))", "for _ in range(2):\n    b = group_max(max(grad))",
    "for _ in range(k):\n    m = m * group_norm(grad)", "if group_sum(sum(grad)) > 0:\n    m = 2 * m",
    "if flag:\n    m = m\nelif group_max(max(grad)) > 0:\n    m = 3 * m",
    # group states given tensors
    "d = grad", "d = norm(grad)", "d = m * a", "d = row_mean(grad)", "if flag:\n    d = m",
    "d = group_sum(sum(grad)) > 0", "d = None",
    # a second stage
    "m = m * a", "v = v + b", "n = norm(grad * e)",
]
GROUP_TOPS = ["", 'skip_if = "lr == 0"\n', 'skip_if = "group_sum(sum(grad)) > 0"\n',
              'requires = "group_norm(grad) > 0"\n', 'matrix = "first_rest"\n']
GROUP_DECLARATIONS = [
    'd = { init = 1.0, shape = "group" }', 'd = { init = "d0", shape = "group" }', 'd = { init = 0, shape = "group" }',
    'd = { init = "zeros", shape = "group" }', 'd = { init = "weight", shape = "group" }',
    'd = { init = "flag", shape = "group" }', 'd = { init = "k", shape = "group" }',
    'd = { init = "nothere", shape = "group" }', 'd = { init = true, shape = "group" }',
    'd = { init = 1.0, shape = "group", when = "flag" }', 'd = { init = "d0", shape = "group", when = "flag" }',
    'd = { init = 1.0, shape = "group", quantize = true }', 'd = { init = "d0", shape = "group", quantize = "unsigned" }',
    'd = { init = 1.0, shape = "groups" }', 'd = { init = 1.0, shape = 1 }', 'd = { shape = "group" }',
    'd = { init = 1.0, shape = "group", dtype = "float16" }', 'd = { init = inf, shape = "group" }',
    'd = { init = 1.0 }', 'd = "zeros"',
    'd = { init = 1.0, shape = "group" }\nq = { init = "zeros", when = "d > 0" }',
    'd = { init = 1.0, shape = "group" }\nq = { init = "zeros", when = "group_sum(sum(rows)) > 0" }',
]


def _group_spec(top, pieces, declaration):
    return GROUP_SPEC.format(top=top, body="\n".join(pieces), states=declaration)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the per-example time limit needs SIGALRM")
def test_group_constructs_give_modules_or_positioned_errors(tmp_path):
    outcomes = {"valid": 0, "error": 0}

    @settings(max_examples=max(30, EXAMPLES // 10), derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.one_of(st.just(""), st.sampled_from(GROUP_TOPS)),
           st.lists(st.sampled_from(RIGHT_PIECES), min_size=1, max_size=4),
           st.one_of(st.none(), st.sampled_from(WRONG_PIECES)), st.integers(0, 4),
           st.one_of(st.just('d = { init = 1.0, shape = "group" }'), st.sampled_from(GROUP_DECLARATIONS)))
    def run(top, pieces, wrong, where, declaration):
        if wrong is not None:       # at most one wrong piece, anywhere among the right ones
            pieces = pieces[:where] + [wrong] + pieces[where:]
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIME_LIMIT_S)
        try:
            outcomes[check_mutant(_group_spec(top, pieces, declaration), tmp_path, "grouped.toml")] += 1
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    run()
    print(f"group fuzz: {outcomes}")
    assert outcomes["valid"] > 0 and outcomes["error"] > 0


RIGHT = "a = group_sum(dot(grad, p0 - weight))\nd = 0.5 * d + 0.5 * a / (1 + abs(a))"
DECLARED = 'd = { init = 1.0, shape = "group" }'


@pytest.mark.parametrize("top, pieces, declaration, position, message", [
    ("", ["a = group_sum()"], DECLARED, (4, 5), "group_sum() takes 1 argument, got 0"),
    ("", ["a = group_norm(grad, grad)"], DECLARED, (4, 5), "group_norm() takes 1 argument, got 2"),
    ("", ["a = group_max(grad)"], DECLARED, (4, 15), "its argument is a tensor value"),
    ("", ["a = group_min(row_mean(grad))"], DECLARED, (4, 15), "its argument is a rows value"),
    ("", ["a = group_sum(lr)"], DECLARED, (4, 15), "does not depend on a parameter"),
    ("", ["a = group_norm(sum(grad))"], DECLARED, (4, 5), "its argument is one value per tensor"),
    ("", ["a = group_norm(group_norm(grad) * grad)", "d = a"], DECLARED, (4, 1),
     "reads a group reduction of the same step in its argument"),
    ("", ["if flag:", "    d = group_sum(sum(grad))"], DECLARED, (5, 5), "write them outside 'if' and 'for'"),
    ("", ["for _ in range(2):", "    a = group_max(max(grad))", RIGHT], DECLARED, (5, 5),
     "write them outside 'if' and 'for'"),
    ("", [RIGHT, "if group_max(max(grad)) > 0:", "    m = 2 * m"], DECLARED, (6, 1),
     "assign one to a name before the 'if'"),
    ("", [RIGHT, "if flag:", "    m = m", "elif group_max(max(grad)) > 0:", "    m = 3 * m"], DECLARED, (8, 1),
     "assign one to a name before the 'if'"),
    ('skip_if = "group_sum(sum(grad)) > 0"\n', [RIGHT], DECLARED, (2, 12), "group_sum() is computed by the update"),
    ('requires = "group_norm(grad) > 0"\n', [RIGHT], DECLARED, (2, 13), "group_norm() is computed by the update"),
    ("", ["d = m * 2"], DECLARED, (4, 1), "group state 'd' is one value per param group"),
    ("", ["d = norm(grad)"], DECLARED, (4, 1), "not a device value"),
    ("", ["d = row_mean(grad)"], DECLARED, (4, 1), "not a rows value"),
    ("", ["a = group_sum(sum(grad))", "m = m * a", "b = group_max(max(m))", "d = b"], DECLARED, (6, 1),
     "reads 'm', which is computed from a group reduction of the same step"),
    ("", [RIGHT, "b = group_sum(sum(d * grad))", "d = b"], DECLARED, (6, 1),
     "reads 'd', which is computed from a group reduction of the same step"),
    ("", [RIGHT], 'd = { init = "zeros", shape = "group" }', (23, 1), "a group state needs a number or a hyperparameter"),
    ("", [RIGHT], 'd = { init = "flag", shape = "group" }', (23, 14), "the name of a numeric hyperparameter"),
    ("", [RIGHT], 'd = { init = 1.0, shape = "group", when = "flag" }', (23, 43), "a group state always exists"),
    ("", [RIGHT], 'd = { init = "d0", shape = "group", when = "flag" }', (23, 44), "always exists: remove 'when'"),
    ("", [RIGHT], 'd = { init = 1.0, shape = "group", quantize = true }', (23, 47), "a group state is never stored quantized"),
    ("", [RIGHT], 'd = { init = 1.0, shape = "groups" }', (23, 27), "one value per param group (shape = \"group\")"),
    ("", [RIGHT], DECLARED + '\nq = { init = "zeros", when = "group_sum(sum(rows)) > 0" }', (24, 41),
     "sum() reduces a tensor; its argument does not depend on one"),
])
def test_group_mistakes_are_positioned_errors(tmp_path, top, pieces, declaration, position, message):
    """What the fuzz above draws, with the position and message each mistake must have."""
    path = tmp_path / "grouped.toml"
    path.write_text(_group_spec(top, pieces, declaration), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        rule = load_rule(path)
        render_spec(rule, analyse(rule), path.name, "grouped")
    err = caught.value
    assert (err.path, err.line, err.col) == (str(path), *position), str(err)
    assert message in err.message, str(err)


# -- square states and matrix functions ---------------------------------------------------
# Shampoo's constructs assembled rightly and wrongly: square states of every init, inverse
# roots refreshed under a host condition, eigenvectors, and the mistakes a writer makes
# with them (a non-square argument, a tensor root, shapes that do not fit the state).
SQUARE_SPEC = """name = "Preconditioned"
{top}update = \"\"\"
grad = clip(grad * rescale_grad, clip_gradient)
u = grad
{body}
L = L + matmul(grad, transpose(grad))
R = R + matmul(transpose(grad), grad)
if t % freq == 1:
    Li = inverse_root(L, 4)
m = 0.9 * m + 0.1 * u
weight = weight - lr * u
\"\"\"
[hyperparameters]
learning_rate = 0.1
eps = {{ default = 0.1, range = "(0, inf)" }}
freq = {{ default = 2, type = "int", range = "[1, 9]" }}
flag = {{ default = false }}
seed = {{ default = 0, type = "int", range = "[0, inf)" }}
[states]
m = "zeros"
{states}
"""
SQUARE_STATES = ('L = { init = "eps", shape = "rows_by_rows" }\nR = { init = 1.0, shape = "cols_by_cols" }\n'
                 'Li = { init = "zeros", shape = "rows_by_rows" }')
SQUARE_RIGHT = [
    "L = L + matmul(grad, transpose(grad))", "R = R + matmul(transpose(grad), grad)",
    "if t % freq == 1:\n    Li = inverse_root(L, 4)", "u = matmul(Li, u)", "u = matmul(u, inverse_root(R, 2))",
    "q = eigh(L)\nu = matmul(q, matmul(transpose(q), u))", "m = 0.9 * m + 0.1 * u",
    "if flag:\n    Li = inverse_root(matmul(u, transpose(u)) + L, 1)",
    "k = col_sum(u * u)\nu = sort_cols(u, k)", "u = matmul(qr(L), u)", "u = sort_rows(u, row_max(u))",
    "v = normal(0, 1)\nb = solve(transpose(L), v)\nL = L - matmul(triu(matmul(b, transpose(b))), L) / "
    "(norm_lower_bound(matmul(b, transpose(b))) + 1)",
    "u = solve_right(u, R)", "u = u / (norm_lower_bound(R) + 1)", "L = triu(L)",
]
SQUARE_WRONG = [
    "u = inverse_root(grad, 2)", "u = eigh(grad)", "Li = inverse_root(L, grad)", "Li = inverse_root(L)",
    "Li = eigh(L, 2)", "L = grad", "u = matmul(L, R)", "u = inverse_root(norm(grad), 2)",
    "u = inverse_root(L, clip_gradient)", "L = L + matmul(transpose(grad), grad)", "u = u + L",
    "u = inverse_root(lr, 2)", "R = row_mean(grad)", "u = eigh(transpose(R))",
    "u = sort_rows(u, col_sum(u))", "u = sort_cols(u, row_sum(u))", "u = qr(grad)", "u = sort_cols(lr, u)",
    "u = sort_rows(u, u)", "u = sort_cols(norm(u), u)",
    "u = solve(R, u)", "u = solve_right(u, L)", "u = solve(grad, u)", "u = triu(grad)",
    "u = norm_lower_bound(grad)", "u = solve(L)", "u = triu(L, R)", "u = solve_right(L, u)",
]
SQUARE_DECLARATIONS = [
    'L = { init = "weight", shape = "rows_by_rows" }', 'L = { init = "flag", shape = "rows_by_rows" }',
    'L = { init = true, shape = "rows_by_rows" }', 'L = { init = "eps", shape = "rows_by_rows", quantize = true }',
    'L = { init = "eps", shape = "rows_by_cols" }', 'L = { init = "eps", shape = "rows_by_rows", dtype = "float16" }',
    'L = { init = "nothere", shape = "rows_by_rows" }', 'L = { init = "identity", shape = "rows_by_rows", when = "ndim" }',
    'L = { init = "identity", shape = "cols_by_cols", when = "ndim >= 2" }', 'L = { init = 0, shape = "rows_by_rows" }',
]


def _square_spec(pieces, states=SQUARE_STATES, top=""):
    return SQUARE_SPEC.format(top=top, body="\n".join(pieces), states=states)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the per-example time limit needs SIGALRM")
def test_square_constructs_give_modules_or_positioned_errors(tmp_path):
    outcomes = {"valid": 0, "error": 0}

    @settings(max_examples=max(30, EXAMPLES // 20), derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.lists(st.sampled_from(SQUARE_RIGHT), min_size=1, max_size=4),
           st.one_of(st.none(), st.sampled_from(SQUARE_WRONG)), st.integers(0, 4),
           st.one_of(st.just(None), st.sampled_from(SQUARE_DECLARATIONS)),
           st.sampled_from(["", 'matrix = "last_two"\n', 'matrix = "first_rest"\n']))
    def run(pieces, wrong, where, declaration, top):
        if wrong is not None:
            pieces = pieces[:where] + [wrong] + pieces[where:]
        states = SQUARE_STATES if declaration is None else SQUARE_STATES.replace(SQUARE_STATES.split("\n")[0], declaration)
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIME_LIMIT_S)
        try:
            outcomes[check_mutant(_square_spec(pieces, states, top), tmp_path, "square.toml")] += 1
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    run()
    print(f"square fuzz: {outcomes}")
    assert outcomes["valid"] > 0 and outcomes["error"] > 0


@pytest.mark.parametrize("pieces, declaration, position, message", [
    (["u = inverse_root(grad, 2)"], None, (5, 18), "inverse_root() takes a square matrix"),
    (["u = eigh(grad)"], None, (5, 10), "its argument has shape (rows, cols)"),
    (["u = inverse_root(norm(grad), 2)"], None, (5, 18), "its argument is not a matrix"),
    (["Li = inverse_root(L, grad)"], None, (5, 22), "p is one number for the whole step"),
    (["Li = inverse_root(L)"], None, (5, 6), "inverse_root() takes 2 arguments, got 1"),
    (["L = grad"], None, (5, 1), "'L' has shape (rows, rows); the value assigned has shape (rows, cols)"),
    (["u = matmul(L, R)"], None, (5, 5), "inner sizes differ ((rows, rows) times (cols, cols))"),
    (["L = L + matmul(transpose(grad), grad)"], None, (5, 5), "shapes (rows, rows) and (cols, cols) do not broadcast"),
    (["R = row_mean(grad)"], None, (5, 1), "'R' has shape (cols, cols)"),
    (["u = sort_rows(u, col_sum(u))"], None, (5, 18), "key is one value per row of x, shape (rows, 1); it has "
     "shape (1, cols)"),
    (["u = sort_cols(u, u)"], None, (5, 18), "key is one value per column of x, shape (1, cols)"),
    (["u = qr(grad)"], None, (5, 8), "qr() takes a square matrix"),
    (["u = solve(R, u)"], None, (5, 5), "solve(a, b): sizes differ ((cols, cols) against (rows, cols))"),
    (["u = solve_right(u, L)"], None, (5, 5), "solve_right(b, a): sizes differ ((rows, rows) against (rows, cols))"),
    (["u = solve(grad, u)"], None, (5, 11), "solve() takes a square matrix"),
    (["u = triu(grad)"], None, (5, 10), "triu() takes a square matrix"),
    (["u = norm_lower_bound(grad)"], None, (5, 22), "its argument has shape (rows, cols)"),
    (["u = solve(L)"], None, (5, 5), "solve() takes 2 arguments, got 1"),
    (["m = u"], 'L = { init = "weight", shape = "rows_by_rows" }', (21, 14),
     "a rows_by_rows state starts as \"zeros\", \"identity\", a number or a numeric hyperparameter's name"),
    (["m = u"], 'L = { init = "flag", shape = "rows_by_rows" }', (21, 14), "the name of a numeric hyperparameter"),
    (["m = u"], 'L = { init = "eps", shape = "rows_by_rows", quantize = true }', (21, 56),
     "a rows_by_rows state is never stored quantized"),
    (["m = u"], 'L = { init = "eps", shape = "rows_by_cols" }', (21, 29), "not 'rows_by_cols'"),
])
def test_square_mistakes_are_positioned_errors(tmp_path, pieces, declaration, position, message):
    """What the square-construct fuzz draws, with the position and message each mistake must have."""
    states = SQUARE_STATES if declaration is None else SQUARE_STATES.replace(SQUARE_STATES.split("\n")[0], declaration)
    path = tmp_path / "square.toml"
    path.write_text(_square_spec(pieces, states), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        rule = load_rule(path)
        render_spec(rule, analyse(rule), path.name, "square")
    err = caught.value
    assert (err.path, err.line, err.col) == (str(path), *position), str(err)
    assert message in err.message, str(err)


def test_square_constructs_load_and_generate(tmp_path):
    """Every right piece at once loads and renders (the fuzz above needs valid specs to draw)."""
    path = tmp_path / "square.toml"
    path.write_text(_square_spec(SQUARE_RIGHT), encoding="utf-8")
    rule = load_rule(path)
    files = render_spec(rule, analyse(rule), path.name, "square")
    assert any("xp.linalg.eigh" in text for text in files.values())
