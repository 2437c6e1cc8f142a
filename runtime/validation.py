"""Checks of hyperparameter values and of the arrays handed to `update`.

Every check runs before anything is modified, and every message says which rule
was broken.
"""
import itertools
import math
import numbers
import operator

import numpy

from .backends import array_module

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
# the NumPy dtypes of FLOAT_DTYPES that need no import (a fast membership test; bfloat16 and
# anything else fall through to the comparison by name)
_FLOAT_DTYPES = frozenset(numpy.dtype(name) for name in ("float16", "float32", "float64"))


def _range_text(spec):
    return spec.get("range_text", "")


def _in_range(value, spec):
    r = spec.get("range")
    if r is None:
        return True
    lo, hi, lo_closed, hi_closed = r
    above = value >= lo if lo_closed else value > lo
    below = value <= hi if hi_closed else value < hi
    return above and below


def hyperparameter(spec, value):
    """Validate one value against its metadata (from a generated module's SPEC);
    returns it normalised (Python float/int/bool/str) or raises ValueError."""
    name, kind = spec["name"], spec["type"]
    if spec.get("list"):     # an element of a list hyperparameter, named as the user writes it
        name = f"{spec['list']}[{name.rsplit('_', 1)[1]}]"
    if value is None:
        if spec.get("optional"):
            return None
        raise ValueError(f"{name} must not be None")
    if kind == "bool":
        if isinstance(value, (bool, numpy.bool_)):
            return bool(value)
        raise ValueError(f"{name} must be True or False, got {value!r}")
    if kind == "enum":
        if isinstance(value, str) and value in spec["choices"]:
            return value
        choices = ", ".join(repr(c) for c in spec["choices"])
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number{_where(spec)}, got {value!r}")
    if kind == "int":
        if not float(value).is_integer():
            raise ValueError(f"{name} must be an integer{_where(spec)}, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"{name} must be a number{_where(spec)}, got nan")
        if math.isinf(value) and not spec.get("range"):   # only a range closed at inf admits it
            raise ValueError(f"{name} must be finite, got {value!r}")
    if not _in_range(value, spec):
        raise ValueError(f"{name} must be in {_range_text(spec)}, got {value!r}")
    return value


def _where(spec):
    return f" in {_range_text(spec)}" if spec.get("range") else ""


def number(name, value, *, minimum=None, allow_none=False, finite=True, integer=False, rule=None):
    """A base-class number such as wd or learning_rate."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number{' or None' if allow_none else ''}, got {value!r}")
    if integer:
        if not float(value).is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if finite and not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and not value >= minimum:
        raise ValueError(rule or f"{name} must be >= {minimum}, got {value!r}")
    return value


def dtype_name(array):
    return str(array.dtype)


def check_pair(index, weight, grad):
    """Weight and gradient of one parameter: same array type, shape and dtype (the gradient
    may be a RowSparse of the weight's shape)."""
    if type(weight) is numpy.ndarray and type(grad) is numpy.ndarray:
        xp = numpy      # the common case, once per parameter per step: no array-module dispatch
    else:
        from .sparse import RowSparse
        xp = weight_array(index, weight)
        try:
            gxp = array_module(grad.values if isinstance(grad, RowSparse) else grad)
        except TypeError as err:
            raise TypeError(f"gradient of parameter {index!r}: {err}") from None
        if gxp is not xp:
            raise TypeError(f"parameter {index!r}: weight is a {xp.__name__} array but its gradient is a "
                            f"{gxp.__name__} array; keep a parameter's arrays on one backend")
    weight_dtype(index, weight)
    if grad.shape != weight.shape:
        raise ValueError(f"gradient of parameter {index!r} has shape {tuple(grad.shape)}, "
                         f"its weight has shape {tuple(weight.shape)}")
    if grad.dtype != weight.dtype:
        raise ValueError(f"gradient of parameter {index!r} has dtype {grad.dtype}, "
                         f"its weight has dtype {weight.dtype}")
    if xp is numpy and not weight.flags.writeable:
        raise ValueError(f"weight of parameter {index!r} is read-only")
    if xp is not numpy:     # (RowSparse was imported above)
        values = grad.values if isinstance(grad, RowSparse) else grad
        if weight.device != values.device:
            raise ValueError(f"parameter {index!r}: weight is on {weight.device}, its gradient on {values.device}")
    return xp


_DTYPE = operator.attrgetter("dtype")
_SHAPE = operator.attrgetter("shape")
_WRITEABLE = operator.attrgetter("flags.writeable")


def pairs_fit(indices, weights, grads):
    """Whether `check_pair` holds for every parameter and no index repeats, tested as maps
    over the whole update (loops in C) for NumPy arrays; False means "not shown": the
    caller then checks one parameter at a time, which names what is wrong."""
    ndarray = numpy.ndarray
    return (len(set(indices)) == len(indices)
            and all(map(operator.is_, map(type, weights), itertools.repeat(ndarray)))
            and all(map(operator.is_, map(type, grads), itertools.repeat(ndarray)))
            and all(map(_FLOAT_DTYPES.__contains__, map(_DTYPE, weights)))
            and list(map(_DTYPE, grads)) == list(map(_DTYPE, weights))
            and list(map(_SHAPE, grads)) == list(map(_SHAPE, weights))
            and all(map(_WRITEABLE, weights)))


def flag(name, value, allow_none=False):
    """A base-class switch such as multi_precision: True or False (a string such as "no"
    is truthy, so only real booleans are accepted)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, numpy.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False{' or None' if allow_none else ''}, got {value!r}")


def scheduler(value):
    """lr_scheduler: None or a callable `lr_scheduler(num_update) -> lr`."""
    if value is not None and not callable(value):
        raise TypeError(f"lr_scheduler must be None or callable as lr_scheduler(num_update) -> lr "
                        f"(see optforge.lr_scheduler), got {value!r}")
    return value


def key(name, value):
    """A parameter index or name used as a dictionary key: an int or a str."""
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, (numbers.Integral, str)):
        raise TypeError(f"{name} keys must be parameter indices (int) or names (str), got {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else value


def multipliers(name, mapping):
    """lr_mult / wd_mult: {index or name: finite number >= 0}, normalised to floats."""
    if not isinstance(mapping, dict):
        raise TypeError(f"{name} must be a dict of parameter index or name -> multiplier, "
                        f"got {type(mapping).__name__}")
    return {key(name, k): number(f"{name} of parameter {k!r}", v, minimum=0.0)
            for k, v in mapping.items()}


def weight_array(index, weight):
    """The array module of a weight; TypeError names the parameter if it is no array."""
    try:
        return array_module(weight)
    except TypeError as err:
        raise TypeError(f"weight of parameter {index!r}: {err}") from None


def float_weight(index, weight):
    """`weight_array` for a weight of a supported float dtype (ValueError names the dtype)."""
    xp = weight_array(index, weight)
    weight_dtype(index, weight)
    return xp


def weight_dtype(index, weight):
    """ValueError unless the weight's dtype is one of FLOAT_DTYPES (not an integer, bool,
    complex or object array: states made for one would be of its dtype too)."""
    if weight.dtype not in _FLOAT_DTYPES and dtype_name(weight) not in FLOAT_DTYPES:
        raise ValueError(f"weight of parameter {index!r} has dtype {weight.dtype}; "
                         f"supported: {', '.join(FLOAT_DTYPES)}")


def state_array_writable(index, name, part):
    """State arrays are updated in place: a read-only one would fail halfway through a step."""
    if isinstance(part, numpy.ndarray) and not part.flags.writeable:
        raise ValueError(f"state '{name}' of parameter {index!r} is read-only; "
                         "states are updated in place")


def entries(what, value, required, optional=()):
    """A dict read from a saved file: exactly the required keys (and maybe the optional
    ones); ValueError names what is missing or unknown."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(map(repr, missing))}")
    unknown = sorted(str(k) for k in value if k not in required and k not in optional)
    if unknown:
        raise ValueError(f"{what} has unknown entries {', '.join(map(repr, unknown))}")
    return value


def count(name, value):
    """An update count read from a saved file: an int >= 0 (not a string, not a float)."""
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def check_pairs(indices, weights, grads):
    """Each weight/gradient pair fits (type, shape, dtype) and no index appears twice."""
    if pairs_fit(indices, weights, grads):
        return      # every check below holds (tested over the whole update at once)
    seen = set()
    for index, weight, grad in zip(indices, weights, grads):
        check_pair(index, weight, grad)
        if index in seen:
            raise ValueError(f"parameter index {index!r} appears twice in one update")
        seen.add(index)
