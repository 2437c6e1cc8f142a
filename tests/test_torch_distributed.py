"""optforge.torch under torch.distributed: two processes with gloo on 127.0.0.1 (a free
port, a 120 s bound, killed if they overrun) against one process on the whole batch.

float64 throughout: DDP averages the two half-batch gradients, which equals the gradient
of the whole batch up to summation order (~1e-16 relative), so the weights agree to rtol
1e-9 after 5 AdamW steps.
"""
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import optforge.torch as ot  # noqa: E402
import torch_distributed_worker as worker  # noqa: E402

WORKER = Path(__file__).with_name("torch_distributed_worker.py")
TIMEOUT = 120


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Both ranks' results (one pair of processes for all the tests here)."""
    tmp, world, port = tmp_path_factory.mktemp("dist"), 2, _free_port()
    outs = [tmp / f"rank{rank}.pt" for rank in range(world)]
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(rank), str(world), str(port), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for rank, out in enumerate(outs)]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=TIMEOUT)[0].decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)
    return [torch.load(out, weights_only=True) for out in outs]


def _single_process():
    model = worker.build()
    opt = ot.AdamW(model.parameters(), lr=worker.LR, weight_decay=worker.WD)
    worker.train(model, opt, *worker.data())
    return model, opt


def _assert_weights(weights, model):
    for name, value in model.state_dict().items():
        torch.testing.assert_close(weights[name], value, rtol=1e-9, atol=1e-12, msg=name)


def test_ddp_matches_one_process_on_the_whole_batch(ranks):
    model, _ = _single_process()
    for result in ranks:
        _assert_weights(result["ddp"]["weights"], model)
    assert not torch.equal(model[0].weight, worker.build()[0].weight)


def test_zero_redundancy_optimizer_trains_and_consolidates(ranks):
    model, opt = _single_process()
    results = [r["zero"] for r in ranks]
    for result in results:
        _assert_weights(result["weights"], model)
    # each rank kept the states of its shard only; together, all four parameters
    assert [r["local_states"] > 0 for r in results] == [True, True]
    assert sum(r["local_states"] for r in results) == 4
    consolidated = results[0]["state_dict"]
    # the consolidated state dict loads into a plain optforge.torch.AdamW and equals the
    # single process's states
    twin = worker.build()
    plain = ot.AdamW(twin.parameters(), lr=worker.LR, weight_decay=worker.WD)
    plain.load_state_dict(consolidated)
    for p, q in zip(twin.parameters(), model.parameters()):
        assert float(plain.state[p]["step"]) == worker.STEPS
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(plain.state[p][key], opt.state[q][key], rtol=1e-9, atol=1e-14)


def test_fsdp2_shards_match_one_process(ranks):
    """torch 2.13 runs fully_shard on the CPU with gloo. AdamW runs on the local shards and
    gives the single process's weights; its states are DTensors like the parameters."""
    model, opt = _single_process()
    for result in ranks:
        fsdp = result["fsdp"]
        _assert_weights(fsdp["weights"], model)
        assert fsdp["state_is_dtensor"]
        torch.testing.assert_close(fsdp["exp_avg"], opt.state[model[0].weight]["exp_avg"], rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("name", list(worker.NORM_RULES))
def test_fsdp2_rules_with_norms_run_on_shards_and_match_one_process(ranks, name):
    """LAMB, LARS, LANS, NovoGrad and C-AdamW (whose norm counts the mask) on uneven shards
    (rows split 4/3 and 2/1), five steps with the learning rate halved after two, against
    one process on the whole batch. Each rank updates its shards only (no tensor gathered);
    the norms' sums of squares are all-reduced in float64, so they differ from the single
    process's only in summation order (~1e-16 relative in float64): weights and states
    agree to rtol 1e-9."""
    model = worker.build_odd()
    opt = worker.norm_rule(name, model.parameters())
    worker.train_changing_lr(model, opt, *worker.data_odd())
    assert not torch.equal(model[0].weight, worker.build_odd()[0].weight)
    expected_states = [opt.state[p] for p in model.parameters()]
    for rank, result in enumerate(ranks):
        fsdp = result["fsdp"]
        assert fsdp["gathers"] == 0
        run = fsdp["norm_rules"][name]
        assert run["local_rows"] == ([4, 4, 2, 2] if rank == 0 else [3, 3, 1, 1])
        _assert_weights(run["weights"], model)
        for states, expected in zip(run["states"], expected_states):
            assert states.keys() == expected.keys()
            for key, value in expected.items():
                torch.testing.assert_close(states[key], value, rtol=1e-9, atol=1e-14, msg=f"{name} {key}")


def test_fsdp2_group_reductions_are_summed_over_every_rank(ranks):
    """Prodigy on uneven shards: each rank computes its shards' partials (dot(grad, p0 - w),
    sum(|s|)), all-reduced in float64 over the shard groups, so d is the one process's d and
    each rank's update of its shards is the one process's: rtol 1e-9 (float64; the sums
    are added in another order, ~1e-16 relative). No tensor is gathered."""
    model = worker.build_odd()
    opt = ot.Prodigy(model.parameters(), lr=1.0, weight_decay=worker.WD, d0=1e-3)
    worker.train_changing_lr(model, opt, *worker.data_odd())
    assert opt.param_groups[0]["d"] > 1e-3     # d moved: the sums matter
    for result in ranks:
        run = result["fsdp"]["prodigy"]
        assert result["fsdp"]["gathers"] == 0
        assert math.isclose(run["d"], opt.param_groups[0]["d"], rel_tol=1e-9)
        _assert_weights(run["weights"], model)


def test_fsdp2_gathering_path_matches_one_process(ranks):
    """The path of rules without a shard-local form (noise by element position, reductions
    across shards, matrix rules): whole tensors gathered, the rule run on them, each rank's
    shard kept. LAMB made to take it equals one process (float64: rtol 1e-9)."""
    model = worker.build_odd()
    worker.train_changing_lr(model, worker.norm_rule("LAMB", model.parameters()), *worker.data_odd())
    for result in ranks:
        gathered = result["fsdp"]["gathered_lamb"]
        assert gathered["gathers"] == 4 * 3 * worker.STEPS     # parameter, mean, var of 4 tensors per step
        _assert_weights(gathered["weights"], model)


def _group_rule_single(name, steps=worker.STEPS, model=None, opt=None):
    model = model or worker.build_odd()
    opt = opt or worker.group_rule(name, worker.odd_groups(model))
    x, y = worker.data_odd()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model, opt


GROUP_STATES = ("d", "d_max", "d_numerator")


@pytest.mark.parametrize("name", list(worker.GROUP_RULES))
def test_zero_group_values_span_every_rank(ranks, name):
    """Prodigy and ClippedAdamW under ZeroRedundancyOptimizer with group_all_reduce=True:
    each rank's optimizer holds its partition (rank 0: the 7x5 weight; rank 1: the 3x7 weight
    and both biases, the second param group's one tensor among them, so rank 0's part of that
    group is empty and joins the all-reduce with nothing). The partials are all-reduced in
    float64, so d and the global norm are the one process's up to summation order (~1e-16
    relative): weights and group states agree to rtol 1e-9 after five steps, and the group
    states are the same on both ranks. Without the keyword each rank's group values are over
    its partition: the weights differ."""
    model, opt = _group_rule_single(name)
    x, y = worker.data_odd()
    if name == "Prodigy":
        assert all(group["d"] > 10 * 1e-3 for group in opt.param_groups)    # d moved: the sums matter
    else:   # the global norm clipped every step
        grads = [p.grad for p in model.parameters()]
        assert math.sqrt(sum(float(g.norm()) ** 2 for g in grads[:3])) > 2 * worker.GROUP_RULES[name]["max_norm"]
    for rank, result in enumerate(ranks):
        run = result["zero_groups"][name]
        assert run["local"] == ([1, 0] if rank == 0 else [2, 1])
        _assert_weights(run["weights"], model)
        for held, group in zip(run["groups"], opt.param_groups):
            assert held.keys() == {k for k in GROUP_STATES if k in group}
            for key, value in held.items():
                assert math.isclose(value, group[key], rel_tol=1e-9), (rank, key)
        without = run["without"]["weights"]
        assert any(not torch.allclose(without[k], v, rtol=1e-6, atol=0) for k, v in model.state_dict().items())
    assert ranks[0]["zero_groups"][name]["groups"] == ranks[1]["zero_groups"][name]["groups"]


@pytest.mark.parametrize("name", list(worker.GROUP_RULES))
def test_zero_group_states_consolidate_and_load(ranks, name):
    """The state dict consolidated on rank 0 holds the one process's group states (in the
    param groups) and per-parameter states; loaded into a new ZeroRedundancyOptimizer on both
    ranks it steps once more as the one process's sixth step, and so does a plain optimizer
    it is loaded into here (group_all_reduce=True in its groups; no process group in this
    process: this process is every rank)."""
    model, opt = _group_rule_single(name)
    saved = ranks[0]["zero_groups"][name]["state_dict"]
    for held, group in zip(saved["param_groups"], opt.param_groups):
        assert held["group_all_reduce"] is True
        for key in GROUP_STATES:
            if key in group:
                assert math.isclose(held[key], group[key], rel_tol=1e-9)
    twin = worker.build_odd()
    twin.load_state_dict(ranks[0]["zero_groups"][name]["weights"])
    plain = worker.group_rule(name, worker.odd_groups(twin))
    plain.load_state_dict(saved)
    for p, q in zip(twin.parameters(), model.parameters()):
        assert plain.state[p].keys() == opt.state[q].keys()
        for key, value in opt.state[q].items():
            torch.testing.assert_close(plain.state[p][key], value, rtol=1e-9, atol=1e-14, msg=key)
    _group_rule_single(name, 1, model, opt)
    _group_rule_single(name, 1, twin, plain)
    _assert_weights(twin.state_dict(), model)
    for result in ranks:
        _assert_weights(result["zero_groups"][name]["resumed"]["weights"], model)
        for held, group in zip(result["zero_groups"][name]["resumed"]["groups"], opt.param_groups):
            for key, value in held.items():
                assert math.isclose(value, group[key], rel_tol=1e-9)


def test_group_all_reduce_is_checked_before_anything_changes():
    """group_all_reduce: a bool (a ProcessGroup cannot travel in the param groups that
    ZeroRedundancyOptimizer pickles), and True only for rules with group reductions."""
    params = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match="no group reductions"):
        ot.AdamW(params, group_all_reduce=True)
    with pytest.raises(TypeError, match="must be True .* or False"):
        ot.Prodigy(params, group_all_reduce=1)
    opt = ot.Prodigy(params)
    assert "group_all_reduce" not in opt.param_groups[0]     # left out of the groups unless given
    with pytest.raises(TypeError, match="ProcessGroup is not taken"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "group_all_reduce": "world"})
    assert len(opt.param_groups) == 1
