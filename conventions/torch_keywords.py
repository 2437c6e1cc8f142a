"""The keywords optforge.torch's classes take beyond the params-style ones, and why.

torch.optim's constructors take implementation switches besides the rule's settings
(`foreach`, `fused`, `capturable`, `differentiable`); a drop-in replacement accepts each
one or refuses it with the reason. The table is torch-free so that the classes
(torch_frontend/classes.py) and their type stubs (codegen/emitters/stubs.py) take the
same keywords; tests/test_torch_keywords.py walks torch.optim's real signatures against it.
"""

# name: (stub type, default, what it means here). Any value is accepted and kept in the
# param groups (so state dicts round-trip with torch.optim's): optforge always runs its own
# generated kernels (native C++ on CPU tensors, CUDA on CUDA tensors) with one call per
# (device, dtype) batch of parameters, which is what both switches select in torch. The one
# effect of fused=True is torch's contract with torch.amp.GradScaler: the step takes the
# still-scaled gradients with `grad_scale` and `found_inf` (`_step_supports_amp_scaling`).
# differentiable=True selects the torch-native path: the same generated code on torch tensors.
ACCEPTED = {
    "foreach": ("bool | None", None, "accepted, no effect: one fused kernel call per (device, dtype) batch always"),
    "fused": ("bool | None", None, "accepted: one fused kernel call per (device, dtype) batch always; fused=True "
                                   "also takes GradScaler's grad_scale and found_inf in the step, as torch's "
                                   "fused optimizers do"),
    "differentiable": ("bool", False, "accepted: with True the step runs the rule's generated array code on "
                                      "torch tensors with torch operations under autograd "
                                      "(torch_frontend/torch_native.py); rules with reductions refuse True"),
}

# name: (the one value accepted, why any other is refused)
REFUSED = {
    "capturable": (False, "optforge.torch reads each parameter's step count on the host and launches its "
                          "kernels from Python, so its step cannot be captured in a CUDA graph"),
}

# (flavor, spec key): torch.optim keywords of the same optimizer that the spec does not
# implement, as REFUSED
SPEC_REFUSED = {
    ("torch", "adam"): {
        "decoupled_weight_decay": (False, "decoupled weight decay is optforge.torch.AdamW (specs/torch/adamw.toml); "
                                          "Adam's rule adds weight_decay * weight to the gradient"),
    },
}

# (flavor, spec key): the hyperparameter that runs a matrix rule's products in a lower
# precision through torch (torch_frontend/torch_matrix.py), as torch.optim.Muon runs its
# Newton-Schulz iteration in bfloat16. Only optforge.torch takes a value other than None:
# the other families step NumPy (or CuPy) arrays, and NumPy has no bfloat16 matrix product
TORCH_PRODUCTS = {
    ("torch", "muon"): "ns_dtype",
}

MASTER_WEIGHTS = "master_weights"   # optforge's own keyword (torch_frontend/optimizer.py)
# optforge's own keyword: True makes a param group's group values (group_sum, group_max,
# group_min) span every rank of the default process group (torch_frontend/optimizer.py), for
# ZeroRedundancyOptimizer, whose per-rank optimizer holds a partition of the parameters.
# A bool, not a ProcessGroup: ZeroRedundancyOptimizer keeps every keyword in the param groups
# it pickles (state_dict, consolidate_state_dict), and a ProcessGroup does not pickle
GROUP_ALL_REDUCE = "group_all_reduce"

# (flavor, spec key): param group entries torch.optim's class of the same name always holds
# without taking them as keywords, with the value it holds (so state dicts have torch's keys)
GROUP_CONSTANTS = {
    ("torch", "adamw"): {"decoupled_weight_decay": True},   # torch's AdamW is Adam with it set
}

# (flavor, spec key): how the rule's torch.optim class keeps `step` in a parameter's state
# where it is not a 0-d tensor: None, no count at all (and why none is needed: the rule
# reads t at most as `t == 1`, the first update of a parameter, which the presence of its
# states shows; torch_frontend/optimizer.py counts 0 without states, 1 with them;
# tests/test_torch_suite.py checks the generated functions), or "int", a Python int
STEP_KINDS = {
    ("torch", "sgd"): None,     # torch.optim.SGD keeps only momentum_buffer: t == 1 is a buffer not made yet
    ("torch", "muon"): None,    # torch.optim.Muon keeps only momentum_buffer: the rule does not read t
    ("torch", "sparseadam"): "int",    # torch.optim.SparseAdam counts in a plain int
}


def products_dtype(spec, hyperparameters):
    """The dtype name a rule's products run in through torch (TORCH_PRODUCTS), or None."""
    name = TORCH_PRODUCTS.get((spec["flavor"], spec["key"]))
    return hyperparameters.get(name) if name is not None else None


def check_products(spec, hyperparameters):
    """ValueError for a products dtype in a family that steps NumPy (or CuPy) arrays: NumPy
    has no bfloat16 matrix product, and emulating one (float32 products of rounded values)
    would be slower than the float32 products without torch's speed."""
    dtype = products_dtype(spec, hyperparameters)
    if dtype is not None:
        name = TORCH_PRODUCTS[(spec["flavor"], spec["key"])]
        raise ValueError(f"{spec['name']}: {name}={dtype!r} runs the matrix products in {dtype} through "
                         f"torch, on torch tensors: only optforge.torch.{spec['name']} takes it (NumPy has "
                         f"no {dtype} matrix product); here {name} must be None")


def refused(spec):
    """{keyword: (the one value accepted, reason)} for a spec's torch class."""
    return dict(REFUSED, **SPEC_REFUSED.get((spec["flavor"], spec["key"]), {}))


def extra_keywords(spec):
    """[(name, stub type, default)] the torch class takes after the params-style keywords,
    in signature order."""
    out = [(name, kind, default) for name, (kind, default, _) in ACCEPTED.items()]
    # a refused switch is typed as its one value, so a type checker flags the other
    out += [(name, f"Literal[{value!r}]" if isinstance(value, bool) else "float", value)
            for name, (value, _) in refused(spec).items()]
    return out + [(MASTER_WEIGHTS, "bool", False), (GROUP_ALL_REDUCE, "bool", False)]


def check(spec, class_name, values):
    """ValueError naming the keyword and why, for a refused keyword given another value
    than the one accepted (`values`: a param group or the constructor's keywords)."""
    for name, (accepted, reason) in refused(spec).items():
        if name in values and values[name] != accepted:
            raise ValueError(f"optforge.torch.{class_name} does not support {name}={values[name]!r}: {reason}")
    for name, value in group_constants(spec).items():
        if name in values and values[name] != value:
            raise ValueError(f"optforge.torch.{class_name} does not support {name}={values[name]!r}: "
                             f"its rule is fixed, and its param groups always hold {name}={value!r}")


def group_constants(spec):
    """{key: value} every param group of the spec's torch class holds (GROUP_CONSTANTS)."""
    return dict(GROUP_CONSTANTS.get((spec["flavor"], spec["key"]), {}))


def step_kind(spec):
    """How the spec's torch class keeps `step`: "tensor" (0-d, torch's scalar dtype), "int" or
    None (no count: STEP_KINDS)."""
    return STEP_KINDS.get((spec["flavor"], spec["key"]), "tensor")
