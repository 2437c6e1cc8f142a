"""optforge.torch's step inside torch.compile: one torch custom op (`optforge::step`).

Dynamo cannot trace the engine (NumPy views, caches keyed by id(), the native kernels'
ctypes calls). Under torch.compile the optimizer's step therefore calls this op, which
names the parameters with a gradient (mutated) and their gradients, and whose fake implementation
does nothing: the compiled graph holds the step as one node, without a graph break
(`fullgraph=True` works), and at run time the node runs the eager step (the same native
kernels as without compile) on the optimizer the op's handle names.

Chosen over tracing the generated array code with torch operations (torch_native.py) for
the compiled step: the native kernels already make one pass over memory per batch of
parameters, which Inductor's fused loops would at best equal (BENCHMARKS.md measures both
compiled steps against torch.optim.Adam's); and the torch-native path needs the host
scalars as Python floats of the step count, which would specialise a graph per step.
"""
import itertools
import weakref

import torch

_OPTIMIZERS = weakref.WeakValueDictionary()   # handle -> optimizer
_HANDLES = itertools.count(1)


def register(optimizer):
    """Give the optimizer its own handle (at construction, and for a copy or an unpickled
    one in __setstate__: dynamo reads the handle, it cannot make one)."""
    own = next(_HANDLES)
    optimizer.__dict__["_compile_handle"] = own
    _OPTIMIZERS[own] = optimizer


@torch.library.custom_op("optforge::step", mutates_args=("params",))
def step(handle: int, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    """The eager step of the optimizer `handle` names; the tensors tell the compiler what
    it reads and writes (the step itself finds them in the optimizer's groups)."""
    optimizer = _OPTIMIZERS.get(handle)
    if optimizer is None:
        raise RuntimeError("optforge::step: the optimizer of this compiled graph no longer exists")
    optimizer._update(1.0)


@step.register_fake
def _(handle, params, grads):
    return None


def traced_step(optimizer):
    """The step as dynamo sees it: the op over the parameters with a gradient and their
    gradients. The states are not named: the step replaces some of them (a kept launch
    makes the step counts views of one buffer), and the compiler copies a mutated input
    that aliases another back from its own copy after the op, which would undo the step's
    writes; the compiled graph therefore must not read states after the step."""
    params, grads = [], []
    for group in optimizer.param_groups:
        for param in group["params"]:
            if param.grad is not None:
                params.append(param)
                grads.append(param.grad)
    with torch.no_grad():
        step(optimizer._compile_handle, params, grads)
