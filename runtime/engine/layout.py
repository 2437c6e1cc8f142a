"""A rule's states: which exist, their shapes and dtypes, and the checks of given states.

`StateMeta` is one state of the spec with what every part of the runtime asks of it: a
host scalar (a 0-d float64 array the host code updates: NAdam's mu_product), a device
scalar (a 0-d array kept with the weight, computed from norms: NovoGrad's per-layer
moment), a row or column state, or a tensor shaped like the weight.
"""
import inspect
import itertools
import math
import operator
from typing import NamedTuple

import numpy

from ..backends import array_module


class PreconditionError(ValueError):
    """A step breaks the rule's `requires` condition."""


class StepError(ValueError):
    """A step's host scalars cannot be computed (the message names the rule and the cause)."""


class StateMeta(NamedTuple):
    name: str
    shape: str          # "weight", "rows", "cols", "scalar", "rows_by_rows" or "cols_by_cols"
    dtype: str          # "weight" (the weight's dtype) or "float32" (at least float32)
    init: object        # "zeros", "weight", a hyperparameter's name, or a number (scalars)
    host_scalar: bool   # a 0-d float64 array updated by the host code
    device_scalar: bool  # a 0-d array with the weight, computed from reductions
    meta: dict          # the generated SPEC entry

    @classmethod
    def of(cls, meta):
        scalar = meta["shape"] == "scalar"
        return cls(meta["name"], meta["shape"], meta["dtype"], meta["init"], scalar and not meta.get("device"),
                   scalar and bool(meta.get("device")), meta)


def state_dtype(meta, weight_dtype):
    """A state's dtype for a weight's: "float32" states (and device scalars) are at least
    float32 (float64 weights keep float64 states), the others the weight's."""
    if meta["dtype"] == "float32" or meta.get("device"):
        return numpy.promote_types(weight_dtype, numpy.float32) \
            if str(weight_dtype) != "bfloat16" else numpy.dtype(numpy.float32)
    return weight_dtype


# Shape inputs of a 2-D parameter: what states_present sees without a parameter
MATRIX_INPUTS = {"ndim": 2, "numel": 1, "rows": 1, "cols": 1,
                 "machine_epsilon": float(numpy.finfo(numpy.float32).eps)}
SHAPE_INPUTS = tuple(MATRIX_INPUTS)
_READS_SHAPE = {}
_READS_INPUT = {}


def reads_shape(module):
    """Whether a rule reads its parameter's shape inputs (SHAPE_INPUTS) anywhere: a state's
    `when`, a condition, `requires`, `skip_if` or a host value. If not, every parameter of an
    update has the same states, and the same host scalars for the same (lr, wd, t)."""
    known = _READS_SHAPE.get(module.__name__)
    if known is None:
        known = _READS_SHAPE[module.__name__] = module.SPEC.get("matrix") is not None \
            or reads_input(module, SHAPE_INPUTS)
    return known


def reads_input(module, names):
    """Whether any of the rule's host functions (a state's `when`, its conditions,
    `requires`, `skip_if`, a host value) reads one of these built-in inputs."""
    key = (module.__name__, tuple(names))
    known = _READS_INPUT.get(key)
    if known is None:
        functions = [module.states_present, module.conditions] \
            + [getattr(module, name) for name in ("requires", "skip") if hasattr(module, name)] \
            + [variant["host"] for variant in module.VARIANTS.values()]
        known = _READS_INPUT[key] = any(name in inspect.signature(function).parameters
                                        for function in functions for name in names)
    return known


def shape_inputs(spec, weight):
    """The built-in inputs that depend on the parameter's shape and dtype: ndim, numel, and
    rows and cols of its matrix view (spec's `matrix`: "last_two" sees the last two axes,
    anything else the first axis against the rest; a vector is a column, a scalar 1 x 1)."""
    shape = tuple(int(n) for n in weight.shape)
    numel = math.prod(shape)
    if spec.get("matrix") == "last_two" and len(shape) >= 2:
        rows, cols = shape[-2], shape[-1]
    elif shape:
        rows, cols = shape[0], math.prod(shape[1:])
    else:
        rows, cols = 1, 1
    try:
        eps = float(numpy.finfo(weight.dtype).eps)
    except (TypeError, ValueError):   # ml_dtypes' bfloat16
        import ml_dtypes
        eps = float(ml_dtypes.finfo(weight.dtype).eps)
    return {"ndim": len(shape), "numel": numel, "rows": rows, "cols": cols, "machine_epsilon": eps}


SQUARE = ("rows_by_rows", "cols_by_cols")


def matrix_view(spec, weight):
    """The weight's matrix view as a shape, as the generated kernels reshape it (VIEWS of
    codegen/emitters/numpy_module.py): (rows, cols), or (..., rows, cols) for "last_two"."""
    shape = tuple(int(n) for n in weight.shape)
    if spec.get("matrix") == "last_two":
        return shape if len(shape) >= 2 else (math.prod(shape), 1)
    return (shape[0], math.prod(shape[1:])) if shape else (1, 1)


def state_shape(meta, weight, index, spec=None):
    """The shape a state of this metadata has for this weight: the weight's, () for scalars,
    one value per row or column of the matrix view: (rows, 1, ...) and (1, ...) with the
    other axes, or for `matrix = "last_two"` (..., rows, 1) and (..., 1, cols), or one square
    matrix per matrix of the view: (..., rows, rows) and (..., cols, cols). Row and column
    states need an axis: a 0-d weight is refused."""
    if meta["shape"] == "scalar":
        return ()
    if meta["shape"] in SQUARE:
        *batch, rows, cols = matrix_view(spec or {}, weight)
        n = rows if meta["shape"] == "rows_by_rows" else cols
        return (*batch, n, n)
    if meta["shape"] not in ("rows", "cols"):
        return tuple(weight.shape)
    if weight.ndim == 0:
        raise ValueError(f"weight of parameter {index!r} is 0-d, but state '{meta['name']}' keeps one "
                         f"value per {meta['shape'][:-1]}: give the weight at least one dimension")
    shape = tuple(weight.shape)
    if (spec or {}).get("matrix") == "last_two" and len(shape) >= 2:
        return shape[:-1] + (1,) if meta["shape"] == "rows" else shape[:-2] + (1, shape[-1])
    if meta["shape"] == "rows":
        return (shape[0],) + (1,) * (len(shape) - 1)
    return (1,) + shape[1:]


def state_parts(state, count):
    """The state's arrays as a tuple, or None if the layout is wrong."""
    if count == 0:
        return () if state is None else None
    if count == 1:
        return (state,) if state is not None and not isinstance(state, (tuple, list)) else None
    if isinstance(state, (tuple, list)) and len(state) == count and all(s is not None for s in state):
        return tuple(state)
    return None


_DTYPE = operator.attrgetter("dtype")
_SHAPE = operator.attrgetter("shape")
_WRITEABLE = operator.attrgetter("flags.writeable")


def states_fit(weights, states, layout):
    """Whether `Engine.check`'s state checks hold for every parameter, tested as maps over
    the whole update (loops in C) when every weight is a NumPy array of one dtype and every
    state weight-shaped or a host scalar; False means "not shown": the caller then checks
    one parameter at a time, which names what is wrong. `layout`: [StateMeta]."""
    ndarray = numpy.ndarray
    if not weights or not all(map(operator.is_, map(type, weights), itertools.repeat(ndarray))):
        return False
    dtype = weights[0].dtype
    if not all(map(operator.eq, map(_DTYPE, weights), itertools.repeat(dtype))):
        return False
    parts = [state_parts(state, len(layout)) for state in states]
    if None in parts:
        return False
    shapes = None
    for j, meta in enumerate(layout):
        column = [own[j] for own in parts]
        if not (all(map(operator.is_, map(type, column), itertools.repeat(ndarray)))
                and all(map(_WRITEABLE, column))):
            return False
        if meta.host_scalar:
            if not all(map(operator.eq, map(_SHAPE, column), itertools.repeat(()))):
                return False
            continue
        if meta.shape != "weight":
            return False
        shapes = list(map(_SHAPE, weights)) if shapes is None else shapes
        expected = numpy.dtype(state_dtype(meta.meta, dtype))
        if list(map(_SHAPE, column)) != shapes \
                or not all(map(operator.eq, map(_DTYPE, column), itertools.repeat(expected))):
            return False
    return True


def master_state(index, weight, state):
    """(float32 master copy, inner state) of a multi-precision state; ValueError otherwise."""
    master = state[0] if isinstance(state, tuple) and len(state) == 2 else None
    if master is None or str(master.dtype) != "float32" or master.shape != weight.shape:
        raise ValueError(f"state of parameter {index!r} is not a multi-precision state "
                         "(weight32, inner): create it with create_state_multi_precision")
    return master, state[1]


def low_precision(weight):
    return str(weight.dtype) in ("float16", "bfloat16")


def round_into(weights, masters, low):
    """Round each updated master copy into its float16/bfloat16 weight."""
    for weight, master, is_low in zip(weights, masters, low):
        if is_low:
            array_module(weight).copyto(weight, master, casting="same_kind")
