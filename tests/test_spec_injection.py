"""No spec text reaches generated code unescaped.

Every free-text field of a spec (summary, references, notes, deviations, the docs of
hyperparameters and states, enum choices, comments in the update block, the spec's
path) is given payloads that would run code, add a line to a `.cu` file, break a
docstring or add markup if pasted verbatim. The spec is generated through every
per-spec emitter and the docs emitter; the generated modules are imported (nothing
runs: the sentinel file is never created), the `.cu` text keeps every payload inside
comments (g++ strips them and no payload is left; the file compiles with the host
shim), and the docs pages add no markup.
"""
import html.parser
import json
import re
import subprocess

import pytest

import cuda_host
from support import import_file
from optforge import SpecError
from optforge.codegen.analysis import analyse
from optforge.codegen.emitters import docs
from optforge.codegen.escaping import c_comment, docstring, markdown, python_comment
from optforge.codegen.render import render_spec
from optforge.codegen.loader import load_rule

MARK = "INJECTED"   # every payload's live part carries this word


def payloads(sentinel):
    run = f'__import__("pathlib").Path({str(sentinel)!r}).touch()  # {MARK}'
    return [
        f'"""; {run}; """',                                  # closes a docstring
        f'"""\n{run}\n"""',
        f"x\n#error {MARK}\n{run}\n",                        # a new line in a comment
        f"x\r#error {MARK}\r{run}\r",                        # carriage returns end lines too
        f"x\u2028#error {MARK}\u2029{run}\x85{run}\x0c",     # Unicode line ends, NEL, form feed
        "\\N{LATIN SMALL LETTER A} \\x \\u12",               # invalid escapes in a docstring
        f"ends with a backslash \\\n#error {MARK}",          # splices the next C++ line
        f"*/ #error {MARK} /* \\",
        f'</p><script>{MARK}()</script><img src=x onerror="{MARK}">',
        f"| {MARK} | cell | [link](javascript:{MARK}) $x$ `code` *em* _u_ # {MARK}",
        f"- {MARK}\n# {MARK}\n1. {MARK}",
        "nul \x00 end",
    ]


# The update block's comments hold the payloads that can sit on one line of Python.
def comment_payloads(sentinel):
    return [p for p in payloads(sentinel) if not set(p) & set("\n\r\x00\x0c")]   # TOML forbids the rest


def toml_string(text):
    return json.dumps(text)   # a JSON string (\uXXXX escapes) is a TOML basic string


def hostile_spec(sentinel):
    texts = payloads(sentinel)
    everything = "".join(texts)
    one_line = comment_payloads(sentinel)
    update = "\n".join([f"# {p}" for p in one_line] + [
        f"grad = clip(grad * rescale_grad, clip_gradient)   # {one_line[0]}",
        f"if mode == {everything!r}:",
        "    mom = momentum * mom - lr * grad",
        "else:",
        "    mom = momentum * mom + lr * grad",
        f"weight = weight + mom  # {one_line[-1]}",
    ]) + "\n"
    return "\n".join([
        'name = "Hostile"',
        f"summary = {toml_string(everything)}",
        f"references = [{', '.join(toml_string(p) for p in texts)}]",
        f"notes = [{toml_string(everything)}]",
        f"deviations = [{toml_string(everything)}]",
        f"update = '''\n{update}'''",
        "[hyperparameters]",
        f"momentum = {{ default = 0.9, range = \"[0, 1)\", doc = {toml_string(everything)} }}",
        f"mode = {{ default = \"a\", choices = [\"a\", {toml_string(everything)}], doc = {toml_string(everything)} }}",
        "[states]",
        f"mom = {{ init = \"zeros\", doc = {toml_string(everything)} }}",
        "",
    ])


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes += [name for name, _ in attrs]


@pytest.fixture
def hostile(tmp_path):
    sentinel = tmp_path / "ran"
    path = tmp_path / "hostile.toml"
    path.write_text(hostile_spec(sentinel), encoding="utf-8")
    return path, sentinel


def test_the_hostile_spec_is_valid_and_keeps_its_text(hostile):
    path, sentinel = hostile
    rule = load_rule(path)
    everything = "".join(payloads(sentinel))
    assert rule.summary == everything and rule.notes == (everything,)
    assert all(p in rule.update_text for p in comment_payloads(sentinel))


def test_generated_modules_import_and_nothing_runs(hostile, tmp_path):
    path, sentinel = hostile
    rule = load_rule(path)
    weird_path = 'specs/a"""b\\N\n#error INJECTED\r\u2028x.toml'   # the spec path is text too
    files = render_spec(rule, analyse(rule), weird_path, "hostile")
    assert {"numpy/hostile.py", "cuda/hostile.py", "cuda/hostile.cu"} <= set(files)
    for relative, text in files.items():
        target = tmp_path / "out" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        assert "\r" not in text and "\x00" not in text
    numpy_module = import_file(tmp_path / "out/numpy/hostile.py", "hostile_numpy")
    meta = import_file(tmp_path / "out/cuda/hostile.py", "hostile_cuda_meta")
    assert not sentinel.exists()
    everything = "".join(payloads(sentinel))
    # the text survives exactly, as data
    assert numpy_module.SPEC["summary"] == everything
    assert everything in numpy_module.__doc__ and weird_path in numpy_module.__doc__
    assert weird_path in meta.__doc__
    assert set(numpy_module.VARIANTS) == {(True,), (False,)}


def test_cu_payloads_stay_in_comments(hostile, tmp_path):
    path, sentinel = hostile
    rule = load_rule(path)
    files = render_spec(rule, analyse(rule), "specs/x \\\n#error INJECTED", "hostile")
    cu = tmp_path / "hostile.cu"
    cu.write_text(files["cuda/hostile.cu"], encoding="utf-8")
    assert MARK in cu.read_text()
    # g++ removes the comments without expanding anything: no payload may be left
    stripped = subprocess.run(["g++", "-fpreprocessed", "-dD", "-E", "-x", "c++", str(cu)],
                              capture_output=True, text=True, check=True).stdout
    # (variant names are made of the enum choice's letters: only identifier characters)
    for live in ("#error", "__import__(", "*/", "javascript:", "<script", "pathlib\")"):
        assert live not in stripped, live
    assert files["cuda/hostile.cu"].isascii()


@pytest.mark.skipif(cuda_host.compiler() is None, reason="needs g++")
def test_cu_with_payloads_compiles(hostile, tmp_path, repo_root):
    path, _ = hostile
    rule = load_rule(path)
    cu = tmp_path / "hostile.cu"
    cu.write_text(render_spec(rule, analyse(rule), "hostile.toml", "hostile")["cuda/hostile.cu"])
    # a live `#error INJECTED` line would fail the build
    assert cuda_host.build(cu, repo_root / "generated" / "cuda", tmp_path).exists()


def test_nvrtc_compiles_the_cu_with_payloads(hostile, repo_root):
    """NVRTC, which compiles the kernels of a loaded spec on the GPU: a live `#error INJECTED`
    line would fail the build (runs without a GPU; skips without CuPy's NVRTC)."""
    from optforge.runtime.backends import kernel_cache
    try:
        kernel_cache.nvrtc_version()
    except Exception:   # no CuPy, or CuPy without a loadable libnvrtc
        pytest.skip("needs CuPy with NVRTC")
    path, _ = hostile
    rule = load_rule(path)
    source = render_spec(rule, analyse(rule), 'a"""\n#error INJECTED', "hostile")["cuda/hostile.cu"]
    header = (repo_root / "generated" / "cuda" / "optforge.cuh").read_text()
    cubin = kernel_cache.compile_cubin(source, header, kernel_cache.options("90"), "hostile.cu")
    assert cubin[:4] == b"\x7fELF"


def test_docs_pages_add_no_markup(hostile):
    path, sentinel = hostile
    rule = load_rule(path)
    entry = docs.Entry("hostile", rule, "specs/hostile.toml")
    docs.site([entry])
    page = docs.render_html(entry)
    tags = _Tags()
    tags.feed(page)
    assert "script" not in tags.tags and "img" not in tags.tags
    assert not any(a.startswith("on") for a in tags.attributes)
    assert "&lt;script&gt;" in page
    markdown_page = docs.render_markdown(entry)
    for line in markdown_page.splitlines():
        # no payload starts a line (a heading, a list item, an HTML block, a directive)
        assert not line.lstrip().startswith(("#error", f"# {MARK}", f"- {MARK}", "1. INJECTED", "<script")), line
        if line.startswith("| "):   # every table row keeps its cells
            cells = line.replace("\\|", "").count("|")
            assert cells in (4, 6, 7), line
    body = markdown_page.split("\n", 1)[1]   # after the generator's own <!-- comment -->
    assert not re.search(r"(?<!\\)(\\\\)*<", body), "raw HTML in the Markdown page"


def test_load_spec_of_hostile_spec(hostile, tmp_path, monkeypatch):
    import optforge
    path, sentinel = hostile
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    cls = optforge.load_spec(path, register=False)
    assert not sentinel.exists()
    assert cls.SPEC["summary"] == "".join(payloads(sentinel))


def test_a_line_break_in_the_update_is_code_not_comment(tmp_path):
    """A carriage return in the update block ends a comment for Python's parser too: what
    follows is parsed as a statement of the rule (and refused), never pasted anywhere."""
    sentinel = tmp_path / "ran"
    spec = tmp_path / "cr.toml"
    spec.write_text('name = "Cr"\nupdate = "weight = weight - lr * grad  # x\\r__import__(\'os\')'
                    f'.system(\'touch {sentinel}\')"\n', encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_rule(spec)
    assert err.value.line is not None and err.value.line <= 2
    assert not sentinel.exists()


@pytest.mark.parametrize("text", ["", "a", '"', '""', '"""', 'a"', '\\', '\\"', "\\N{x}", "\r\n\u2028\x00",
                                  'x"""y""""', "\U0001F600 é"])
def test_escapes_round_trip(text):
    import ast
    assert ast.literal_eval('"""' + docstring(text) + '"""') == text
    for escaped in (python_comment(text), c_comment(text), markdown(text)):
        assert len(escaped.splitlines()) <= 1 and "\x00" not in escaped
    assert c_comment(text).isascii() and not c_comment(text + "\\").endswith("\\")
