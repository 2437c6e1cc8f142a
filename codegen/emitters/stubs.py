"""The type-stub emitter: the optimizer classes of each API family as `.pyi` stubs.

The classes are built at run time from the generated modules (`optforge.Adam` through a
module `__getattr__`), which type checkers and IDEs cannot see. These stubs declare the
same classes with the same signatures, from the same spec metadata the runtime builds
them from; `__init__.py`, `optimizer.py`, `optim.py` and `torch_frontend/__init__.py`
(optforge.torch) import them under `typing.TYPE_CHECKING` only, so nothing here runs.

One stub module per API family (`FAMILIES`).
"""
import keyword
import math

from ...conventions import arguments as families, state_storage, torch_keywords
from ...conventions.arguments import MXNET_OPTIONS, mxnet_arguments
from ...conventions.flavors import DEFAULT_FLAVOR
from .templates import environment

# The base constructor's keywords (conventions/arguments.MXNET_OPTIONS) with their types; a keyword
# added there without an entry here is typed Any.
BASE_KEYWORD_TYPES = {
    "rescale_grad": "float",
    "param_idx2name": "dict[int, str] | None",
    "wd": "float",
    "clip_gradient": "float | None",
    "learning_rate": "float | None",
    "lr_scheduler": "Callable[[int], float] | None",
    "sym": "Any",
    "begin_num_update": "int",
    "multi_precision": "bool",
    "param_dict": "dict[int, Any] | None",
    "aggregate_num": "float | None",     # an int, or numpy.inf for all
    "use_fused_step": "bool | None",
    **state_storage.KEYWORD_TYPES,
}
_SCALAR_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


def _identifier(name):
    """Spec names become Python identifiers here; anything else never reaches the stub."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a Python identifier")
    return name


def _default(value):
    """A default as a literal (repr of plain values), else `...` (the stub convention)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, tuple) and all(_default(v) != "..." for v in value):
        return "(" + ", ".join(_default(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return "..."


def _hyperparameter_type(meta):
    if meta["type"] == "enum":
        kind = "Literal[" + ", ".join(repr(str(c)) for c in meta["choices"]) + "]"
    else:
        kind = {"float": "float", "int": "int", "bool": "bool"}[meta["type"]]
    return f"{kind} | None" if meta.get("optional") or meta["default"] is None else kind


def _option_type(name, default):
    if name in BASE_KEYWORD_TYPES:
        return BASE_KEYWORD_TYPES[name]
    return _SCALAR_TYPES.get(type(default), "Any")


def _argument(name, kind, default):
    return f"{_identifier(name)}: {kind} = {_default(default)}"


# train()/eval() of rules with [modes] (runtime/modes.py, torch_frontend/torch_modes.py)
MXNET_MODE_METHODS = ["def mode(self, index: Any) -> str: ...",
                      "def train(self, index: Any, weight: Any, state: Any) -> None: ...",
                      "def eval(self, index: Any, weight: Any, state: Any) -> None: ..."]
GROUP_MODE_METHODS = ["def train(self) -> None: ...", "def eval(self) -> None: ..."]


def _mxnet_types(spec):
    """{MXNet-style argument: its type}: a list hyperparameter is a tuple of its elements' type."""
    out = {}
    for meta in spec["hyperparameters"]:
        if meta.get("list"):
            out[meta["list"]] = out.get(meta["list"], ()) + (_hyperparameter_type(meta),)
        else:
            out[meta["name"]] = _hyperparameter_type(meta)
    return {name: f"tuple[{', '.join(kind)}]" if isinstance(kind, tuple) else kind for name, kind in out.items()}


def mxnet_class(spec):
    """The MXNet-style class (`optforge.Adam`): learning_rate, the hyperparameters and the
    spec's options by position or keyword, then the base class's keywords
    (runtime/catalog.optimizer_class builds the same signature)."""
    lr = spec["learning_rate"]
    positional = [_argument("learning_rate", "float | None", lr)]
    types = _mxnet_types(spec)
    positional += [_argument(name, types[name], default) for name, default in mxnet_arguments(spec)]
    options = {name: (None if isinstance(default, dict) else default) for name, default in spec["options"].items()}
    options.setdefault("use_fused_step", True)
    positional += [_argument(name, _option_type(name, default), default) for name, default in options.items()]
    taken = {"learning_rate", *options}
    base = [name for name in _base_keywords() if name not in taken]
    keywords = [_argument(name, BASE_KEYWORD_TYPES.get(name, "Any"), _base_default(name)) for name in base]
    return {
        "name": _identifier(spec["name"]),
        "doc": f"{spec['summary']} ({spec['spec']}).",
        "arguments": positional + (["*"] + keywords if keywords else []),
        "attributes": [(_identifier(name), kind) for name, kind in types.items()],
        "methods": MXNET_MODE_METHODS if "modes" in spec else [],
    }


def params_class(spec):
    """The params-style class (`optforge.optim.Adam`): params, lr, then keyword-only
    arguments with torch's names (conventions/arguments.py; runtime/params_api.params_class)."""
    defaults = families.default_arguments(spec)
    by_name = {m["name"]: m for m in spec["hyperparameters"]}
    types = {"lr": "float", "weight_decay": "float"}
    for keyword_name, names in families.keywords(spec):
        kinds = [_hyperparameter_type(by_name[n]) for n in names]
        types[keyword_name] = f"tuple[{', '.join(kinds)}]" if len(names) > 1 else kinds[0]
    arguments = ["params: Iterable[Any]", _argument("lr", types["lr"], defaults["lr"]), "*"]
    arguments += [_argument(k, types[k], v) for k, v in defaults.items() if k != "lr"]
    arguments += [_argument(k, state_storage.KEYWORD_TYPES[k], v) for k, v in state_storage.KEYWORDS]
    return {"name": _identifier(spec["name"]), "doc": f"{spec['summary']} ({spec['spec']}).",
            "arguments": arguments, "attributes": [], "methods": GROUP_MODE_METHODS if "modes" in spec else []}


def torch_class(spec):
    """The torch module's class (`optforge.torch.Adam`, a torch.optim.Optimizer): the
    params-style signature, then torch's implementation keywords and master_weights
    (conventions/torch_keywords.py; torch_frontend/classes.py builds the same signature).
    Refused keywords are typed with the one value accepted, so a checker flags the rest."""
    out = params_class(spec)
    out["arguments"] = out["arguments"] + [_argument(name, kind, default)
                                           for name, kind, default in torch_keywords.extra_keywords(spec)]
    return out


def _base_keywords():
    return [name for name, _ in MXNET_OPTIONS]


def _base_default(name):
    return dict(MXNET_OPTIONS)[name]


# family: (stub path under generated/, base class import, base name, class builder, specs chosen)
FAMILIES = {
    "mxnet": ("mxnet_classes.pyi", "from ..runtime.spec_optimizer import SpecOptimizer", "SpecOptimizer",
              mxnet_class, lambda specs: {key: s for (flavor, key), s in specs if flavor == DEFAULT_FLAVOR}),
    "params": ("params_classes.pyi", "from ..runtime.params_api import Optimizer", "Optimizer",
               params_class, families.chosen),
    "torch": ("torch_classes.pyi", "from torch.optim import Optimizer", "Optimizer",
              torch_class, families.chosen),
}
USAGE = {
    "mxnet": "optforge.Adam(learning_rate=0.001, beta1=0.9), optforge.optimizer.Adam(...)",
    "params": "optforge.optim.Adam(params, lr=0.001, betas=(0.9, 0.999))",
    "torch": "optforge.torch.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999))",
}


def render(specs):
    """{path under generated/: stub text} for [SPEC metadata dict] of every spec."""
    pairs = [((s["flavor"], s["key"]), s) for s in specs]
    out = {}
    for family, (path, base_import, base, build, choose) in FAMILIES.items():
        chosen = choose(pairs)
        classes = [build(chosen[key]) for key in sorted(chosen, key=lambda k: chosen[k]["name"])]
        out[path] = environment().get_template("stubs.pyi.j2").render(
            family=family, usage=USAGE[family], base_import=base_import, base=base, classes=classes)
    return out
