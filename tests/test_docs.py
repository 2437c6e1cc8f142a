"""Generated formula docs: pages for every spec, formulas printed from the parsed rule,
docstrings carrying the same formulas, and `generate --check` covering the pages."""
import shutil
import subprocess
import sys
from html import unescape

import pytest
import sympy

import optforge
from optforge.codegen import generate
from optforge.codegen.formulas import Formulas, latex_lines
from optforge.codegen.functions import Clip, Maximum, Norm, Sqrt, Where
from optforge.codegen.loader import load_rule
from optforge.codegen.printers.latex import FormulaLatexPrinter
from optforge.codegen.printers.notation import glyph_table, natural_glyph, rule_names
from optforge.runtime import catalog
from support import html5_error

b1, mean, grad, lr, var, eps, c, x = sympy.symbols("beta1 mean grad lr var epsilon clip_gradient x")


def latex(expr, lead=None, tensors=("mean", "grad", "var", "x")):
    names = {s.name for s in expr.free_symbols}
    return FormulaLatexPrinter({"glyphs": glyph_table(names), "lead": lead, "tensors": tensors}).doprint(expr)


def test_latex_printer_writes_the_language_functions():
    assert latex(Sqrt(var)) == r"\sqrt{\mathrm{var}}"
    assert latex(Clip(grad, c)) == r"\operatorname{clip}\left(g, c\right)"
    assert latex(Maximum(x, grad)) == r"\max\left(x, g\right)"
    assert latex(Norm(grad)) == r"\left\lVert g \right\rVert_{2}"
    assert latex(Where(sympy.Gt(x, 0), x, 0)) == \
        r"\begin{cases} x & \text{if } x > 0 \\ 0 & \text{otherwise} \end{cases}"


def test_latex_printer_writes_sums_and_products_in_a_papers_order():
    # sympy stores grad*(1 - beta1) + beta1*mean; a paper writes the previous value first
    ema = b1 * mean + (1 - b1) * grad
    assert latex(ema, lead="mean") == r"\beta_{1} \, \mathrm{mean} + \left(1 - \beta_{1}\right) \, g"
    step = mean - lr * grad / (Sqrt(var) + eps)
    assert latex(step, lead="mean") == r"\mathrm{mean} - \frac{\eta \, g}{\sqrt{\mathrm{var}} + \epsilon}"


def test_names_get_distinct_symbols():
    assert natural_glyph("beta1").sub == "1" and natural_glyph("mu_next").base == "mu"
    assert natural_glyph("exp_avg").is_word
    # a rule naming a hyperparameter lamda: the built-in wd cannot be lambda too
    table = glyph_table(["lamda", "wd", "grad", "g_sq"])
    assert table["lamda"].key() != table["wd"].key()
    for entry in generate.load_all(generate_root()):
        rule = entry[1]
        glyphs = glyph_table(rule_names(rule))
        keys = [g.key() for g in glyphs.values()]
        assert len(keys) == len(set(keys)), f"{rule.name}: two names share a symbol"


def generate_root():
    from optforge.cli import PACKAGE_ROOT
    return PACKAGE_ROOT


def test_every_optimizer_has_a_markdown_and_an_html_page(repo_root):
    docs = repo_root / "generated" / "docs"
    index = (docs / "index.md").read_text()
    html_index = (docs / "html" / "index.html").read_text()
    for (flavor, name), cls in catalog.load().items():
        module = cls._module.__name__.split("generated.numpy.", 1)[1]
        page = module.replace(".", "/")
        markdown = (docs / f"{page}.md").read_text()
        html = (docs / "html" / f"{page}.html").read_text()
        assert f"({page}.md)" in index and f'href="{page}.html"' in html_index
        assert markdown.startswith("<!-- Generated") and f"# {name} (" in markdown
        for section in ("## Update rule", "## Hyperparameters", "## States", "## Deviations from MXNet"):
            assert section in markdown, f"{page}.md has no {section}"
        for line in cls.SPEC["formulas"]:
            assert line.replace(r"\quad ", "") in markdown, f"{page}.md lacks {line}"
        assert html.count("<math") >= len(cls.SPEC["formulas"])
        for hp in cls.SPEC["hyperparameters"]:      # a list's elements: one row, the list's
            assert f"`{hp.get('list') or hp['name']}`" in markdown


def test_docstrings_carry_the_formulas():
    doc = optforge.Adam.__doc__
    rule = load_rule(generate_root() / "specs" / "adam.toml")
    for line in latex_lines(rule):
        assert line in doc
    assert r"\beta_{1} \, \mathrm{mean} + \left(1 - \beta_{1}\right) \, g" in doc
    assert r"\eta = ``lr``" in doc


def test_pages_follow_the_spec_not_a_copy(tmp_path):
    """Change a formula in a copy of the specs: the page changes with it."""
    root = tmp_path / "project"
    shutil.copytree(generate_root() / "specs", root / "specs")
    spec = root / "specs" / "adam.toml"
    spec.write_text(spec.read_text().replace("mean   = beta1 * mean", "mean   = beta2 * mean"))
    files = generate.render_all(root)
    page = files["generated/docs/adam.md"]
    assert r"\mathrm{mean} \leftarrow \beta_{2} \, \mathrm{mean}" in page
    assert r"\mathrm{mean} \leftarrow \beta_{1} \, \mathrm{mean}" not in page
    assert "<mi>β</mi><mn>2</mn></msub><mo lspace" in files["generated/docs/html/adam.html"]


def test_flavor_pages_show_their_differences(repo_root):
    page = (repo_root / "generated" / "docs" / "mxnet1" / "adam.md").read_text()
    assert "## Differences from [Adam (MXNet 2.0)](../adam.md)" in page
    removed, added = page.split("become", 1)
    assert r"g \leftarrow \operatorname{clip}\left(r \, g, c\right) + \lambda \, w" in removed.split("## Differences")[1]
    assert r"g \leftarrow \operatorname{clip}\left(r \, g + \lambda \, w, c\right)" in added
    assert "option lazy_update: false -> true" in page


def test_check_reports_a_stale_page(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(generate_root() / "specs", root / "specs")
    generate.write(root)
    assert generate.check(root) == []
    page = root / "generated" / "docs" / "html" / "sgd.html"
    page.write_text(page.read_text().replace("<mi>", "<mn>", 1))
    assert generate.check(root) == [("generated/docs/html/sgd.html", "stale: differs from what the specs generate")]
    (root / "generated" / "docs" / "old.md").write_text("x")
    assert ("generated/docs/old.md", "extra: no spec generates it") in generate.check(root)


def test_generate_writes_docs_from_the_command_line(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(generate_root() / "specs", root / "specs")
    result = subprocess.run([sys.executable, "-m", "optforge", "generate", "--root", str(root)],
                            capture_output=True, text=True, check=True)
    assert "wrote generated/docs/index.md" in result.stdout
    assert (root / "generated" / "docs" / "html" / "style.css").is_file()


@pytest.mark.parametrize("spec", ["rmsprop", "signum"])
def test_if_blocks_are_rendered_as_branches(spec):
    lines = Formulas(load_rule(generate_root() / "specs" / f"{spec}.toml")).lines()
    kinds = [ln.kind for ln in lines]
    assert "if" in kinds and "else" in kinds
    first_if = kinds.index("if")
    assert lines[first_if + 1].depth == lines[first_if].depth + 1


# -- the site as a newcomer reads it ------------------------------------------------------


def _construct_blocks(markdown):
    """The ```python blocks of a page's Construct section."""
    section = markdown.split("## Construct", 1)[1].split("\n## ", 1)[0]
    return [block.split("\n", 1)[1] for block in section.split("```python")[1:] for block in [block.split("```")[0]]]


def test_flavors_are_the_same_optimizer_not_the_specs_that_extend_it(repo_root):
    adam = (repo_root / "generated/docs/adam.md").read_text()
    flavors = adam.split("Other flavors", 1)[1].split("\n", 1)[0]
    assert "(mxnet1/adam.md)" in flavors and "(torch/adam.md)" in flavors
    assert "AMSGrad" not in flavors and "amsgrad" not in flavors
    amsgrad = (repo_root / "generated/docs/amsgrad.md").read_text()
    assert "Other flavors" not in amsgrad and "## Differences from [Adam (MXNet 2.0)](adam.md)" in amsgrad


def test_every_page_shows_constructors_that_build_its_optimizer(repo_root):
    """Every line of every Construct block runs and builds the page's optimizer: the
    flavor's rule, with the defaults the page prints; the optforge.torch lines on a tiny
    torch model, as a torch.optim.Optimizer."""
    import numpy as np
    torch = pytest.importorskip("torch")
    import optforge.torch
    params = [np.ones((3, 2), np.float32)]   # 2-D: Muon takes matrices only
    model = torch.nn.Linear(3, 2, bias=False)
    torch_lines = 0
    for page in sorted((repo_root / "generated/docs").rglob("*.md")):
        if page.name == "index.md":
            continue
        module = page.relative_to(repo_root / "generated/docs").with_suffix("").as_posix().replace("/", ".")
        flavor, key = (module.split(".") if "." in module else ("mxnet2", module))
        lines = [line for block in _construct_blocks(page.read_text()) for line in block.strip().splitlines()]
        assert lines and any(f"optforge.create({key!r}" in line for line in lines), page
        for line in lines:
            scope = {"optforge": optforge, "params": params, "model": model}
            exec(line, scope)
            opt = scope["opt"]
            engine = getattr(opt, "spec_class", type(opt))
            assert (engine.flavor, engine.SPEC["key"]) == (flavor, key), (page, line)
            if line.startswith("opt = optforge.torch."):
                torch_lines += 1
                assert isinstance(opt, torch.optim.Optimizer), (page, line)
                assert [p for g in opt.param_groups for p in g["params"]] == list(model.parameters())
    assert torch_lines == len(optforge.torch.classes())    # one page per class shows it


def test_pages_show_each_api_familys_names(repo_root):
    torch_adam = (repo_root / "generated/docs/torch/adam.md").read_text()
    blocks = _construct_blocks(torch_adam)
    assert blocks[0].startswith("opt = optforge.torch.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-08")
    assert blocks[1].startswith("opt = optforge.optim.Adam(params, lr=0.001, betas=(0.9, 0.999), eps=1e-08")
    assert all("learning_rate" not in b and "beta1" not in b for b in blocks[:2])
    assert "optforge.create('adam', flavor='torch', learning_rate=0.001, beta1=0.9" in blocks[2]
    assert "| `epsilon` | `eps` |" in torch_adam and "| `learning_rate` | `lr` |" in torch_adam
    adam = (repo_root / "generated/docs/adam.md").read_text()
    assert "opt = optforge.Adam(learning_rate=0.001, beta1=0.9" in adam and "optforge.optim" not in adam
    lion = (repo_root / "generated/docs/lion.md").read_text()       # no torch flavor: params style from MXNet 2.0's spec
    assert "opt = optforge.optim.Lion(params, lr=" in lion and "opt = optforge.Lion(learning_rate=" in lion
    assert "opt = optforge.torch.Lion(model.parameters(), lr=" in lion
    assert "optforge.torch" not in adam
    assert "optforge.optim" not in (repo_root / "generated/docs/mxnet1/adam.md").read_text()


def test_reference_addresses_are_links(repo_root):
    html = (repo_root / "generated/docs/html/adam.html").read_text()
    assert '<a href="https://arxiv.org/abs/1412.6980">https://arxiv.org/abs/1412.6980</a>' in html
    assert "<https://arxiv.org/abs/1412.6980>" in (repo_root / "generated/docs/adam.md").read_text()


def test_sidebar_links_every_page_by_flavor(repo_root):
    import re
    html_root = repo_root / "generated/docs/html"
    pages = sorted(p for p in html_root.rglob("*.html"))
    for page in (html_root / "index.html", html_root / "torch/adam.html"):
        text = page.read_text()
        aside = text.split('<aside class="sidebar"', 1)[1].split("</aside>", 1)[0]
        assert [h for h in re.findall(r"<h2>(.*?)</h2>", aside)] == ["MXNet 2.0", "MXNet 1.x",
                                                                  "PyTorch / MindSpore (torch.optim)"]
        targets = {(page.parent / href).resolve() for href in re.findall(r'href="([^"]+)"', aside)}
        assert targets == {p.resolve() for p in pages if p.name != "index.html"}
    current = (html_root / "torch/adam.html").read_text().split("</aside>")[0]
    assert re.findall(r'<a href="([^"]+)" aria-current="page">', current) == ["adam.html"]


def test_kernel_docstrings_say_whether_the_update_is_element_wise():
    from optforge.generated.numpy import adam, lamb, sgld
    assert adam.kernel_default.__doc__.startswith("Element-wise update of")
    assert "Element-wise" not in lamb.kernel_bias_correction.__doc__
    assert "norms of whole arrays: not element-wise" in lamb.kernel_bias_correction.__doc__
    assert "normal noise" in sgld.kernel_default.__doc__


def test_params_style_docstrings_name_the_classes_own_arguments():
    from optforge import optim
    section = optim.Adam.__doc__.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    arguments = [line.split(" :")[0] for line in section.splitlines() if not line.startswith(" ")]
    assert arguments == ["params", "lr", "betas", "eps", "amsgrad", "maximize", "weight_decay", "state_storage",
                         "min_8bit_size"]
    assert "    betas[1] (beta2) : float, default 0.999, in [0, 1)" in section
    mxnet = optforge.Adam.__doc__.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split(" :")[0] for line in mxnet.splitlines() if not line.startswith(" ")][:4] == \
        ["learning_rate", "beta1", "beta2", "epsilon"]


# -- HTML validity ------------------------------------------------------------------------


def test_every_html_page_parses_as_strict_html5(repo_root):
    pages = sorted((repo_root / "generated/docs/html").rglob("*.html"))
    assert len(pages) > len(catalog.load())      # every optimizer's page and the index
    errors = {p.relative_to(repo_root).as_posix(): html5_error(p.read_text()) for p in pages}
    assert {page: error for page, error in errors.items() if error} == {}


def test_the_strict_check_sees_an_unescaped_less_than():
    page = "<!DOCTYPE html><html lang='en'><head><title>t</title></head><body><math>{}</math></body></html>"
    assert html5_error(page.format("<mi>v</mi><mo>&lt;</mo><mn>0</mn>")) is None
    assert html5_error(page.format("<mi>v</mi><mo><</mo><mn>0</mn>")).endswith("expected-tag-name")


def test_mathml_text_is_escaped_for_html():
    rule = load_rule(generate_root() / "specs" / "novograd.toml")
    formulas = Formulas(rule)
    v = sympy.Symbol("v")
    assert formulas.mathml(sympy.Lt(v, 0)) == "<mrow><mi>v</mi><mo>&lt;</mo><mn>0</mn></mrow>"
    assert formulas.mathml(sympy.Gt(v, 0)) == "<mrow><mi>v</mi><mo>&gt;</mo><mn>0</mn></mrow>"
    # a string hyperparameter's text is escaped once, not twice
    from optforge.codegen.functions import StringLiteral
    assert formulas.mathml(StringLiteral("a<b&c")) == "<mtext>“a&lt;b&amp;c”</mtext>"


# -- which pages claim a library's semantics ----------------------------------------------


def test_only_mxnets_own_optimizers_are_titled_and_vouched_for_as_mxnet(repo_root):
    """MXNet's optimizers keep "Adam (MXNet 2.0)" and, without listed deviations, "None: this
    rule computes what MXNet 2.0 computes"; the optimizers MXNet lacks (Lion, AMSGrad, ...)
    are titled by the conventions they follow. The list of MXNet's optimizers agrees with
    the specs: each of the others says in its deviations that MXNet has no such optimizer."""
    from optforge.codegen.emitters import docs
    own, other = set(), set()
    for path, rule in generate.load_all(generate_root()):
        module = generate.module_name(generate_root(), path)
        page = (repo_root / "generated/docs" / docs.page_path(module, ".md")).read_text()
        html = (repo_root / "generated/docs/html" / docs.page_path(module, ".html")).read_text()
        title = page.splitlines()[1]
        if rule.flavor == "torch":
            assert rule.key in docs.LIBRARY_OPTIMIZERS["torch"], module    # every torch spec is torch.optim's
            continue
        label = docs.FLAVORS[rule.flavor]
        if rule.key in docs.LIBRARY_OPTIMIZERS[rule.flavor]:
            own.add(module)
            assert title == f"# {rule.name} ({label})", module
            assert not any("MXNet has no" in d for d in rule.deviations), module
            assert f"<title>{rule.name} ({label}) · optforge</title>" in html
        else:
            other.add(module)
            assert title == f"# {rule.name} ({label} conventions)", module
            assert any("MXNet has no" in d for d in rule.deviations), module
            assert "None: this rule computes" not in page and "None: this rule computes" not in html
            assert f"<title>{rule.name} ({label} conventions) · optforge</title>" in html
    assert {"adam", "sgd", "mxnet1.lbsgd", "test"} <= own
    assert {"lion", "amsgrad", "yogi", "novograd", "adafactor"} <= other
    assert "None: this rule computes what MXNet 2.0 computes." in (repo_root / "generated/docs/adam.md").read_text()
    torch_adafactor = (repo_root / "generated/docs/torch/adafactor.md").read_text()
    assert "[Adafactor (MXNet 2.0 conventions)](../adafactor.md)" in torch_adafactor


def _loaded_pages(spec, cache, monkeypatch):
    """(Markdown, HTML) of `optforge docs FILE`'s pages for a spec file."""
    from optforge.cli import render_docs
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(cache))
    html = render_docs(spec)
    folder = cache / "docs" / html.relative_to(cache / "docs").parts[0]
    markdown = folder / html.relative_to(folder / "html").with_suffix(".md")
    return markdown.read_text(), html.read_text()


def test_a_spec_of_load_spec_claims_no_mxnet_equivalence(tmp_path, monkeypatch):
    """A spec written with `optforge new` and a copy of MXNet's Adam from outside specs/ are
    rules in MXNet 2.0's conventions: titled so, no "None: ... computes what MXNet 2.0
    computes", no `optforge.MyOpt` class attribute; their constructors run once the spec is
    loaded, and the HTML is valid."""
    from optforge.codegen.authoring import new_spec
    spec = new_spec("MyOpt", tmp_path / "d", False)
    markdown, html = _loaded_pages(spec, tmp_path / "cache", monkeypatch)
    assert markdown.splitlines()[:2] == ["<!-- Generated by `optforge docs` from myopt.toml. Do not edit. -->",
                                         "# MyOpt (MXNet 2.0 conventions)"]
    for page in (markdown, unescape(html)):
        assert "(MXNet 2.0)" not in page and "None: this rule computes" not in page
        assert "Not one of MXNet's optimizers: a rule written in MXNet 2.0 conventions" in page
        assert "optforge.MyOpt(" not in page
    assert f"`optforge.load_spec({str(spec.resolve())!r})` generates and registers it first" in markdown
    assert "<title>MyOpt (MXNet 2.0 conventions) · optforge</title>" in html
    assert "<h2>MXNet 2.0 conventions</h2>" in html             # the sidebar's heading
    assert html5_error(html) is None
    optforge.load_spec(spec)
    import numpy as np
    for line in (line for block in _construct_blocks(markdown) for line in block.strip().splitlines()
                 if "optforge.torch" not in line):
        scope = {"optforge": optforge, "params": [np.ones(3, np.float32)]}
        exec(line, scope)
        engine = getattr(scope["opt"], "spec_class", type(scope["opt"]))
        assert engine.SPEC["key"] == "myopt", line

    copy = tmp_path / "mine" / "adam.toml"        # MXNet's Adam, copied: no longer vouched for
    copy.parent.mkdir()
    copy.write_text((generate_root() / "specs" / "adam.toml").read_text())
    markdown, html = _loaded_pages(copy, tmp_path / "cache", monkeypatch)
    assert markdown.splitlines()[1] == "# Adam (MXNet 2.0 conventions)"
    assert "None: this rule computes" not in markdown and "optforge.Adam(" not in markdown

    shipped, _ = _loaded_pages(generate_root() / "specs" / "mxnet1" / "adam.toml", tmp_path / "cache", monkeypatch)
    assert shipped.splitlines()[1] == "# Adam (MXNet 1.x)" and "load_spec" not in shipped


def test_a_project_of_its_own_gets_honest_pages(tmp_path):
    """`optforge generate --root DIR` of specs that are not MXNet's (a spec named MyOpt)."""
    from optforge.codegen.authoring import new_spec
    root = tmp_path / "project"
    new_spec("MyOpt", root / "specs", False)
    files = generate.render_all(root)
    page = files["generated/docs/myopt.md"]
    assert page.splitlines()[1] == "# MyOpt (MXNet 2.0 conventions)"
    assert "None: this rule computes" not in page and "Not one of MXNet's optimizers" in page
    assert "## MXNet 2.0 conventions (`mxnet2`)" in files["generated/docs/index.md"]
    assert "1 optimizer, each generated" in files["generated/docs/index.md"]


def test_spec_format_shows_the_evaluation_order_the_generator_writes(tmp_path, repo_root):
    """docs/spec-format.md's "Evaluation order" example: its spec generates exactly the host
    and kernel lines it shows (in that order), and the native CPU and CUDA files compute the
    same instructions."""
    import re
    from optforge.codegen.analysis import analyse
    guide = (repo_root / "docs" / "spec-format.md").read_text()
    section = guide.split("## Evaluation order", 1)[1].split("\n## ", 1)[0]
    spec_text = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    spec = tmp_path / "example.toml"
    spec.write_text(spec_text)
    rule = load_rule(spec)
    files = generate.render_spec(rule, analyse(rule), spec.name, "example")
    generated = [line.strip() for line in files["numpy/example.py"].splitlines()]
    position = 0
    for line in (line.strip() for line in shown.splitlines() if line.strip()):
        assert line in generated[position:], line
        position = generated.index(line, position) + 1
    for path in ("cpu/example.cpp", "cuda/example.cu"):
        statements = re.findall(r"const M (v\d+ = [^;]+);", files[path])
        assert statements == ["v0 = grad * grad", "v1 = v0 * s.c_1", "v2 = v1 + s.c_2", "v3 = v2 * s.lr",
                              "v4 = weight - v3"], path
    assert "`v1 = v0 * s.c_1;`" in section and "`v2 = v1 + s.c_2;`" in section
