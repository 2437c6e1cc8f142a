"""Writing specs: `optforge new` (a commented, working spec to start from) and
`optforge check` (every mistake of a spec, with file:line:col)."""
import keyword
import re
from pathlib import Path

from .analysis import analyse
from .emitters.templates import environment
from .errors import SpecError, SpecErrors
from .render import render_spec
from .loader import load_rule
from .targets import coverage

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def new_spec(name, folder=".", force=False):
    """Write FOLDER/<name lower>.toml from the commented template; returns its path."""
    if not _IDENT.match(name) or keyword.iskeyword(name):
        raise ValueError(f"'{name}' is not a Python identifier: it names the optimizer class")
    if name.startswith("_"):
        raise ValueError(f"'{name}' starts with '_': such optimizer names are reserved")
    path = Path(folder) / f"{name.lower()}.toml"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (use --force to overwrite it)")
    text = environment().get_template("spec.toml.j2").render(name=name, key=name.lower(), file=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def check_spec(path):
    """(rule summary, []) for a good spec, (None, [SpecError, ...]) sorted by position."""
    try:
        rule = load_rule(path)
        analysis = analyse(rule)
        render_spec(rule, analysis, Path(path).name, Path(path).stem)   # what generate and load_spec run
    except SpecErrors as err:
        return None, sorted(err.errors, key=_position)
    except SpecError as err:
        return None, [err]
    count = len({hp.list or hp.name for hp in rule.hyperparameters})    # a list counts once
    summary = (f"{rule.name} ({rule.flavor}): {count} hyperparameters, "
               f"{len(rule.states)} states, {len(analysis.variants)} variants")
    if analysis.group is not None and analysis.group.reductions:     # (codegen/group_stage.py)
        reductions = len(analysis.group.reductions)
        summary += (f", {reductions} group reduction{'s' if reductions > 1 else ''} "
                    f"(a partials stage of {len(analysis.group.variants)} variants before the update)")
    return summary + "\n" + targets_line(path, coverage(rule, analysis)), []


def targets_line(path, covered):
    """`path: targets: ...`, positioned at the statement that keeps a target from kernels."""
    gap = covered.gap
    where = f"{gap.path}:{gap.line}:{gap.col}" if gap is not None and gap.line else str(path)
    return f"{where}: targets: {covered.describe()}"


def _position(err):
    return (err.path, err.line or 0, err.col or 0)
