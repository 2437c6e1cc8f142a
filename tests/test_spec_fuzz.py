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
]
VALUES = ["0", "-1", "1e400", "inf", "nan", '"x"', "true", "[]", "{}", '"[0, 1)"', '"(1, 0)"', "9" * 40,
          '"zeros"', '"weight"', '"float32"', '"rows"', '"scalar"', '"beta1 > 0"', '"True"',
          '{ env = "X", default = 4, max = "y" }', '"my.opt"', '"\\"\\"\\""',
          '"cols"', '"first_rest"', '"last_two"', '"ndim >= 2"', '"rows > cols"']


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
