"""optforge.torch's torch-native path (torch_frontend/torch_native.py): the rule's generated
array code run with torch operations, so that autograd differentiates through a step
(`differentiable=True`)."""
import pytest

torch = pytest.importorskip("torch")

import optforge.torch as ot  # noqa: E402

ELEMENTWISE = [("Adam", {}), ("Adam", {"amsgrad": True, "weight_decay": 0.1}), ("AdamW", {}),
               ("SGD", {"momentum": 0.9, "nesterov": True}), ("SGD", {"momentum": 0.9, "dampening": 0.1}),
               ("RMSprop", {"centered": True, "momentum": 0.5}), ("Adagrad", {"lr_decay": 0.01}),
               ("NAdam", {}), ("RAdam", {"decoupled_weight_decay": True, "weight_decay": 0.1}),
               ("Adamax", {}), ("Adadelta", {}), ("ASGD", {"t0": 1.0}), ("Rprop", {}), ("Lion", {})]


def _two_steps(name, kwargs, p0, g0, differentiable=True):
    """Two steps from p0 (cloned: torch's differentiable steps write a non-leaf in place)
    with gradients g0 and 2 g0; the parameter and the flat states after them."""
    p = p0.clone()
    opt = getattr(ot, name)([p], differentiable=differentiable, **kwargs)
    for k in (1.0, 2.0):
        p.grad = g0 * k
        opt.step()
    states = [v for key, v in sorted(opt.state[p].items()) if torch.is_tensor(v) and v.dim() and key != "step"]
    return (p, *states)


@pytest.mark.parametrize("name,kwargs", ELEMENTWISE, ids=[f"{n}-{k}" for n, k in ELEMENTWISE])
def test_gradients_through_two_steps_equal_finite_differences(name, kwargs):
    """autograd's derivatives of the parameter and states after two steps, with respect to
    the starting parameter and the gradient, equal central finite differences
    (torch.autograd.gradcheck: float64, eps 1e-6, atol 1e-5, rtol 1e-3, its defaults);
    Rprop's and Lion's updates are piecewise constant in the gradient (signs), their
    derivatives 0 almost everywhere, which the finite differences see too."""
    gen = torch.Generator().manual_seed(3)
    p0 = torch.randn(6, dtype=torch.float64, generator=gen).requires_grad_()
    g0 = torch.randn(6, dtype=torch.float64, generator=gen).requires_grad_()
    torch.autograd.gradcheck(lambda p, g: _two_steps(name, kwargs, p, g), (p0, g0))


@pytest.mark.parametrize("name,kwargs", ELEMENTWISE, ids=[f"{n}-{k}" for n, k in ELEMENTWISE])
def test_differentiable_steps_equal_the_native_steps(name, kwargs):
    """The values are those of the native kernels (float64; 1e-12: the same operations in
    the same order, one copy of each result into place)."""
    gen = torch.Generator().manual_seed(4)
    p0 = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    g0 = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        native = _two_steps(name, kwargs, p0, g0, differentiable=False)
    ours = _two_steps(name, kwargs, p0, g0)
    torch.testing.assert_close([t.detach() for t in ours], list(native), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad", "NAdam", "RAdam", "Adadelta", "ASGD"])
def test_gradients_through_a_step_equal_torch_optims(name):
    """d(loss after two steps)/d(start, gradient) as torch.optim's differentiable class gives
    it (float64; rtol 1e-6: torch computes its bias corrections from the float32 step
    tensor in its differentiable path, optforge from the count in float64)."""
    results = []
    for cls in (getattr(torch.optim, name), getattr(ot, name)):
        gen = torch.Generator().manual_seed(5)
        p0 = torch.randn(5, dtype=torch.float64, generator=gen).requires_grad_()
        g0 = torch.randn(5, dtype=torch.float64, generator=gen).requires_grad_()
        p = p0.clone()
        opt = cls([p], differentiable=True)
        for k in (1.0, 2.0):
            p.grad = g0 * k
            opt.step()
        loss = (p * torch.arange(5.0, dtype=torch.float64)).sum()
        results.append((p.detach(), *torch.autograd.grad(loss, (p0, g0))))
    torch.testing.assert_close(results[1], results[0], rtol=1e-6, atol=1e-9)


def test_differentiable_is_refused_by_rules_with_reductions_and_leaf_writes_raise_as_torchs():
    w = torch.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="does not support differentiable=True: its rule is not element-wise"):
        ot.LAMB([w], differentiable=True)
    with pytest.raises(ValueError, match="differentiable=True with master_weights=True"):
        ot.Adam([w], differentiable=True, master_weights=True)
    # a leaf that requires grad cannot be written in place under autograd, as in torch
    for cls in (torch.optim.Adam, ot.Adam):
        leaf = torch.randn(3, requires_grad=True)
        opt = cls([leaf], differentiable=True)
        leaf.grad = torch.ones(3)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            opt.step()


def test_a_complex_parameter_steps_differentiably_as_its_real_view():
    gen = torch.Generator().manual_seed(6)
    c0 = torch.randn(3, dtype=torch.complex128, generator=gen).requires_grad_()
    g = torch.randn(3, dtype=torch.complex128, generator=gen)
    r0 = torch.view_as_real(c0.detach()).clone().requires_grad_()
    outs = []
    for start, grad in ((c0, g), (r0, torch.view_as_real(g))):
        p = start.clone()
        opt = ot.Adam([p], differentiable=True, lr=0.1)
        p.grad = grad.clone()
        opt.step()
        value = torch.view_as_real(p) if p.is_complex() else p
        (d,) = torch.autograd.grad((value * 1.5).sum(), start)
        outs.append((value.detach(), torch.view_as_real(d) if d.is_complex() else d))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "NAdam", "RAdam", "Adagrad", "RMSprop", "Adadelta",
                                  "Adamax", "Rprop"])
def test_meta_parameters_build_and_step_with_torchs_state_layout(name):
    """Over meta parameters (a model built on the meta device) the optimizer is built and
    steps as torch.optim's: the states are meta tensors of torch's dtypes and shapes, the
    counts CPU tensors; nothing is allocated for the parameters' values."""
    kwargs = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    layouts = []
    for cls in (getattr(torch.optim, name), getattr(ot, name)):
        with torch.device("meta"):
            model = torch.nn.Linear(4, 3)
        opt = cls(model.parameters(), lr=0.1, **kwargs)
        for _ in range(2):
            for p in model.parameters():
                p.grad = torch.empty_like(p)
            opt.step()
        layouts.append({k: (v.device.type, v.dtype, tuple(v.shape)) if torch.is_tensor(v) else type(v)
                        for k, v in opt.state[model.weight].items()})
    assert layouts[1] == layouts[0]


def test_meta_parameters_of_rules_with_reductions_are_refused_at_the_step():
    with torch.device("meta"):
        model = torch.nn.Linear(4, 3)
    opt = ot.LAMB(model.parameters())
    for p in model.parameters():
        p.grad = torch.empty_like(p)
    with pytest.raises(TypeError, match="meta parameters step on torch operations"):
        opt.step()
    assert len(opt.state) == 0


def _differentiable_classes():
    out = []
    for name, cls in sorted(ot.classes().items()):
        try:
            cls([torch.zeros(2, requires_grad=True)], differentiable=True)
        except ValueError:
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("name", _differentiable_classes())
def test_every_class_that_takes_differentiable_steps_as_its_native_kernels(name):
    """Every class that takes differentiable=True (its defaults): three steps equal the
    native kernels' (float64, 1e-12: the same operations; DCASGD's prev_weight, a copy of
    the weight, must not follow the weight's later in-place update)."""
    gen = torch.Generator().manual_seed(12)
    p0 = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    grads = [torch.randn(4, 3, dtype=torch.float64, generator=gen) for _ in range(3)]
    results = []
    for differentiable in (False, True):
        p = p0.clone().requires_grad_()
        if differentiable:
            p = p.clone()
        opt = getattr(ot, name)([p], differentiable=differentiable)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        results.append([p.detach()] + [v.detach() for k, v in sorted(opt.state[p].items())
                                       if torch.is_tensor(v) and k != "step"])
    torch.testing.assert_close(results[1], results[0], rtol=1e-12, atol=1e-14)


def test_the_element_wise_rules_take_differentiable():
    """The rules with reductions, noise or modes refuse it; the element-wise ones (every
    torch.optim twin but Muon, Adafactor) take it."""
    taking = set(_differentiable_classes())
    assert {"Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD",
            "Rprop", "Lion", "DCASGD"} <= taking
    assert not {"LAMB", "Muon", "Adafactor", "SGLD", "ScheduleFreeAdamW"} & taking
