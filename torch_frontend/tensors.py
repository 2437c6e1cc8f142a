"""Torch tensors as the engine's arrays, without copies.

CPU tensors become NumPy arrays over the same memory (bfloat16 through its bits and
`ml_dtypes.bfloat16`, see runtime/array_views.py), CUDA tensors CuPy arrays through DLPack;
a sparse COO gradient becomes a `RowSparse` of its coalesced rows. The engine's kernels
write through these views, so autograd does not see the writes: `bump_versions` tells it.
"""
import contextlib
import math

import numpy

import torch

from ..runtime import array_views
from ..runtime.sparse import RowSparse


_ALIGN = 64     # bytes: torch's CPU allocator's alignment
_PLAIN = (torch.Tensor, torch.nn.Parameter)    # exact types: never a DTensor or another subclass


def view(tensor):
    """A NumPy (CPU) or CuPy (CUDA) array sharing the tensor's memory (a DTensor's: its
    local shard's); a complex tensor as its `view_as_real` (a trailing dimension of 2: the
    element-wise rules then step real and imaginary parts as torch's optimizers do)."""
    if tensor.is_complex() and not tensor.is_sparse:
        tensor = torch.view_as_real(tensor.detach())
    if tensor.is_meta:
        return shape_only(tensor)
    if type(tensor) in _PLAIN and tensor.is_cpu and not tensor.requires_grad \
            and tensor.dtype is not torch.bfloat16 and tensor.layout is torch.strided:
        return tensor.numpy()   # what arrays.view gives here, without its dispatch
    return array_views.view(local(tensor))


def shape_only(tensor):
    """A meta tensor as a NumPy array of its shape and dtype over one element (every stride
    0): what the engine reads of it (shape, dtype) without its size in memory. Meta
    parameters step on the torch-native path (torch_native.py), which writes nothing."""
    element = array_views.view(torch.zeros(1, dtype=tensor.dtype))
    return numpy.lib.stride_tricks.as_strided(element, tuple(tensor.shape), (0,) * tensor.dim())


class ViewCache:
    """An optimizer's NumPy views of its CPU parameters and states, and the update counts of
    its `step` tensors, kept from one step to the next.

    A view is reused only while its tensor designates the same memory the same way: each
    use compares the tensor's data pointer, shape, strides and dtype with those it had
    (`param.data = ...` or a loaded state gets a new view; the old view keeps its memory
    alive, so an equal pointer is the same memory). A count is reused only while its step
    tensor has the version counter and data pointer it had after the optimizer wrote it
    (any write or `.data` swap reads the tensor again). Entries hold their tensors, so an
    id is not reused while cached."""

    def __init__(self):
        self._views = {}
        self._counts = {}

    def view(self, tensor):
        entry = self._views.get(id(tensor))
        if entry is not None and entry[0] is tensor and tensor.data_ptr() == entry[1] \
                and tensor.shape == entry[2] and tensor.stride() == entry[3] and tensor.dtype is entry[4]:
            return entry[5]
        array = view(tensor)
        if type(tensor) in _PLAIN and tensor.is_cpu:
            self._views[id(tensor)] = (tensor, tensor.data_ptr(), tensor.shape, tensor.stride(),
                                       tensor.dtype, array)
        return array

    def count(self, state, read):
        """The update count of a state: `read(state)`, or the count recorded by `counted`."""
        step = state.get("step") if state else None
        entry = self._counts.get(id(step)) if step is not None else None
        if entry is not None and entry[0] is step and step._version == entry[1] \
                and step.data_ptr() == entry[2]:
            return entry[3]
        return read(state or {})

    def counted(self, steps, counts):
        """Record the counts just written into these step tensors."""
        for step, count in zip(steps, counts):
            if type(step) in _PLAIN:
                self._counts[id(step)] = (step, step._version, step.data_ptr(), count)

    def trim(self, parameters):
        """Forget everything when the cache outgrows what `parameters` parameters use (tensors
        replaced since, e.g. by `param.data = ...`, would otherwise stay alive)."""
        if len(self._views) > 8 * parameters + 64 or len(self._counts) > 2 * parameters + 64:
            self.clear()

    def clear(self):
        self._views.clear()
        self._counts.clear()


_DTENSOR = []   # [DTensor class or None], looked up once


def _dtensor_class():
    if not _DTENSOR:
        if torch.distributed.is_available():
            from torch.distributed.tensor import DTensor
            _DTENSOR.append(DTensor)
        else:
            _DTENSOR.append(None)
    return _DTENSOR[0]


def is_distributed(tensor):
    """Whether `tensor` is a DTensor (FSDP2's sharded parameters, their gradients and states)."""
    cls = _dtensor_class()
    return cls is not None and isinstance(tensor, cls)


def is_sharded(tensor):
    """Whether a DTensor holds only part of its values on this rank."""
    return is_distributed(tensor) and not all(p.is_replicate() for p in tensor.placements)


def local(tensor):
    """This rank's part of a DTensor (same memory); any other tensor as it is."""
    return tensor.to_local() if is_distributed(tensor) else tensor


def like_param(array, param):
    """A state array from the engine as a tensor shaped like `param`: a DTensor with the
    parameter's mesh and placements when the parameter is one (as torch.optim's states of
    FSDP2 parameters are), else a tensor over the array's memory."""
    tensor = array_views.like(array, local(param))
    if tensor.is_cpu and tensor.dim() and tensor.data_ptr() % _ALIGN:
        # NumPy aligns small arrays to 16 bytes, torch's allocator to 64: a state in torch's
        # memory is aligned as its parameter, so no vector load of a kernel splits a cache line
        tensor = tensor.clone()
    if param.is_complex() and tensor.dim() and tensor.shape[-1] == 2 and tensor.shape[:-1] == local(param).shape:
        # made from the parameter's view_as_real: kept complex, as torch keeps it
        tensor = torch.view_as_complex(tensor if tensor.stride(-1) == 1 else tensor.contiguous())
    if not is_distributed(param) or tensor.dim() == 0:
        return tensor
    return _dtensor_class().from_local(tensor, device_mesh=param.device_mesh, placements=param.placements,
                                       run_check=False, shape=param.shape, stride=param.stride())


def gradient(param, grad, by_element=False):
    """The gradient as the engine takes it: an array view, or a RowSparse for a sparse
    COO gradient (nn.Embedding(sparse=True): sparse in its rows). A gradient sparse in more
    dimensions (`to_sparse()`) becomes, with `by_element`, a RowSparse of the parameter seen
    with those dimensions flattened into one (its shape tells: the caller views the weight
    and states so), so a lazy element-wise rule changes exactly the listed elements, as
    torch's SparseAdam and Adagrad do; otherwise the RowSparse of every row it touches.
    Mismatches raise before anything changes."""
    if grad.dtype != param.dtype:
        raise ValueError(f"gradient has dtype {grad.dtype}, its parameter {param.dtype}")
    if tuple(grad.shape) != tuple(param.shape):
        raise ValueError(f"gradient has shape {tuple(grad.shape)}, its parameter {tuple(param.shape)}")
    if grad.device != param.device:
        raise ValueError(f"gradient is on {grad.device}, its parameter on {param.device}")
    if grad.layout == torch.sparse_coo:
        grad = grad.coalesce()    # sorted, repeated entries summed
        sparse, shape = grad.sparse_dim(), tuple(grad.shape)
        if sparse == 1:
            return RowSparse(view(grad.indices()[0]), view(grad.values()), shape)
        indices, values = grad.indices(), grad.values()
        if by_element:      # one row per element of the sparse dimensions, in row-major order
            flat = (math.prod(shape[:sparse]),) + shape[sparse:]
            strides = torch.tensor([math.prod(shape[k + 1:sparse]) for k in range(sparse)], dtype=torch.int64)
            rows = (indices * strides[:, None]).sum(0)
            return RowSparse(view(rows), view(values.contiguous()), flat)
        rows, inverse = torch.unique(indices[0], return_inverse=True)   # every row touched, whole
        dense = torch.zeros((len(rows),) + shape[1:], dtype=grad.dtype, device=grad.device)
        dense.index_put_((inverse, *indices[1:]), values, accumulate=True)
        return RowSparse(view(rows), view(dense), shape)
    if grad.layout != torch.strided:
        raise TypeError(f"gradients with layout {grad.layout} are not supported")
    return view(grad)   # made anew every step: backward usually gives a new gradient tensor


def keep_shard(full, dtensor):
    """Copy this rank's shard of `full` (the whole tensor, the same on every rank) into the
    local part of `dtensor`."""
    from torch.distributed.tensor import Replicate
    mesh = dtensor.device_mesh
    replicated = _dtensor_class().from_local(full, device_mesh=mesh, placements=[Replicate()] * mesh.ndim,
                                             run_check=False)
    local(dtensor).copy_(replicated.redistribute(mesh, dtensor.placements).to_local())


def on_current_stream(device):
    """Run CuPy launches on torch's current stream of `device` (a no-op on the CPU), so the
    kernels are ordered with the tensors' other work without a synchronisation."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    import cupy
    index = device.index if device.index is not None else torch.cuda.current_device()
    return cupy.cuda.ExternalStream(torch.cuda.current_stream(index).cuda_stream, index)


def bump_versions(tensors):
    """Record in-place writes made through views, as torch's own in-place ops do: a tensor
    saved for backward and updated before the backward pass then raises, as with torch."""
    if tensors:
        torch.autograd.graph.increment_version([t if type(t) in _PLAIN else local(t) for t in tensors])


def step_count(state):
    """Updates so far. torch.optim.SGD keeps no step: a loaded state without one counts as
    one update (enough for rules that test t == 1, the only use such rules make of t)."""
    if "step" in state:
        return int(round(float(state["step"])))
    return 1 if state else 0
