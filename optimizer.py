"""`optforge.optimizer`: the optimizer API where MXNet keeps it (`mxnet.optimizer`):
`create`, `register`, `Optimizer`, `Updater`, `get_updater` and every optimizer class.

    >>> from optforge import optimizer
    >>> opt = optimizer.create('adam', learning_rate=0.01)
    >>> opt = optimizer.Adam(learning_rate=0.01)

The classes are the same objects as `optforge.Adam`, ... (MXNet 2.0 flavor), built from
the generated modules on first use.
"""
from typing import TYPE_CHECKING

from .runtime.mxnet_base import Optimizer
from .runtime.registry import create, register
from .runtime.updater import Updater, get_updater

if TYPE_CHECKING:    # the classes' signatures for type checkers (generated/mxnet_classes.pyi)
    from .generated.mxnet_classes import *  # noqa: F401,F403

create_optimizer = create

__all__ = ["Optimizer", "Updater", "create", "create_optimizer", "get_updater", "register"]


def __getattr__(name):
    from .runtime import catalog
    classes = catalog.classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module 'optforge.optimizer' has no attribute {name!r}")


def __dir__():
    from .runtime import catalog
    return sorted(set(globals()) | set(catalog.classes()))
