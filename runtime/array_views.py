"""Parameters as NumPy, CuPy or PyTorch arrays, seen by the kernels without copies.

The generated kernels work on NumPy and CuPy arrays. A PyTorch tensor is viewed
as one: a CPU tensor through `Tensor.numpy()` (the array interface: same memory),
a CUDA tensor through DLPack as a CuPy array. The kernels update the view in
place, which updates the tensor. torch and cupy are imported only when such an
array is seen.
"""
import numpy

from .backends import is_cupy_array


def family(x):
    """'numpy', 'cupy' or 'torch'; None for anything else."""
    if isinstance(x, numpy.ndarray):
        return "numpy"
    if is_cupy_array(x):
        return "cupy"
    module = type(x).__module__.split(".")[0]
    if module == "torch" and hasattr(x, "detach") and hasattr(x, "dtype"):
        return "torch"
    return None


def view(x):
    """A NumPy or CuPy array sharing x's memory."""
    kind = family(x)
    if kind in ("numpy", "cupy"):
        return x
    if kind == "torch":
        tensor = x.detach()
        if tensor.device.type == "cpu":
            if str(tensor.dtype) == "torch.bfloat16":   # NumPy has no bfloat16: view the bits
                import ml_dtypes
                return _torch_bits(tensor).numpy().view(ml_dtypes.bfloat16)
            try:
                return tensor.numpy()
            except (TypeError, RuntimeError) as err:
                raise TypeError(f"cannot view a {tensor.dtype} tensor as a NumPy array: {err}") from None
        import cupy
        return cupy.from_dlpack(tensor)
    raise TypeError(f"expected a numpy.ndarray, cupy.ndarray or torch.Tensor, got "
                    f"{type(x).__module__}.{type(x).__name__}")


def like(array, param):
    """`array` (NumPy or CuPy) as the kind of array `param` is, sharing memory (a bfloat16
    state's bits, a uint16 CuPy array, as a bfloat16 tensor)."""
    if family(param) != "torch":
        return array
    import torch
    if isinstance(array, numpy.ndarray):
        if str(array.dtype) == "bfloat16":
            return torch.from_numpy(array.view(numpy.int16)).view(torch.bfloat16)
        return torch.from_numpy(array)
    from .backends.quantized import is_bfloat16
    if is_bfloat16(array):
        return _torch_view(torch.from_dlpack(array.view(numpy.int16)), torch.bfloat16)
    return torch.from_dlpack(array)


def bits(tensor):
    """A bfloat16 CUDA tensor's memory as a uint16 CuPy array (a bfloat16 state on CuPy
    arrays, see backends/quantized.py): the same memory."""
    import cupy
    return cupy.from_dlpack(_torch_bits(tensor.detach())).view(numpy.uint16)


def _torch_view(tensor, dtype):
    """`tensor.view(dtype)` of a same-size dtype, 0-d tensors included."""
    return (tensor.reshape(1) if tensor.dim() == 0 else tensor).view(dtype).reshape(tensor.shape)


def _torch_bits(tensor):
    """A bfloat16 tensor's memory as int16 (a 0-d tensor cannot change its element view)."""
    import torch
    return (tensor.reshape(1) if tensor.dim() == 0 else tensor).view(torch.int16).reshape(tensor.shape)


def scalar_like(value, param):
    """A float as the step counter torch keeps: a 0-d tensor for tensors, else a float."""
    if family(param) == "torch":
        import torch
        return torch.tensor(float(value))
    return float(value)


def to_float(value):
    """A number, or a one-element array or tensor of any shape (torch takes lr=tensor([0.1])),
    as a float (anything else is returned as is)."""
    if hasattr(value, "ndim") and hasattr(value, "item"):
        if value.ndim == 0:
            return value.item()
        size = value.size if isinstance(getattr(value, "size", None), int) else value.numel()
        if size == 1:
            return value.item()
    return value
