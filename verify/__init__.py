"""`optforge check --verify`: the differential verifier and the random-spec generator.

`verify(cls, label)` runs a rule through every target against its NumPy `step`
(verifier.py); `resolve(path)` finds the class of a spec file (a shipped spec's
committed code, else `optforge.load_spec`'s); `random_specs` writes valid specs over
the whole grammar for the verifier to run.
"""
from pathlib import Path

from .verifier import Report, verify

__all__ = ["Report", "resolve", "shipped", "verify"]


def resolve(path, covered=None):
    """(optimizer class, label, `codegen.targets.Coverage`) of a spec file: a spec under the
    installed specs/ folder is its committed generated code (the registered class of its
    flavor and name); any other file goes through optforge.load_spec (not registered).
    `covered`: the spec's coverage when already known (then no sympy runs here)."""
    from ..runtime import registry
    from ..runtime.catalog import load_spec
    path = Path(path)
    if shipped(path):
        rule, covered = coverage_of(path)
        cls = registry.lookup(rule.key, rule.flavor)
    else:
        if covered is None:
            covered = coverage_of(path)[1]
        cls = load_spec(path, register=False)
    return cls, f"{path} ({cls.SPEC['name']}, {cls.SPEC['flavor']})", covered


def shipped(path):
    """Whether a spec file is one of the installed specs/ (whose code is committed)."""
    return Path(path).resolve().is_relative_to(Path(__file__).resolve().parent.parent / "specs")


def coverage_of(path):
    """(Rule, Coverage) of a spec file (runs the generator's front end)."""
    from ..codegen.analysis import analyse
    from ..codegen.loader import load_rule
    from ..codegen.targets import coverage
    rule = load_rule(path)
    return rule, coverage(rule, analyse(rule))
