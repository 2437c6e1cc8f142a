"""The spec's data that the runtime needs, as plain Python literals.

Generated modules carry it as `SPEC`, so the runtime builds optimizer classes
(signature, validation, docstring, state layout) without sympy or the TOML file.
"""
from .formulas import latex_lines, symbol_legend


def spec_metadata(rule, spec_path):
    out = _metadata(rule, spec_path)
    if rule.matrix:   # only matrix rules carry the key: element-wise specs' metadata is unchanged
        out["matrix"] = rule.matrix
    if rule.modes:    # likewise only rules with [modes]: mode -> its formula text
        out["modes"] = {mode: text for mode, (_, text) in rule.modes.items()}
    return out


def _metadata(rule, spec_path):
    return {
        "name": rule.name,
        "key": rule.key,
        "flavor": rule.flavor,
        "summary": rule.summary,
        "references": list(rule.references),
        "notes": list(rule.notes),
        "deviations": list(rule.deviations),
        "spec": spec_path,
        "learning_rate": rule.learning_rate,
        "options": dict(rule.options),
        "hyperparameters": [_hyperparameter(hp) for hp in rule.hyperparameters],
        "states": [_state(st) for st in rule.states],
        "update": rule.update_text.strip("\n"),
        "formulas": latex_lines(rule),      # LaTeX printed from the parsed rule, for docstrings
        "symbols": symbol_legend(rule),     # [latex, name] where the formulas rename
        "skip_if": rule.skip_if_text,
        "requires": rule.requires_text,
        "name_flags": {flag: list(suffixes) for flag, suffixes in rule.name_flags.items()},
        "decay_suffixes": list(rule.decay_suffixes) if rule.decay_suffixes is not None else None,
        "lr_before_count": rule.lr_before_count,
        "sparse_update": rule.sparse_update,
    }


def _hyperparameter(hp):
    out = {"name": hp.name, "type": hp.type, "default": hp.default, "optional": hp.optional}
    if hp.range is not None:
        r = hp.range
        out["range"] = [r.lo, r.hi, r.lo_closed, r.hi_closed]
        out["range_text"] = str(r)
    if hp.choices:
        out["choices"] = list(hp.choices)
    out["doc"] = hp.doc
    if hp.keyword:
        out["keyword"] = hp.keyword
    if hp.list:
        out["list"] = hp.list
    return out


def _state(st):
    out = {"name": st.name, "init": st.init, "dtype": st.dtype, "shape": st.shape,
           "when": st.when_text, "doc": st.doc}
    if st.device:
        out["device"] = True
    if st.quantize:
        out["quantize"] = st.quantize
    return out
