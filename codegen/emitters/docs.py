"""The docs emitter: a Markdown page and an HTML page per spec, and an index of each.

Every formula is printed from the parsed rule (`formulas.py`: LaTeX for Markdown,
MathML for HTML), never copied from the spec's text. The HTML needs no script,
font or network: browsers render MathML natively, and the one stylesheet is
written next to the pages.
"""
import difflib
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...conventions import arguments
from ...conventions.api_families import constructors as api_families_of
from ..formulas import Formulas, used_names
from ..ir import BUILTINS, Assign, walk
from ..loader import load_rule
from ..metadata import spec_metadata
from ..printers.notation import BUILTIN_MEANINGS
from .templates import environment

FLAVORS = {
    "mxnet2": "MXNet 2.0",
    "mxnet1": "MXNet 1.x",
    "torch": "PyTorch / MindSpore (torch.optim)",
}
MXNET_FLAVORS = ("mxnet2", "mxnet1")

# The optimizers each flavor's library has, by registry key: `mxnet.optimizer` of MXNet 2.0
# and 1.x, and `torch.optim`. A page titles a spec with the library's name ("Adam (MXNet
# 2.0)") and claims the library's semantics only for a spec of optforge's own that is one of
# these. Every other spec (Lion, a spec given to `optforge.load_spec`) is written in the
# flavor's conventions only: there is no library optimizer it could match.
LIBRARY_OPTIMIZERS = {
    "mxnet2": frozenset({"adabelief", "adadelta", "adagrad", "adam", "adamax", "adamw", "dcasgd", "ftml",
                         "ftrl", "groupadagrad", "lamb", "lans", "lars", "nadam", "nag", "rmsprop", "sgd",
                         "sgld", "signum", "test"}),
    "mxnet1": frozenset({"adadelta", "adagrad", "adam", "adamax", "ccsgd", "dcasgd", "ftml", "ftrl",
                         "groupadagrad", "lamb", "lars", "lbsgd", "nadam", "nag", "rmsprop", "sgd", "sgld",
                         "signum", "test"}),
    "torch": frozenset({"adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "asgd", "lbfgs", "muon",
                        "nadam", "radam", "rmsprop", "rprop", "sgd", "sparseadam"}),
}
CONVENTIONS = {
    "mxnet2": "MXNet 2.0 conventions",
    "mxnet1": "MXNet 1.x conventions",
    "torch": "torch.optim conventions",
}
GENERATE = "optforge generate"
SHIPPED_SPECS = Path(__file__).resolve().parent.parent.parent / "specs"   # optforge's own specs/


@dataclass
class Entry:
    """One spec of the site."""

    module: str              # "adam", "mxnet1.adam"
    rule: object
    spec_path: str           # relative to the repository root
    siblings: list = field(default_factory=list)   # [(label, module)] of the other flavors
    base_module: str | None = None                  # the page of the spec it extends
    params_style: bool = False                      # optforge.optim has a class built from it
    metadata: dict | None = None                    # the spec's SPEC dict (metadata.spec_metadata)
    # one of the generated project's specs (`optforge generate`), as opposed to a file given
    # to `optforge.load_spec` (`optforge docs PATH`): only those can be a library's optimizer,
    # and only they have a class attribute (`optforge.Adam`)
    shipped: bool = True


def _metadata(entry):
    if entry.metadata is None:
        entry.metadata = spec_metadata(entry.rule, entry.spec_path)
    return entry.metadata


def flavor_label(flavor):
    return FLAVORS.get(flavor, flavor)


def library_optimizer(rule, shipped):
    """Whether the spec is its flavor's library's own optimizer (MXNet 2.0's Adam), not only
    a rule written in that library's conventions (Lion, or any spec of load_spec)."""
    return shipped and rule.key in LIBRARY_OPTIMIZERS.get(rule.flavor, ())


def rule_label(rule, shipped):
    """The flavor as a page names it: the library for its own optimizers ("MXNet 2.0"), its
    conventions for any other rule ("MXNet 2.0 conventions")."""
    if library_optimizer(rule, shipped):
        return flavor_label(rule.flavor)
    return CONVENTIONS.get(rule.flavor, rule.flavor)


def entry_label(entry):
    return rule_label(entry.rule, entry.shipped)


def _shipped_path(path):
    """Whether a spec file is one of optforge's own specs (a base that a loaded spec extends)."""
    return Path(path).resolve().is_relative_to(SHIPPED_SPECS)


def page_path(module, suffix):
    return module.replace(".", "/") + suffix


def link(from_module, to_module, suffix):
    """Relative link between two pages of the same tree."""
    start = posixpath.dirname(page_path(from_module, suffix)) or "."
    return posixpath.relpath(page_path(to_module, suffix), start)


# -- the page model ------------------------------------------------------------------
def page_model(entry, command=GENERATE):
    rule = entry.rule
    formulas = Formulas(rule)
    used = used_names(rule)
    return {
        "entry": entry,
        "command": command,
        # the generator comment names the spec by its file name unless it is optforge's own
        # (an absolute path could hold "-->", which would end the comment)
        "source": entry.spec_path if entry.shipped else Path(entry.spec_path).name,
        "rule": rule,
        "flavor": entry_label(entry),
        "create": _create_call(rule),
        "load": _load_call(entry),
        "families": api_families(entry),
        "references": [_linked(ref) for ref in rule.references],
        "lines": formulas.lines(),
        "modes": [{"mode": mode, "lines": formulas.lines(statements)}
                  for mode, (statements, _) in rule.modes.items()],
        "skip_if": _condition(formulas, rule.skip_if) if rule.skip_if is not None else None,
        "requires": _condition(formulas, rule.requires) if getattr(rule, "requires", None) is not None else None,
        "notation": _notation(rule, formulas, used),
        "hyperparameters": _hyperparameters(entry),
        "params_names": bool(argument_names(entry)),
        "states": _states(rule, formulas),
        "differences": _differences(entry, formulas),
        "deviations": _deviations(rule, library_optimizer(rule, entry.shipped)),
    }


def _create_call(rule):
    flavor = "" if rule.flavor == "mxnet2" else f", flavor={rule.flavor!r}"
    return f"optforge.create({rule.key!r}{flavor})"


def _load_call(entry):
    """How a spec that optforge does not ship gets registered, None for optforge's own."""
    return None if entry.shipped else f"optforge.load_spec({entry.spec_path!r})"


def api_families(entry):
    """[{label, names, lines}]: the page's constructors, one block per API family."""
    return api_families_of(_metadata(entry), entry.params_style, builtin=entry.shipped)


def argument_names(entry):
    """{hyperparameter name: the params-style argument} ('betas[0]', 'eps', 'lr',
    'weight_decay'), empty when optforge.optim has no class for the spec."""
    if not entry.params_style:
        return {}
    out = {"learning_rate": "lr", "wd": "weight_decay"}
    for keyword, names in arguments.keywords(_metadata(entry)):
        out.update({name: f"{keyword}[{i}]" if len(names) > 1 else keyword for i, name in enumerate(names)})
    metas = {m["name"]: m for m in _metadata(entry)["hyperparameters"]}
    # a list: the tuple argument its elements form (its own name unless it has a keyword)
    out.update((name, metas[elements[0]].get("keyword") or name)
               for name, elements in arguments.lists(_metadata(entry)).items())
    return out


_URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:)\]]")


def _linked(text):
    """A reference as [(text, url or None)]: its http(s) addresses become links."""
    parts, last = [], 0
    for match in _URL.finditer(text):
        if match.start() > last:
            parts.append((text[last:match.start()], None))
        parts.append((match.group(0), match.group(0)))
        last = match.end()
    if last < len(text):
        parts.append((text[last:], None))
    return parts


def _condition(formulas, cond):
    return {"latex": formulas.latex(cond), "mathml": formulas.mathml(cond)}


def _notation(rule, formulas, used):
    rows = []

    # a list element as the update reads it: betas_1 is betas[1] (name "betas", index 1)
    written = {hp.name: (hp.list, int(hp.name.rsplit("_", 1)[1])) for hp in rule.hyperparameters if hp.list}

    def add(name, meaning):
        if name in used and name not in {r["symbol"] for r in rows}:
            shown, index = written.get(name, (name, None))
            rows.append({"symbol": name, "name": shown, "index": index, "latex": formulas.symbol_latex(name),
                         "mathml": formulas.symbol_mathml(name), "meaning": meaning})
    for name in BUILTINS:
        add(name, BUILTIN_MEANINGS[name])
    for hp in rule.hyperparameters:
        add(hp.name, "hyperparameter: " + (hp.doc or hp.type))
    assigned = [stmt.target for stmt in walk(rule.statements) if isinstance(stmt, Assign)]
    for st in rule.states:
        add(st.name, "state: " + (st.doc or ("kept between steps" if st.name in assigned
                                             else "the weight when the state was created (read-only)")))
    for target in assigned:
        add(target, "computed by the update")
    return rows


def _value(value):
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def _hyperparameters(entry):
    rule = entry.rule
    rows = [{"name": "learning_rate", "default": _value(rule.learning_rate), "range": "[0, inf)",
             "type": "float", "doc": "Base learning rate: lr before the scheduler and lr_mult."}]
    lists = {}
    for hp in rule.hyperparameters:
        allowed = str(hp.range) if hp.range is not None else \
            ", ".join(repr(c) for c in hp.choices) if hp.choices else ""
        if hp.optional:
            allowed = (allowed + " or None").strip()
        if hp.list:     # one row per list hyperparameter: its elements share range and doc
            if hp.list not in lists:
                lists[hp.list] = {"name": hp.list, "default": (), "range": allowed or "-", "doc": hp.doc}
                rows.append(lists[hp.list])
            row = lists[hp.list]
            row["default"] += (hp.default,)
            row["type"] = f"{len(row['default'])} x {hp.type}"
            continue
        rows.append({"name": hp.name, "default": _value(hp.default), "range": allowed or "-",
                     "type": hp.type, "doc": hp.doc})
    for row in lists.values():
        row["default"] = _value(row["default"])
    wd = rule.options.get("wd")
    if wd is not None:
        rows.append({"name": "wd", "default": _value(wd), "range": "[0, inf)", "type": "float",
                     "doc": "Weight decay (this optimizer's default)."})
    params_names = argument_names(entry)
    for row in rows:
        row["params_name"] = params_names.get(row["name"])
    return rows


def _states(rule, formulas):
    rows = []
    for st in rule.states:
        shape = {"weight": "weight's shape", "rows": "(rows, 1, ...)", "cols": "(1, ...) without the first axis",
                 "scalar": "scalar", "group": "one value per param group", "rows_by_rows": "(rows, rows)",
                 "cols_by_cols": "(cols, cols)"}[st.shape]
        if rule.matrix == "last_two" and st.shape in ("rows", "cols", "rows_by_rows", "cols_by_cols"):
            shape = {"rows": "(..., rows, 1)", "cols": "(..., 1, cols)", "rows_by_rows": "(..., rows, rows)",
                     "cols_by_cols": "(..., cols, cols)"}[st.shape]
        dtype = "float64" if st.shape in ("scalar", "group") else \
            "float32 (float64 for float64 weights)" if st.dtype == "float32" else "weight's dtype"
        init = _value(st.init) if not isinstance(st.init, str) else \
            {"zeros": "0", "weight": "a copy of the weight", "identity": "the identity"}.get(st.init, st.init)
        if st.shape in ("rows_by_rows", "cols_by_cols") and st.init not in ("zeros", "identity"):
            init = f"{init} times the identity"
        rows.append({"name": st.name, "shape": shape, "dtype": dtype, "init": init,
                     "when": _condition(formulas, st.when) if st.when is not None else None,
                     "doc": st.doc})
    return rows


def _deviations(rule, own):
    """The spec's own deviations; without them, what the page can truly say: nothing for a
    library's own MXNet optimizer (the template says it computes what MXNet computes), and
    for any other rule that no MXNet rule was matched."""
    if rule.deviations:
        return list(rule.deviations)
    if own:
        if rule.flavor in MXNET_FLAVORS:
            return []
        return [f"Not an MXNet rule: this flavor follows {flavor_label(rule.flavor)} semantics; "
                "see the differences above."]
    return [f"Not one of MXNet's optimizers: a rule written in {CONVENTIONS.get(rule.flavor, rule.flavor)}"
            + (" (rescale_grad, clip_gradient, wd)" if rule.flavor in MXNET_FLAVORS else "")
            + ", not compared with any MXNet rule."]


# -- flavor differences ----------------------------------------------------------------
def _differences(entry, formulas):
    """What a spec that extends another changes, rendered from both parsed rules."""
    rule = entry.rule
    if not rule.extends:
        return None
    base = load_rule(rule.extends)
    base_formulas = Formulas(base)
    base_label = rule_label(base, entry.shipped or _shipped_path(base.path))
    out = {"base": base, "base_flavor": base_label, "base_file": Path(base.path).name,
           "removed": [], "added": [],
           "items": []}
    old = base_formulas.lines()
    new = formulas.lines()
    matcher = difflib.SequenceMatcher(a=[ln.latex for ln in old], b=[ln.latex for ln in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            out["removed"] += old[i1:i2]
            out["added"] += new[j1:j2]
    if base.learning_rate != rule.learning_rate:
        out["items"].append(f"default learning_rate {_value(base.learning_rate)} -> {_value(rule.learning_rate)}")
    base_hps = {hp.name: hp for hp in base.hyperparameters}
    hps = {hp.name: hp for hp in rule.hyperparameters}
    for name, hp in hps.items():
        if name not in base_hps:
            out["items"].append(f"new hyperparameter {name} (default {_value(hp.default)})")
        else:
            old_hp = base_hps[name]
            if old_hp.default != hp.default:
                out["items"].append(f"default {name} {_value(old_hp.default)} -> {_value(hp.default)}")
            if old_hp.range != hp.range:
                out["items"].append(f"range of {name} {old_hp.range} -> {hp.range}")
    out["items"] += [f"no hyperparameter {name}" for name in base_hps if name not in hps]
    base_states = {st.name: st for st in base.states}
    states = {st.name: st for st in rule.states}
    for name, st in states.items():
        if name not in base_states:
            out["items"].append(f"new state {name}")
        elif (base_states[name].dtype, base_states[name].when_text) != (st.dtype, st.when_text):
            out["items"].append(f"state {name}: dtype {st.dtype}" + (f", exists when {st.when_text}" if st.when_text else ""))
    out["items"] += [f"no state {name}" for name in base_states if name not in states]
    for key in sorted(set(base.options) | set(rule.options)):
        if base.options.get(key) != rule.options.get(key):
            out["items"].append(f"option {key}: {_value(base.options.get(key))} -> {_value(rule.options.get(key))}")
    return out


# -- rendering -----------------------------------------------------------------------------
def render_markdown(entry, command=GENERATE):
    model = page_model(entry, command)
    model["siblings"] = [(label, link(entry.module, other, ".md")) for label, other in entry.siblings]
    model["base_link"] = _base_link(entry, ".md")
    return _render("docs/page.md.j2", model)


def render_html(entry, entries=(), command=GENERATE):
    """The HTML page; its sidebar links every entry of the site (`entries`)."""
    model = page_model(entry, command)
    model["siblings"] = [(label, link(entry.module, other, ".html")) for label, other in entry.siblings]
    model["base_link"] = _base_link(entry, ".html")
    model["root"] = link(entry.module, "index", ".html").rsplit("index.html", 1)[0]
    model["sidebar"] = sidebar(entry.module, list(entries) or [entry])
    return _render("docs/page.html.j2", model)


def sidebar(current, entries):
    """[{label, links: [{name, href, current}]}]: every page by flavor, linked from `current`."""
    out = []
    for flavor in sorted({e.rule.flavor for e in entries}, key=lambda f: (f != "mxnet2", f)):
        members = sorted((e for e in entries if e.rule.flavor == flavor), key=lambda e: e.rule.key)
        out.append({"label": _group_label(flavor, members), "links": [
            {"name": e.rule.name, "href": link(current, e.module, ".html"), "current": e.module == current}
            for e in members]})
    return out


def _group_label(flavor, members):
    """A flavor's heading: the library's name where it holds one of the library's optimizers."""
    if any(library_optimizer(e.rule, e.shipped) for e in members):
        return flavor_label(flavor)
    return CONVENTIONS.get(flavor, flavor)


def _base_link(entry, suffix):
    return link(entry.module, entry.base_module, suffix) if entry.base_module else None


def _render(template, model):
    return environment().get_template(template).render(**model).rstrip("\n") + "\n"


def site(entries):
    """Link the flavors of one optimizer: the same optimizer (its key) in the conventions of
    another API. A spec that extends another under a new name (AMSGrad extends Adam) is
    another optimizer, linked only as based on it."""
    def resolved(path):
        return Path(path).resolve() if path else None
    by_path = {resolved(e.rule.path): e for e in entries}
    groups = {}
    for e in entries:
        base = by_path.get(resolved(e.rule.extends))
        e.base_module = base.module if base is not None else None
        groups.setdefault(e.rule.key, []).append(e)
    with_params_class = arguments.chosen(((e.rule.flavor, e.rule.key), e) for e in entries)
    for e in entries:
        e.params_style = with_params_class.get(e.rule.key) is e
    for members in groups.values():
        for e in members:
            e.siblings = [(f"{o.rule.name} ({entry_label(o)})", o.module)
                          for o in members if o is not e]
    return entries


def render_site(entries, folder="docs", command=GENERATE, source="specs/"):
    """{relative path: text} of every page, the indexes and the stylesheet; `command` is the
    one the pages name as their generator, `source` where the index says the specs are."""
    site(entries)
    files = {}
    for e in entries:
        files[f"{folder}/{page_path(e.module, '.md')}"] = render_markdown(e, command)
        files[f"{folder}/html/{page_path(e.module, '.html')}"] = render_html(e, entries, command)
    flavors = []
    for flavor in sorted({e.rule.flavor for e in entries}, key=lambda f: (f != "mxnet2", f)):
        members = sorted((e for e in entries if e.rule.flavor == flavor), key=lambda e: e.rule.key)
        flavors.append({"flavor": flavor, "label": _group_label(flavor, members), "entries": members})
    index = {"flavors": flavors, "count": len(entries), "command": command, "source": source}
    files[f"{folder}/index.md"] = _render("docs/index.md.j2", index)
    files[f"{folder}/html/index.html"] = _render("docs/index.html.j2",
                                                 dict(index, root="", sidebar=sidebar("index", entries)))
    files[f"{folder}/html/style.css"] = environment().loader.get_source(environment(), "docs/style.css")[0]
    return files
