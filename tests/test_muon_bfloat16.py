"""Muon's ns_dtype="bfloat16": torch.optim.Muon's bfloat16 Newton-Schulz iteration on torch tensors."""
import numpy
import pytest

torch = pytest.importorskip("torch")

import optforge  # noqa: E402
import optforge.optim  # noqa: E402
import optforge.torch  # noqa: E402

SHAPES = [(64, 32), (32, 96), (48, 48)]     # tall (through the transpose), wide, square


def _run(make, steps=6, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in SHAPES]
    opt = make(params)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 0.02 * (step + 1) / 3          # a changing lr (a scheduler's)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)  # signed data
        opt.step()
    return [p.detach() for p in params], opt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("settings", [{}, {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3,
                                           "momentum": 0.9}])
def test_equal_to_torch_muon_within_bfloat16_rounding(dtype, settings):
    kwargs = dict(dict(lr=0.02, weight_decay=0.1, momentum=0.95), **settings)
    theirs, _ = _run(lambda ps: torch.optim.Muon(ps, **kwargs), dtype=dtype)
    ours, _ = _run(lambda ps: optforge.torch.Muon(ps, ns_dtype="bfloat16", **kwargs), dtype=dtype)
    plain, _ = _run(lambda ps: optforge.torch.Muon(ps, **kwargs), dtype=dtype)
    for t, o, f in zip(theirs, ours, plain):
        # The same operations as torch's (bfloat16 products and addmm, update and norm
        # rounded to bfloat16 before the division) give the same bfloat16 update but where
        # a float32 value torch computes in another order (the Nesterov lerp from the other
        # end, the weight decay as w - lr wd w) rounds differently and flips one bfloat16
        # rounding: an element then moves by one bfloat16 step of the
        # update (2^-8 of its magnitude, <= 1) times lr (<= 0.04), and the Newton-Schulz
        # iteration spreads that over the matrix in the next steps. 2e-3 allows a few such
        # flips over 6 steps. match_rms_adamw scales the update by 0.2 sqrt(max(rows, cols))
        # (<= 2 here): the same bound holds with the flips' steps twice as large.
        diff = (t - o).abs()
        assert diff.max().item() < 2e-3
        # and the float32 iteration is measurably farther: the test tells the modes apart
        assert (t - f).abs().mean().item() > 3 * diff.mean().item()


def test_state_dict_keeps_torch_keys_unless_given():
    _, opt = _run(lambda ps: optforge.torch.Muon(ps), steps=1)
    assert "ns_dtype" not in opt.state_dict()["param_groups"][0]
    _, opt = _run(lambda ps: optforge.torch.Muon(ps, ns_dtype="bfloat16"), steps=1)
    assert opt.state_dict()["param_groups"][0]["ns_dtype"] == "bfloat16"


@pytest.mark.parametrize("value", ["float16", "bf16", 16, True])
def test_bad_values_name_the_rule(value):
    p = torch.zeros(4, 4, requires_grad=True)
    with pytest.raises(ValueError, match="ns_dtype"):
        optforge.torch.Muon([p], ns_dtype=value)


def test_numpy_families_refuse_bfloat16():
    w = numpy.zeros((4, 4), numpy.float32)
    with pytest.raises(ValueError, match="only optforge.torch.Muon takes it"):
        optforge.create("muon", flavor="torch", ns_dtype="bfloat16")
    with pytest.raises(ValueError, match="only optforge.torch.Muon takes it"):
        optforge.optim.Muon([w], ns_dtype="bfloat16")
    opt = optforge.create("muon", flavor="torch")
    with pytest.raises(ValueError, match="only optforge.torch.Muon takes it"):
        opt.ns_dtype = "bfloat16"
    assert opt.ns_dtype is None


def test_master_weights_refused_with_bfloat16_products():
    p = torch.zeros(4, 4, dtype=torch.bfloat16, requires_grad=True)
    with pytest.raises(ValueError, match="master_weights"):
        optforge.torch.Muon([p], ns_dtype="bfloat16", master_weights=True)


def test_products_evaluate_every_output_before_writing_one():
    # the generated kernels write their outputs at the end; an output that reads another's
    # input (state = 2 * weight, the old weight) must not see that input's new value
    from optforge.torch.torch_matrix import Products
    w, st = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])
    xp = Products(torch.bfloat16)
    new_w = xp.subtract(w, xp.multiply(st, 0.5))
    new_st = xp.multiply(w, 2.0)
    xp.copyto(w, xp.broadcast_to(new_w, (1, 2)).reshape((1, 2)))
    xp.copyto(st, new_st)
    xp.write()
    assert w.tolist() == [[-0.5, 0.0]] and st.tolist() == [[2.0, 4.0]]
