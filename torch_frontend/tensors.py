"""Torch tensors as the engine's arrays, without copies.

CPU tensors become NumPy arrays over the same memory (bfloat16 through its bits and
`ml_dtypes.bfloat16`, see runtime/arrays.py), CUDA tensors CuPy arrays through DLPack;
a sparse COO gradient becomes a `RowSparse` of its coalesced rows. The engine's kernels
write through these views, so autograd does not see the writes: `bump_versions` tells it.
"""
import contextlib

import torch

from ..runtime import arrays
from ..runtime.sparse import RowSparse


def view(tensor):
    """A NumPy (CPU) or CuPy (CUDA) array sharing the tensor's memory."""
    return arrays.view(tensor)


def gradient(param, grad):
    """The gradient as the engine takes it: an array view, or a RowSparse for a sparse
    COO gradient (nn.Embedding(sparse=True)). Mismatches raise before anything changes."""
    if grad.dtype != param.dtype:
        raise ValueError(f"gradient has dtype {grad.dtype}, its parameter {param.dtype}")
    if tuple(grad.shape) != tuple(param.shape):
        raise ValueError(f"gradient has shape {tuple(grad.shape)}, its parameter {tuple(param.shape)}")
    if grad.device != param.device:
        raise ValueError(f"gradient is on {grad.device}, its parameter on {param.device}")
    if grad.layout == torch.sparse_coo:
        if grad.sparse_dim() != 1:
            raise TypeError(f"sparse gradients must be sparse in their first dimension only (rows), "
                            f"got sparse_dim={grad.sparse_dim()}")
        grad = grad.coalesce()    # sorted rows, repeated rows summed
        return RowSparse(view(grad.indices()[0]), view(grad.values()), tuple(grad.shape))
    if grad.layout != torch.strided:
        raise TypeError(f"gradients with layout {grad.layout} are not supported")
    return view(grad)


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
        torch.autograd.graph.increment_version(tensors)
