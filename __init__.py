"""optforge: optimizers written once as formulas (specs/), generated into NumPy and CUDA code,
exposed with Apache MXNet's optimizer API.

    >>> import optforge
    >>> opt = optforge.create('adam', learning_rate=0.1)
    >>> updater = optforge.get_updater(opt)

Importing optforge needs only NumPy; the generator (sympy, jinja2) is loaded by
`optforge generate`. The optimizer classes (optforge.Adam, optforge.SGD, ...) are
built from the generated modules on first use.
"""
from typing import TYPE_CHECKING

from . import lr_scheduler, optimizer
from .codegen.errors import SpecError
from .runtime.mxnet_base import Optimizer
from .runtime.registry import create, register
from .runtime.sparse import RowSparse
from .runtime.updater import Updater, get_updater

if TYPE_CHECKING:    # the classes' signatures for type checkers (generated/mxnet_classes.pyi)
    from .generated.mxnet_classes import *  # noqa: F401,F403

__version__ = "0.1.0"

create_optimizer = create


def load_spec(path, register=True):
    """Generate (cached) and register the optimizer of a spec file anywhere on disk; returns
    its class. See runtime/catalog.py and runtime/spec_loading.py."""
    from .runtime.catalog import load_spec as load
    return load(path, register=register)


def __getattr__(name):
    if name in ("optim", "torch"):   # the params-style API and the torch optimizers, on first use
        import importlib
        return importlib.import_module("." + name, __name__)
    from .runtime import catalog
    classes = catalog.classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module 'optforge' has no attribute {name!r}")


def __dir__():
    from .runtime import catalog
    return sorted(set(globals()) | set(catalog.classes()))
