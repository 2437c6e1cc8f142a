"""Semantics that belong to a flavor as a whole rather than to one optimizer."""

DEFAULT_FLAVOR = "mxnet2"     # a spec without `flavor`, and `optforge.create`'s default
PARAMS_FLAVOR = "torch"       # the params-style and torch classes' flavor where a spec has one

FLAVORS = {
    "mxnet2": {
        "title": "MXNet 2.0 semantics",
        # names that keep weight decay by default; None: every parameter does
        "decay_suffixes": None,
    },
    "mxnet1": {
        "title": "MXNet 1.x semantics",
        # MXNet 1.x: with param_idx2name given, wd_mult is 0 for names not ending so
        "decay_suffixes": ("_weight", "_gamma"),
    },
}


def title(flavor):
    return FLAVORS.get(flavor, {}).get("title", flavor)


def decay_suffixes(spec):
    """The spec's own rule, else its flavor's."""
    if spec.get("decay_suffixes") is not None:
        return tuple(spec["decay_suffixes"])
    return FLAVORS.get(spec["flavor"], {}).get("decay_suffixes")
