"""One rank of the torch.distributed tests (test_torch_distributed.py starts two).

    python torch_distributed_worker.py RANK WORLD PORT OUT

Trains the model of `build()` on this rank's half of the batch of `data()` with gloo on
127.0.0.1, three ways in turn, and saves what the tests compare (torch.save to OUT):
DDP + optforge.torch.AdamW; DDP + ZeroRedundancyOptimizer over optforge.torch.AdamW (state
dict consolidated on rank 0); FSDP2 fully_shard + optforge.torch.AdamW, and the rules with
norms (NORM_RULES) on a model whose shards are uneven; ZeroRedundancyOptimizer over the
rules with group reductions (GROUP_RULES, zero_groups).
"""
import copy
import datetime
import sys

import torch
import torch.distributed as dist

STEPS = 5
LR, WD = 0.02, 0.05


def data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    return x, y


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()


# rules reading whole-tensor norms, with settings that exercise their norms (LARS: momentum,
# a trust coefficient; LAMB: a bound on the weight norm)
NORM_RULES = {"LAMB": {"upper_bound": 0.9}, "LARS": {"momentum": 0.9, "eta": 0.01}, "LANS": {},
              "NovoGrad": {}, "CAdamW": {}}


def build_odd():
    """A model whose dimensions do not split evenly over two ranks (7 rows: 4 and 3; 3: 2 and 1)."""
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()


def data_odd():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64) * 2
    y = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    return x, y


def norm_rule(name, params):
    import optforge.torch as ot
    return getattr(ot, name)(params, lr=LR, weight_decay=WD, **NORM_RULES[name])


def train_changing_lr(model, opt, x, y):
    """train(), with the learning rate halved after two steps (as a scheduler would)."""
    for step in range(STEPS):
        if step == 2:
            for group in opt.param_groups:
                group["lr"] = LR / 2
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def train(model, opt, x, y):
    for _ in range(STEPS):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _shard(x, y, rank, world):
    half = x.shape[0] // world
    return x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]


def ddp(rank, world, zero):
    import optforge.torch as ot
    from torch.distributed.optim import ZeroRedundancyOptimizer
    model = torch.nn.parallel.DistributedDataParallel(build())
    if zero:
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=ot.AdamW, lr=LR, weight_decay=WD)
        assert isinstance(opt.optim, ot.AdamW)
    else:
        opt = ot.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    train(model, opt, *_shard(*data(), rank, world))
    result = {"weights": {k: v.detach().clone() for k, v in model.module.state_dict().items()}}
    if zero:
        result["local_states"] = len(opt.optim.state)
        opt.consolidate_state_dict(to=0)
        if rank == 0:
            result["state_dict"] = opt.state_dict()
    return result


def fsdp(rank, world):
    """FSDP2: every Linear and the model sharded (Shard(0) DTensors on the CPU with gloo);
    optforge.torch.AdamW updates each rank's shards; the rules with norms update them too,
    their norms all-reduced over the shards (gathers counted: none expected)."""
    import optforge.torch as ot
    from optforge.torch import tensors
    from torch.distributed.fsdp import fully_shard

    def sharded(build=build):
        model = build()
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer)
        return fully_shard(model)

    model = sharded()
    opt = ot.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    train(model, opt, *_shard(*data(), rank, world))
    state = opt.state[next(iter(model.parameters()))]
    result = {"weights": {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()},
              "state_is_dtensor": type(state["exp_avg"]).__name__ == "DTensor",
              "exp_avg": state["exp_avg"].full_tensor().clone()}
    gathers = []
    keep_shard = tensors.keep_shard
    tensors.keep_shard = lambda full, target: gathers.append(1) or keep_shard(full, target)
    result["norm_rules"] = {}
    for name in NORM_RULES:
        model = sharded(build_odd)
        opt = norm_rule(name, model.parameters())
        train_changing_lr(model, opt, *_shard(*data_odd(), rank, world))
        result["norm_rules"][name] = {
            "weights": {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()},
            "states": [{k: v.full_tensor().clone() if type(v).__name__ == "DTensor" else v.clone()
                        for k, v in opt.state[p].items()} for p in model.parameters()],
            "local_rows": [p.to_local().shape[0] for p in model.parameters()]}
    # a rule with group reductions: d estimated from every rank's shards (all-reduced)
    model = sharded(build_odd)
    opt = ot.Prodigy(model.parameters(), lr=1.0, weight_decay=WD, d0=1e-3)
    train_changing_lr(model, opt, *_shard(*data_odd(), rank, world))
    result["prodigy"] = {"weights": {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()},
                         "d": opt.param_groups[0]["d"]}
    result["gathers"] = len(gathers)
    # the gathering path, which rules without a shard-local form take: LAMB made to take it
    from optforge.torch import shards
    reduces_norms, shards.reduces_norms = shards.reduces_norms, lambda module: False
    model = sharded(build_odd)
    train_changing_lr(model, norm_rule("LAMB", model.parameters()), *_shard(*data_odd(), rank, world))
    shards.reduces_norms, tensors.keep_shard = reduces_norms, keep_shard
    result["gathered_lamb"] = {"weights": {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()},
                               "gathers": len(gathers) - result["gathers"]}
    return result


# rules with group reductions under ZeroRedundancyOptimizer (zero_groups): Prodigy's d and
# ClippedAdamW's global norm (max_norm below the gradients' norm: the clipping acts)
GROUP_RULES = {"Prodigy": {"lr": 1.0, "d0": 1e-3}, "ClippedAdamW": {"lr": LR, "max_norm": 0.05}}


def group_rule(name, params, **keywords):
    return _rule(name)(params, weight_decay=WD, **GROUP_RULES[name], **keywords)


def odd_groups(model):
    """Two param groups of build_odd()'s model: its first three tensors (weights 7x5 and 3x7,
    bias 7) and its last bias (3) alone. ZeRO's
    partition (largest first, to the rank with the fewest elements so far) gives rank 0 the
    7x5 weight alone and rank 1 the others: rank 0 holds no tensor of the second group."""
    params = list(model.parameters())
    return [{"params": params[:3]}, {"params": params[3:]}]


def zero_groups(rank, world):
    """GROUP_RULES under ZeroRedundancyOptimizer (DDP averaging the gradients) with
    group_all_reduce=True: weights, group states and the partition; without it (each rank's
    group values over its partition alone); and a state dict consolidated on rank 0, loaded
    on every rank into a new ZeroRedundancyOptimizer that steps once more."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    def run(name, steps=STEPS, state=None, weights=None, **keywords):
        model = build_odd()
        if weights is not None:
            model.load_state_dict(weights)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = ZeroRedundancyOptimizer(odd_groups(ddp.module), optimizer_class=_rule(name),
                                      weight_decay=WD, **GROUP_RULES[name], **keywords)
        if state is not None:
            opt.load_state_dict(copy.deepcopy(state))     # (ZeRO clears the other ranks' states in it)
        x, y = _shard(*data_odd(), rank, world)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(ddp(x), y).backward()
            opt.step()
        return model, opt

    def summary(model, opt):
        return {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "groups": [{k: v for k, v in g.items() if k in ("d", "d_max", "d_numerator")}
                           for g in opt.param_groups],
                "local": [len(g["params"]) for g in opt.optim.param_groups]}

    out = {}
    for name in GROUP_RULES:
        model, opt = run(name, group_all_reduce=True)
        result = summary(model, opt)
        result["without"] = summary(*run(name))
        opt.consolidate_state_dict(to=0)
        state = [opt.state_dict() if rank == 0 else None]
        dist.broadcast_object_list(state, src=0)
        result["state_dict"] = state[0]
        resumed = run(name, steps=1, state=state[0], weights=result["weights"], group_all_reduce=True)
        result["resumed"] = summary(*resumed)
        out[name] = result
    return out


def _rule(name):
    import optforge.torch as ot
    return getattr(ot, name)


def main(rank, world, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        result = {"ddp": ddp(rank, world, zero=False), "zero": ddp(rank, world, zero=True),
                  "fsdp": fsdp(rank, world), "zero_groups": zero_groups(rank, world)}
        torch.save(result, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    rank, world, port, out = sys.argv[1:]
    main(int(rank), int(world), int(port), out)
