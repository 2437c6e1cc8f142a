"""optforge.torch: every optforge optimizer as a `torch.optim.Optimizer`.

    >>> import torch, optforge.torch
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = optforge.torch.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    >>> sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)

The classes are built from the specs: the torch flavor (specs/torch/) where one
exists (Adam, AdamW, Adamax, SGD, RMSprop, Adagrad, Adadelta, NAdam, RAdam; named,
configured and checkpointed as torch.optim's), else the MXNet 2.0 spec (Lion, LAMB,
LARS, Adan, Yogi, NovoGrad, Ftrl, ...), with torch-style keywords. `create(name,
params, flavor=...)` reaches every registered spec. Importing it imports torch
(installed with the `torch` extra); `import optforge` does not.

This package's sources live in the repository's `torch_frontend/` folder (see
pyproject.toml): a folder named `torch` at the repository root would hide the real
torch from anything run there.
"""
from typing import TYPE_CHECKING

if __name__ != "optforge.torch":
    # an editable install also reaches this folder as optforge.torch_frontend: a second copy
    # of every class, which optforge.torch's isinstance checks and state dicts would not know
    raise ImportError(f"{__name__} is the source folder of optforge.torch: import optforge.torch")

from .classes import classes, create, torch_class
from .optimizer import MASTER, Optimizer

if TYPE_CHECKING:    # the classes' signatures for type checkers (generated/torch_classes.pyi)
    from ..generated.torch_classes import *  # noqa: F401,F403

__all__ = ["MASTER", "Optimizer", "classes", "create", "torch_class"]


def __getattr__(name):
    table = classes()
    if name in table:
        return table[name]
    raise AttributeError(f"module 'optforge.torch' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(classes()))
