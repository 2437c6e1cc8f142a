"""Each API family's argument names for a spec, and which spec a params-style class runs.

The params-style API (`optforge.optim`) and optforge.torch take torch's names: `lr`,
`weight_decay` (the rule's wd), one tuple argument for hyperparameters sharing a keyword
(`betas` for beta1, beta2, ...), `eps` for `epsilon`, a hyperparameter's `keyword`
where its spec gives one, else its own name. The MXNet style takes MXNet's names (the
hyperparameters' own and `MXNET_OPTIONS`).
"""
import re

from .flavors import DEFAULT_FLAVOR, PARAMS_FLAVOR  # noqa: F401  (arguments.PARAMS_FLAVOR)

_BETA = re.compile(r"^beta\d+$")
DEFAULT_KEYWORDS = {"epsilon": "eps"}

# MXNet's Optimizer constructor options after the hyperparameters, with their defaults
# (runtime/mxnet_base.py's signature; a test keeps the two equal)
MXNET_OPTIONS = (("rescale_grad", 1.0), ("param_idx2name", None), ("wd", 0.0), ("clip_gradient", None),
                 ("learning_rate", None), ("lr_scheduler", None), ("sym", None), ("begin_num_update", 0),
                 ("multi_precision", False), ("param_dict", None), ("aggregate_num", None),
                 ("use_fused_step", None), ("state_storage", None), ("min_8bit_size", 4096))


def keywords(spec):
    """[(keyword, [hyperparameter names])] in declaration order: names sharing a keyword
    form a tuple (`betas` for beta1, beta2, ...)."""
    out = {}
    for meta in spec["hyperparameters"]:
        name = meta["name"]
        keyword = meta.get("keyword") or ("betas" if _BETA.match(name) else DEFAULT_KEYWORDS.get(name, name))
        out.setdefault(keyword, []).append(name)
    return list(out.items())


def lists(spec):
    """{list hyperparameter: [its element names]} in declaration order (`betas = [...]` in a
    spec has the elements betas_0, betas_1, ...)."""
    out = {}
    for meta in spec["hyperparameters"]:
        if meta.get("list"):
            out.setdefault(meta["list"], []).append(meta["name"])
    return out


def written(meta):
    """A hyperparameter's name as a spec reads it: `betas[1]` for the element betas_1 of a
    list, else its own name."""
    return f"{meta['list']}[{meta['name'].rsplit('_', 1)[1]}]" if meta.get("list") else meta["name"]


def mxnet_arguments(spec):
    """[(argument, default)] of the MXNet-style hyperparameter arguments: each its own, a
    list hyperparameter one argument (the tuple of its elements' defaults)."""
    out = {}
    for meta in spec["hyperparameters"]:
        if meta.get("list"):
            out[meta["list"]] = out.get(meta["list"], ()) + (meta["default"],)
        else:
            out[meta["name"]] = meta["default"]
    return list(out.items())


def grouped(spec, values):
    """{argument: value} from {hyperparameter: value}: list elements gathered into tuples."""
    out = dict(values)
    for name, elements in lists(spec).items():
        out[name] = tuple(out.pop(element) for element in elements)
    return out


def default_arguments(spec):
    """{argument: default} of a spec's params-style class, in signature order: lr, the
    keywords (a tuple for a shared keyword), weight_decay."""
    out = {"lr": spec["learning_rate"]}
    by_name = {m["name"]: m for m in spec["hyperparameters"]}
    for keyword, names in keywords(spec):
        values = tuple(by_name[n]["default"] for n in names)
        out[keyword] = values if len(names) > 1 else values[0]
    out["weight_decay"] = spec["options"].get("wd", 0.0)
    return out


def chosen(items):
    """{key: value} from ((flavor, key), value) pairs: the torch flavor's value where a key
    has one, else MXNet 2.0's (other flavors have no params-style class)."""
    items = list(items)
    table = {key: value for (flavor, key), value in items if flavor == DEFAULT_FLAVOR}
    table.update({key: value for (flavor, key), value in items if flavor == PARAMS_FLAVOR})
    return table
