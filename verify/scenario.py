"""What the verifier runs every target on: seeded data, a step schedule, shapes and the
hyperparameter settings that reach a rule's variants.

Every target gets the same numbers: the weights and gradients of a run are drawn once
from a seeded generator, signed, the gradients (std 2) well beyond the clipping bounds of
the schedule. The schedule changes the learning rate every step, keeps weight decay above
0 (where the rule allows it), rescales the gradient by factors other than 1, clips at a
bound, at none and at another bound, and starts from `begin_num_update` = 3, so that
`t` runs 4, 5, 6, 7.
"""
import itertools
import math
from dataclasses import dataclass

import numpy as np

BEGIN_NUM_UPDATE = 3


@dataclass(frozen=True)
class Step:
    lr: float
    wd: float
    rescale_grad: float
    clip_gradient: float | None


SCHEDULE = (Step(0.01, 0.02, 0.5, 0.6), Step(0.02, 0.01, 2.0, None),
            Step(0.005, 0.03, 1.5, 0.8), Step(0.015, 0.02, 0.25, 2.0))

# Element-wise rules: 0-d to 4-D; rows of several lengths for row means
ELEMENTWISE_SHAPES = ((), (7,), (5, 13), (3, 4, 5), (2, 3, 2, 4))
# Matrix rules: tall, wide and square matrices, a batch (seen as matrices by the view), a vector
MATRIX_SHAPES = ((6, 4), (4, 7), (5, 5), (2, 3, 4), (6,))
# Shipped specs also cross the kernels' 65536-element chunks with one tensor; a rule with
# square states (one rows x rows and one cols x cols matrix) with a near-square one, whose
# preconditioners stay small (21847 x 21847 would be 3.8 GB in float64)
LARGE_SHAPE = (3, 21847)
LARGE_SQUARE_SHAPE = (256, 259)
DTYPES = ("float32", "float64")


def shapes_for(spec, large=False):
    shapes = MATRIX_SHAPES if spec.get("matrix") else ELEMENTWISE_SHAPES
    if not large:
        return shapes
    square = any(st["shape"] in ("rows_by_rows", "cols_by_cols") for st in spec.get("states", ()))
    return shapes + ((LARGE_SQUARE_SHAPE if square else LARGE_SHAPE),)


def draw(seed, shapes, dtype, steps):
    """(weights, [gradients per step]): the data of one run, the same for every target."""
    rng = np.random.default_rng(seed)
    weights = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in shapes]
    grads = [[np.asarray(rng.standard_normal(s) * 2.0, dtype=dtype) for s in shapes] for _ in range(steps)]
    return weights, grads


def _inside(range_, value):
    if range_ is None:
        return True
    lo, hi, lo_closed, hi_closed = range_
    above = value >= lo if lo_closed else value > lo
    below = value <= hi if hi_closed else value < hi
    return above and below and math.isfinite(value)


def _candidates(meta):
    """Values of one hyperparameter worth a setting: every bool and choice, None and a number
    for optional ones, and for numbers 0 and values inside the range besides the default."""
    kind, default, range_ = meta["type"], meta["default"], meta.get("range")
    if kind == "bool":
        return [not default]
    if kind == "enum":
        return [c for c in meta["choices"] if c != default]
    values = []
    if meta.get("optional"):
        values.append(None)
    lo, hi = (range_[0], range_[1]) if range_ else (-math.inf, math.inf)
    pool = [0.0, 0.5, 2.0, 1.0, lo + 0.5 if math.isfinite(lo) else -1.0,
            (lo + hi) / 2 if math.isfinite(lo) and math.isfinite(hi) else 3.0]
    if kind == "int":
        pool = [0, 1, 2, 3] + ([int(lo) + 1] if math.isfinite(lo) else [])
    for value in pool:
        value = int(value) if kind == "int" else float(value)
        if value != default and _inside(range_, value) and value not in values:
            values.append(value)
    return values[:3]


def settings(spec, limit=48):
    """Hyperparameter settings to try: the defaults, then each hyperparameter changed alone,
    then combinations of changes (conditions that combine: every combination when there are
    few, else a seeded sample), at most `limit` in all."""
    metas = [m for m in spec["hyperparameters"] if m["default"] is not None or m.get("optional")]
    base = {m["name"]: m["default"] for m in metas}
    options = [[m["default"]] + _candidates(m) for m in metas]
    out = [dict(base)]
    for m, values in zip(metas, options):
        out += [dict(base, **{m["name"]: v}) for v in values[1:]]
    total = math.prod(len(v) for v in options)
    rng = np.random.default_rng(len(metas))
    combos = itertools.product(*options) if total <= 4 * limit else \
        (tuple(values[rng.integers(len(values))] for values in options) for _ in range(4 * limit))
    for combo in combos:
        setting = dict(zip(base, combo))
        if setting not in out:
            out.append(setting)
    return out[:limit]
