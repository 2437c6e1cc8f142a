"""Python literals for generated code: deterministic, one item per line, floats exact."""
import math


def py_literal(value, indent=0, width=96):
    """`value` (dict, list, tuple, str, number, bool, None) as Python source."""
    flat = _flat(value)
    if len(flat) + indent <= width or not isinstance(value, (dict, list, tuple)) or not value:
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = [f"{pad}{_flat(k)}: {py_literal(v, indent + 4, width)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    items = [f"{pad}{py_literal(v, indent + 4, width)}," for v in value]
    return open_ + "\n" + "\n".join(items) + "\n" + " " * indent + close


def _flat(value):
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "math.inf" if value > 0 else "-math.inf"
        if math.isnan(value):
            return "math.nan"
        return repr(value)
    if isinstance(value, (int, str)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flat(k)}: {_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_flat(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    raise TypeError(f"no literal for {type(value).__name__}")
