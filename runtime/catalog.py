"""The MXNet-style classes: one built from each generated module, and registered.

`optimizer_class(module)` builds a module's class (a real signature, validated
hyperparameter properties, the formula in its docstring, train()/eval() for rules with
[modes]). `load()` imports every generated module of specs/ and registers its class, on
first use (creating, listing or naming an optimizer class), so that `import optforge`
stays cheap and `optforge generate` works even while generated/ is being rebuilt.
`load_spec(path)` does the same for a spec file from anywhere (`optforge.load_spec`).
"""
import importlib
import inspect
from pathlib import Path

from ..conventions import arguments, torch_keywords
from ..conventions.flavors import decay_suffixes
from . import registry, validation
from .docstrings import class_docstring
from .modes import MXNetModes
from .spec_loading import load_module
from .spec_optimizer import SpecOptimizer

_CLASSES = {}
_LOADED = {}    # generated module -> its class (a spec file loaded again gets the same class)


def load():
    """{(flavor, class name): class} for every generated module (built once)."""
    if not _CLASSES:
        from ..generated import numpy as generated
        for stem in getattr(generated, "MODULES", ()):
            module = importlib.import_module(f"{generated.__name__}.{stem}")
            cls = optimizer_class(module)
            registry.add(cls)
            _CLASSES[(cls.flavor, cls.__name__)] = cls
    return dict(_CLASSES)


def classes(flavor="mxnet2"):
    """{class name: class} of one flavor."""
    return {name: cls for (f, name), cls in load().items() if f == flavor}


def load_spec(path, register=True):
    """Generate (or reuse the cached) code of the spec at `path` and return its optimizer
    class, registered under its lower-case name and flavor. A malformed spec raises
    SpecError (every mistake, with file:line:col)."""
    module = load_module(Path(path))
    cls = _LOADED.get(module)
    if cls is None:
        cls = _LOADED[module] = optimizer_class(module)
    if register:
        # also after an unregistered load of the same spec (`optforge show FILE`), and once only:
        # registering the class again would warn that it overrides itself
        if registry.registered(cls.flavor).get((cls.flavor, cls.__name__.lower())) is not cls:
            registry.register(cls)
    return cls


def optimizer_class(module):
    """Build the Optimizer subclass for one generated module."""
    spec = module.SPEC
    hyper = [m["name"] for m in spec["hyperparameters"] if not m.get("list")]
    listed = arguments.lists(spec)     # list hyperparameters: one tuple argument each
    options = dict(spec["options"])
    options.setdefault("use_fused_step", True)
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                  inspect.Parameter("learning_rate", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=spec["learning_rate"])]
    for name, default in arguments.mxnet_arguments(spec):
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    for name, default in options.items():
        if isinstance(default, dict):   # read from the environment when the optimizer is made
            default = None
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    parameters.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    signature = inspect.Signature(parameters)

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        explicit_lr = "learning_rate" in bound.arguments
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        extra = values.pop("kwargs")
        learning_rate = values.pop("learning_rate")
        if not explicit_lr and extra.get("lr_scheduler") is not None:
            learning_rate = None   # the scheduler's base_lr rules, not the class default
        hyperparameters = {name: values.pop(name) for name in hyper}
        for name, elements in listed.items():
            hyperparameters.update(zip(elements, list_value(name, values.pop(name), len(elements))))
        SpecOptimizer.__init__(self, learning_rate=learning_rate, hyperparameters=hyperparameters,
                               options=values, **extra)

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{spec['name']}.__init__"
    namespace = {
        "SPEC": spec,
        "flavor": spec["flavor"],
        "_decay_suffixes": decay_suffixes(spec),
        "_skips_bad_rescale_grad": hasattr(module, "skip")
        and "rescale_grad" in inspect.signature(module.skip).parameters,
        "_module": module,
        "__init__": __init__,
        "__doc__": class_docstring(spec),
        "__module__": "optforge",
    }
    for meta in spec["hyperparameters"]:
        if not meta.get("list"):
            namespace[meta["name"]] = _hyperparameter_property(meta, spec)
    for name, elements in listed.items():
        namespace[name] = _list_property(name, elements, spec)
    bases = (SpecOptimizer,)
    if getattr(module, "MODES", None) is not None:   # train()/eval() (runtime/modes.py)
        bases = (MXNetModes, SpecOptimizer)
    cls = type(spec["name"], bases, namespace)
    return cls


def list_value(name, value, length):
    """A list hyperparameter's value as a list of `length` items (ValueError otherwise)."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ValueError(f"{name} must be a list or tuple of {length} numbers, got {value!r}")
    return list(value)


def _list_property(name, elements, spec):
    """A list hyperparameter as a tuple; setting one checks every element before any is set."""
    metas = {m["name"]: m for m in spec["hyperparameters"]}

    def get(self):
        return tuple(self.engine.hyperparameters[element] for element in elements)

    def set_(self, value):
        items = list_value(name, value, len(elements))
        checked = [validation.hyperparameter(metas[element], item) for element, item in zip(elements, items)]
        for element, item in zip(elements, checked):
            self.engine.set_hyperparameter(element, item)

    return property(get, set_, doc=metas[elements[0]]["doc"])


def _hyperparameter_property(meta, spec):
    name = meta["name"]

    def get(self):
        return self.engine.hyperparameters[name]

    def set_(self, value):
        torch_keywords.check_products(spec, {name: validation.hyperparameter(meta, value)})
        self.engine.set_hyperparameter(name, value)

    return property(get, set_, doc=meta["doc"])
