"""torch.optim's own argument checks, for the optforge.torch classes named as torch.optim's.

A drop-in replacement fails where torch's class fails, with the same exception type and
wording: each class named as a torch.optim class runs that class's constructor checks, in
torch's order and with torch's messages (written here from torch's constructors), before
optforge's own validation, which then refuses what torch lets through but the rule cannot
take (a NaN learning rate in SGD, a string where a number belongs) with its own messages.
`PARAMETER` holds torch's checks of the parameters themselves (SparseAdam: dense, real;
Muon: 2-D), run when a group is added; `STEP` the checks torch's step makes (Muon and
Adafactor refuse complex parameters there). tests/test_torch_suite.py runs optim_db's
error inputs (torch's own list of bad arguments and their errors) against these classes.
"""
import torch


def _tensor(value):
    return isinstance(value, torch.Tensor)


def _lr_tensor_numel(v):
    return _tensor(v["lr"]) and v["lr"].numel() != 1


def _foreach_tensor(key, index=None):
    def test(v):
        value = v[key] if index is None else v[key][index]
        return _tensor(value) and bool(v.get("foreach")) and not v.get("capturable")
    return test


def _at_least(key, index=None):
    def test(v):
        value = v[key] if index is None else v[key][index]
        return not 0.0 <= value
    return test


def _beta(index):
    def test(v):
        return not 0.0 <= v["betas"][index] < 1.0
    return test


_LR_NUMEL = (_lr_tensor_numel, ValueError, "Tensor lr must be 1-element")
_LR = (_at_least("lr"), ValueError, "Invalid learning rate: {lr}")
_EPS = (_at_least("eps"), ValueError, "Invalid epsilon value: {eps}")
_WD = (_at_least("weight_decay"), ValueError, "Invalid weight_decay value: {weight_decay}")
_BETAS = [(_beta(0), ValueError, "Invalid beta parameter at index 0: {betas[0]}"),
          (_beta(1), ValueError, "Invalid beta parameter at index 1: {betas[1]}")]
# checked by torch after the groups are added; here with the other values (they read no parameter)
_FUSED = [(lambda v: bool(v.get("fused")) and bool(v.get("differentiable")), RuntimeError,
           "`fused` does not support `differentiable`"),
          (lambda v: bool(v.get("fused")) and bool(v.get("foreach")), RuntimeError,
           "`fused` and `foreach` cannot be `True` together.")]


def _adam():
    both = (lambda v: not ((isinstance(v["betas"][0], float) and isinstance(v["betas"][1], float))
                           or (_tensor(v["betas"][0]) and _tensor(v["betas"][1]))))
    checks = [(_foreach_tensor("lr"), ValueError, "lr as a Tensor is not supported for capturable=False and foreach=True"),
              _LR_NUMEL, _LR, _EPS, *_BETAS, _WD,
              (both, ValueError, "betas must be either both floats or both Tensors")]
    for i in (0, 1):
        checks += [(_foreach_tensor("betas", i), ValueError,
                    f"betas[{i}] as a Tensor is not supported for capturable=False and foreach=True"),
                   (lambda v, i=i: _tensor(v["betas"][i]) and v["betas"][i].numel() != 1, ValueError,
                    f"Tensor betas[{i}] must be 1-element")]
    return checks + _FUSED


# class name -> [(test of the constructor's values, exception type, message)] in torch's order
CONSTRUCTOR = {
    "Adam": _adam(),
    "AdamW": _adam(),
    "Adadelta": [_LR_NUMEL, _LR, (lambda v: not 0.0 <= v["rho"] <= 1.0, ValueError, "Invalid rho value: {rho}"),
                 _EPS, _WD],
    "Adagrad": [_LR_NUMEL, _LR, (_at_least("lr_decay"), ValueError, "Invalid lr_decay value: {lr_decay}"), _WD,
                (_at_least("initial_accumulator_value"), ValueError,
                 "Invalid initial_accumulator_value value: {initial_accumulator_value}"),
                _EPS, *_FUSED],
    "Adamax": [_LR_NUMEL, _LR, _EPS, *_BETAS, _WD],
    "ASGD": [_LR_NUMEL, _LR, _WD],
    "NAdam": [_LR_NUMEL, _LR, _EPS, *_BETAS, _WD,
              (_at_least("momentum_decay"), ValueError, "Invalid momentum_decay value: {momentum_decay}")],
    "RAdam": [_LR_NUMEL, _LR, _EPS, *_BETAS, _WD],
    "RMSprop": [_LR_NUMEL, _LR, _EPS, (_at_least("momentum"), ValueError, "Invalid momentum value: {momentum}"),
                _WD, (_at_least("alpha"), ValueError, "Invalid alpha value: {alpha}")],
    "Rprop": [_LR_NUMEL, _LR, (lambda v: not 0.0 < v["etas"][0] < 1.0 < v["etas"][1], ValueError,
                               "Invalid eta values: {etas[0]}, {etas[1]}")],
    "SGD": [_LR_NUMEL, (lambda v: v["lr"] < 0.0, ValueError, "Invalid learning rate: {lr}"),
            (lambda v: v["momentum"] < 0.0, ValueError, "Invalid momentum value: {momentum}"),
            (lambda v: v["weight_decay"] < 0.0, ValueError, "Invalid weight_decay value: {weight_decay}"),
            (lambda v: v["nesterov"] and (v["momentum"] <= 0 or v["dampening"] != 0), ValueError,
             "Nesterov momentum requires a momentum and zero dampening"),
            *_FUSED],
    "SparseAdam": [_LR_NUMEL, (lambda v: not 0.0 < v["lr"], ValueError, "Invalid learning rate: {lr}"),
                   (lambda v: not 0.0 < v["eps"], ValueError, "Invalid epsilon value: {eps}"), *_BETAS],
    "Muon": [_LR_NUMEL, (_at_least("lr"), ValueError, "Learning rate should be >= 0 but is: {lr}"),
             (_at_least("momentum"), ValueError, "momentum should be >= 0 but is: {momentum}"),
             (_at_least("weight_decay"), ValueError, "weight decay should be >= 0 but is: {weight_decay}"),
             (lambda v: v["adjust_lr_fn"] is not None and v["adjust_lr_fn"] not in ("original", "match_rms_adamw"),
              ValueError, "Adjust learning rate function {adjust_lr_fn} is not supported")],
    "Adafactor": [_LR_NUMEL, (_at_least("lr"), ValueError, "Learning rate should be >= 0 but is: {lr}"),
                  (lambda v: not 0.0 >= v["beta2_decay"], ValueError, "beta2_decay should be <= 0 but is: {beta2_decay}"),
                  (lambda v: v["eps"][0] is not None and not 0.0 <= v["eps"][0], ValueError,
                   "epsilon1 should be >= 0 but is: {eps[0]}"),
                  (lambda v: not 0.0 <= v["eps"][1], ValueError, "epsilon2 should be >= 0 but is: {eps[1]}"),
                  (lambda v: not 1.0 <= v["d"], ValueError, "Clipping threshold d should be >= 1 but is: {d}"),
                  (_at_least("weight_decay"), ValueError, "weight_decay should be >= 0 but is: {weight_decay}")],
}


def _sparse_adam_group(group_index, params):
    sparse = [[group_index, k] for k, p in enumerate(params) if p.is_sparse]
    if sparse:
        raise ValueError(f"Sparse params at indices {sparse}: SparseAdam requires dense parameter tensors")
    complex_ = [[group_index, k] for k, p in enumerate(params) if p.is_complex()]
    if complex_:
        raise ValueError(f"Complex params at indices {complex_}: SparseAdam does not support complex parameters")


def _muon_group(group_index, params):
    for p in params:
        if p.ndim != 2:
            raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: {p.size()}")


# class name -> check of a group's parameters (group index, tensors), as torch's constructor
# makes it after adding the groups (here for every group added, in add_param_group too)
PARAMETER = {"SparseAdam": _sparse_adam_group, "Muon": _muon_group}

# class name -> message of the RuntimeError torch's step raises for a complex parameter
STEP_COMPLEX = {"Muon": "Muon does not support complex parameters",
                "Adafactor": "Adafactor does not support complex parameters"}


def check_constructor(name, values):
    """Raise what torch.optim.<name>'s constructor raises for these values (nothing for a
    class torch.optim lacks); a check that fails to evaluate (a string where torch compares
    numbers) is left to optforge's validation, which names the argument."""
    for test, error, message in CONSTRUCTOR.get(name, ()):
        try:
            failed = bool(test(values))
        except (TypeError, ValueError, IndexError, KeyError, RuntimeError):
            continue
        if failed:
            raise error(message.format(**values))


def check_parameters(name, group_index, params):
    check = PARAMETER.get(name)
    if check is not None:
        check(group_index, params)
