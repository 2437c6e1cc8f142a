"""Whole-tensor norms of FSDP2-sharded parameters, from the local shards (and the group
values of rules with group reductions: `all_reduced_group`).

Rules with norms (LAMB, LARS, LANS, NovoGrad, C-AdamW) read sums over whole tensors: the
generated NumPy kernels compute each norm as `sqrt(sum(square(x)))`, with `numpy.sum`
over the whole array in float32 or wider (and `sum(x)`, `dot(a, b)` as `numpy.sum` in
float64). On a sharded parameter the kernel runs on this
rank's shard as it would on the whole tensor, with the weight, gradient and states viewed
as `ShardArray`: every array the kernel derives from them is one too, and a `numpy.sum`
over a whole `ShardArray` returns the sum of the partial sums of every rank (all-reduced
in float64 over the process groups of the mesh dimensions the parameter is sharded on,
then rounded once to the kernel's accumulation type). The element-wise passes then use
the same norms on every rank, so each rank updates its shard as the unsharded step
updates those elements. Nothing is gathered: the step costs one all-reduce of one number
per norm.

The sums of a sharded run add the same squares in another order than one process does:
results agree to the accumulation type's rounding (float64: about 1e-16 relative per
norm; float32: about 1e-7).
"""
import math

import numpy
import torch


class ShardArray(numpy.ndarray):
    """A NumPy view of a local shard whose whole-array `numpy.sum` is summed over `groups`."""

    groups = ()

    @classmethod
    def of(cls, array, groups):
        view = array.view(cls)
        view.groups = groups
        return view

    def __array_finalize__(self, obj):
        self.groups = getattr(obj, "groups", ())

    def __array_function__(self, func, types, args, kwargs):
        result = super().__array_function__(func, types, args, kwargs)
        if func is numpy.sum and len(args) == 1 and kwargs.get("axis") is None and self.groups:
            return all_reduced(result, self.groups)
        return result


def all_reduced(partial, groups):
    """The sum over every rank of `groups` of this rank's `partial` (a 0-d sum), summed in
    float64 and returned as a NumPy scalar of the partial's dtype."""
    total = torch.tensor(float(partial), dtype=torch.float64)
    for group in groups:
        torch.distributed.all_reduce(total, group=group)
    return numpy.asarray(partial).dtype.type(total.item())


def all_reduced_group(values, ops, groups):
    """A param group's group values ({`_group<k>`: float} of this rank's shards) over every
    rank of `groups`: sums added (in float64), maxima and minima compared (NaN: a NaN
    anywhere makes the value NaN, as one process gives), one all-reduce per kind."""
    out = dict(values)
    for op, reduce_op in (("sum", torch.distributed.ReduceOp.SUM), ("max", torch.distributed.ReduceOp.MAX),
                          ("min", torch.distributed.ReduceOp.MIN)):
        names = [name for name in values if ops[name] == op]
        if not names:
            continue
        total = torch.tensor([values[name] for name in names], dtype=torch.float64)
        nan = torch.isnan(total).to(torch.float64)
        for group in groups:
            torch.distributed.all_reduce(total, op=reduce_op, group=group)
            if op != "sum":     # MAX and MIN of gloo and NCCL need not propagate NaN: count them
                torch.distributed.all_reduce(nan, op=torch.distributed.ReduceOp.SUM, group=group)
        for k, name in enumerate(names):
            out[name] = math.nan if op != "sum" and nan[k] > 0 else float(total[k])
    return out


def shard_groups(dtensor):
    """The process groups of the mesh dimensions `dtensor` is sharded on."""
    mesh = dtensor.device_mesh
    return tuple(mesh.get_group(dim) for dim, placement in enumerate(dtensor.placements)
                 if placement.is_shard())


def reduces_norms(module):
    """Whether a rule's whole-tensor reads are all sums over whole arrays (norms, `sum`, `dot`:
    sums the kernel takes with `numpy.sum` and no axis): no maxima or minima (`numpy.max` is
    not all-reduced here), no row or column reductions, no noise, no matrix products. Judged
    from the generated kernels' pass layout (`generated/cuda`)."""
    from ..runtime.backends import launch_table
    try:
        meta = launch_table.metadata(module)
    except ImportError:     # no generated kernels with a pass layout (matrix rules)
        return False
    return all(not variant["noise"] and not variant["rows"]
               and all(not part["by_rows"] and set(part["kinds"]) <= {"norm", "sum"} for part in variant["passes"])
               for variant in meta.VARIANTS.values())


def wrap(array, shape, groups):
    """`array` as a ShardArray when it is shaped like the local shard (weight, gradient and
    element-wise states); per-tensor scalar states stay as they are."""
    if isinstance(array, numpy.ndarray) and array.ndim and array.shape == shape:
        return ShardArray.of(array, groups)
    return array
