"""Params-style optimizers, named as in torch.optim (and MindSpore's experimental.optim).

    >>> import numpy as np
    >>> from optforge import optim
    >>> w = np.ones(3, np.float32)
    >>> opt = optim.Adam([w], lr=0.1, betas=(0.9, 0.99), weight_decay=0.01)
    >>> opt([np.full(3, 0.5, np.float32)])      # or opt.step(grads)

Parameters are NumPy or CuPy arrays or PyTorch tensors (viewed without copies). The
classes are built from the specs: the PyTorch/MindSpore flavor (specs/torch/) where
one exists (Adam, AdamW, Adamax, SGD, RMSprop, Adagrad, Adadelta, NAdam, RAdam),
else the MXNet 2.0 spec (Lion, AMSGrad, Yogi, Adan, Rprop, ...).
"""
from typing import TYPE_CHECKING

from .runtime.params_api import Optimizer, create

if TYPE_CHECKING:    # the classes' signatures for type checkers (generated/params_classes.pyi)
    from .generated.params_classes import *  # noqa: F401,F403

__all__ = ["Optimizer", "create"]


def __getattr__(name):
    from .runtime.params_api import classes
    table = classes()
    if name in table:
        return table[name]
    raise AttributeError(f"module 'optforge.optim' has no attribute {name!r}")


def __dir__():
    from .runtime.params_api import classes
    return sorted(set(globals()) | set(classes()))
