"""Every optimizer generated from specs/: imported, built into classes, registered.

Loaded on first use (creating, listing or naming an optimizer class), so that
`import optforge` stays cheap and `optforge generate` works even while
generated/ is being rebuilt.
"""
import importlib

_CLASSES = {}


def load():
    """{(flavor, class name): class} for every generated module (built once)."""
    if not _CLASSES:
        from ..generated import numpy as generated
        from .registry import add
        from .spec_optimizer import optimizer_class
        for stem in getattr(generated, "MODULES", ()):
            module = importlib.import_module(f"{generated.__name__}.{stem}")
            cls = optimizer_class(module)
            add(cls)
            _CLASSES[(cls.flavor, cls.__name__)] = cls
    return dict(_CLASSES)


def classes(flavor="mxnet2"):
    """{class name: class} of one flavor."""
    return {name: cls for (f, name), cls in load().items() if f == flavor}
