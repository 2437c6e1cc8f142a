"""The optimizer registry: `register`, `create` (MXNet's `create_optimizer`).

Names are case-insensitive. Each optimizer has a flavor: "mxnet2" (MXNet 2.0
semantics, the default) or another semantics written as its own spec.
"""
import difflib
import warnings

from ..conventions.flavors import DEFAULT_FLAVOR  # noqa: F401  (registry.DEFAULT_FLAVOR)

_REGISTRY = {}   # flavor -> {lowercase name -> class}


def _builtins():
    from . import catalog
    catalog.load()


def add(klass):
    """Register without the override warning (the generated classes, at first use)."""
    flavor = getattr(klass, "flavor", DEFAULT_FLAVOR)
    _REGISTRY.setdefault(flavor, {}).setdefault(klass.__name__.lower(), klass)


def register(klass):
    """Register an Optimizer subclass under its lowercase class name (usable as a decorator).

    Registering a name again replaces the old class and warns."""
    if not (isinstance(klass, type) and all(callable(getattr(klass, m, None)) for m in ("create_state", "update"))):
        raise TypeError(f"register() takes an Optimizer subclass (a class with create_state and update), "
                        f"got {klass!r}")
    _builtins()
    flavor = getattr(klass, "flavor", DEFAULT_FLAVOR)
    name = klass.__name__.lower()
    table = _REGISTRY.setdefault(flavor, {})
    if name in table:
        old = table[name]
        warnings.warn(f"New optimizer {klass.__module__}.{klass.__name__} is overriding existing "
                      f"optimizer {old.__module__}.{old.__name__}", stacklevel=2)
    table[name] = klass
    return klass


def lookup(name, flavor=DEFAULT_FLAVOR):
    """The registered class for a name (and flavor)."""
    _builtins()
    if flavor not in _REGISTRY:
        raise ValueError(f"Unknown flavor {flavor!r}; " + suggestion(str(flavor), _REGISTRY)
                         + f"known flavors: {', '.join(sorted(_REGISTRY))}")
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string, got {name!r}")
    table = _REGISTRY[flavor]
    key = name.lower()
    if key not in table:
        raise ValueError(f"Cannot find optimizer {name} (flavor {flavor!r}); "
                         + suggestion(key, table) + f"registered: {', '.join(sorted(table))}")
    return table[key]


def suggestion(name, known):
    """'did you mean ...? ' for the known names closest to a misspelt one, else ''."""
    name = name.lower()
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    close.sort(key=lambda c: sorted(c) != sorted(name))   # swapped letters ('adma') first
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def create(name, flavor=DEFAULT_FLAVOR, **kwargs):
    """Instantiate a registered optimizer by name: `create('adam', learning_rate=0.1)`."""
    return lookup(name, flavor)(**kwargs)


def names(flavor=DEFAULT_FLAVOR):
    _builtins()
    return sorted(_REGISTRY.get(flavor, {}))


def flavors():
    _builtins()
    return sorted(_REGISTRY)


def registered(flavor=None):
    """{(flavor, name): class} of everything registered, or of one flavor."""
    _builtins()
    return {(f, n): c for f, table in sorted(_REGISTRY.items()) for n, c in sorted(table.items())
            if flavor is None or f == flavor}
