"""`optforge check --verify`: the differential verifier and the random-spec generator.

`verify(cls, label)` runs a rule through every target against its NumPy `step`
(verifier.py); `resolve(path)` finds the class of a spec file (a shipped spec's
committed code, else `optforge.load_spec`'s); `random_specs` writes valid specs over
the whole grammar for the verifier to run.
"""
from pathlib import Path

from .verifier import Report, verify

__all__ = ["Report", "resolve", "verify"]


def resolve(path):
    """(optimizer class, label) of a spec file: a spec under the installed specs/ folder is
    its committed generated code (the registered class of its flavor and name); any other
    file goes through optforge.load_spec (not registered)."""
    from ..codegen.loader import load_rule
    from ..runtime import registry
    from ..runtime.spec_loading import load_spec
    path = Path(path)
    rule = load_rule(path)
    shipped = Path(__file__).resolve().parent.parent / "specs"
    try:
        path.resolve().relative_to(shipped)
        cls = registry.lookup(rule.key, rule.flavor)
    except (ValueError, KeyError):
        cls = load_spec(path, register=False)
    return cls, f"{path} ({rule.name}, {rule.flavor})"
