"""optforge.torch inside torch.compile: the step is one custom op (`optforge::step`,
torch_frontend/compiled.py), so a compiled function calling opt.step() traces without a
graph break (fullgraph=True) and runs the same native kernels as an eager step."""
import pytest

torch = pytest.importorskip("torch")

import optforge.torch as ot  # noqa: E402
from torch._dynamo.testing import CompileCounter  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _pair(name, kwargs):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(64, 32, generator=gen), torch.randn(32, generator=gen), torch.randn(7, generator=gen)]
    sides = []
    for _ in range(2):
        params = [p.clone().requires_grad_() for p in start]
        sides.append((params, getattr(ot, name)(params, lr=0.01, **kwargs)))
    return sides, gen


@pytest.mark.parametrize("name,kwargs", [("Adam", {}), ("SGD", {"momentum": 0.9}), ("LAMB", {}),
                                         ("NAdam", {"weight_decay": 0.1})])
def test_a_fullgraph_compiled_step_equals_the_eager_step(name, kwargs):
    """Bit for bit: the compiled graph calls the eager step's kernels. One parameter lacks a
    gradient at the third step; after the first steps (no states, then states and a kept
    launch) the function is not compiled again."""
    (eager, eager_opt), (comp, comp_opt) = _pair(name, kwargs)[0]
    gen = torch.Generator().manual_seed(1)
    counter = CompileCounter()

    @torch.compile(backend=counter, fullgraph=True)
    def step():
        comp_opt.step()

    for k in range(6):
        grads = [torch.randn(p.shape, generator=gen) for p in eager]
        for p, q, g in zip(eager, comp, grads):
            p.grad, q.grad = (None, None) if (k == 2 and p is eager[2]) else (g.clone(), g.clone())
        eager_opt.step()
        step()
        for p, q in zip(eager, comp):
            assert torch.equal(p, q)
        if k == 3:
            frames = counter.frame_count
    assert counter.frame_count == frames    # steps 5 and 6: no new graph
    assert all(torch.equal(v, comp_opt.state[q][key]) for p, q in zip(eager, comp)
               for key, v in eager_opt.state[p].items() if torch.is_tensor(v))


def test_inductor_compiles_a_training_step_with_the_optimizer():
    """The default backend (Inductor) over forward, backward and step: the same weights as
    the eager loop (float32; rtol 1e-5: Inductor's fused forward and backward round
    differently than eager's, the steps are the same kernels)."""
    results = []
    for compiled in (False, True):
        torch.manual_seed(2)
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        opt = ot.AdamW(model.parameters(), lr=0.01)
        x, y = torch.randn(64, 16), torch.randn(64, 1)

        def train_step():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        run = torch.compile(train_step) if compiled else train_step
        for _ in range(5):
            run()
        results.append([p.detach().clone() for p in model.parameters()])
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)


def test_a_copied_optimizer_steps_itself_under_compile():
    import copy
    (params, opt), _ = _pair("Adam", {})[0]
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    clone = copy.deepcopy(opt)
    assert clone._compile_handle != opt._compile_handle
    theirs = [p for group in clone.param_groups for p in group["params"]]
    before = [p.detach().clone() for p in params]
    for p in theirs:
        p.grad = torch.ones_like(p)
    torch.compile(lambda: clone.step(), fullgraph=True, backend="eager")()
    assert all(torch.equal(p, b) for p, b in zip(params, before))     # the original did not move
    assert not any(torch.equal(p, b) for p, b in zip(theirs, before))


def test_grad_scaler_with_fused_steps_eagerly_inside_a_compiled_function():
    """GradScaler's fused contract (grad_scale, found_inf) under torch.compile: the step
    breaks the graph and runs eagerly, the same as without compile (bit for bit), an
    overflowing step skipped."""
    results = []
    for compiled in (False, True):
        torch.manual_seed(3)
        model = torch.nn.Linear(8, 4)
        opt = ot.Adam(model.parameters(), lr=0.01, fused=True)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        x = torch.randn(3, 8)
        step = torch.compile(lambda: scaler.step(opt)) if compiled else (lambda: scaler.step(opt))
        for k in range(4):
            opt.zero_grad()
            scaler.scale(model(x).sum() * (float("inf") if k == 2 else 1.0)).backward()
            step()
            scaler.update()
        results.append(([p.detach().clone() for p in model.parameters()], float(opt.state[model.weight]["step"])))
    assert results[1][1] == results[0][1] == 3.0      # the overflowing step skipped
    for a, b in zip(results[0][0], results[1][0]):
        assert torch.equal(a, b)


def test_a_differentiable_step_inside_a_compiled_function_keeps_its_gradients():
    """differentiable=True under torch.compile: the step breaks the graph and runs eagerly
    on the torch-native path, so autograd sees it: the same values and gradients as
    without compile (float64, bit for bit: the same eager operations)."""
    results = []
    for compiled in (False, True):
        torch._dynamo.reset()
        gen = torch.Generator().manual_seed(4)
        p0 = torch.randn(5, dtype=torch.float64, generator=gen).requires_grad_()
        g0 = torch.randn(5, dtype=torch.float64, generator=gen).requires_grad_()
        p = p0.clone()
        opt = ot.Adam([p], differentiable=True, lr=0.1)

        def step():
            p.grad = g0 * 1.0
            opt.step()

        run = torch.compile(step, backend="eager") if compiled else step
        for _ in range(2):
            run()
        results.append((p.detach().clone(), *torch.autograd.grad(p.sum(), (p0, g0))))
    for a, b in zip(*results):
        assert torch.equal(a, b)
