"""The rule's generated array code (`kernel_<variant>(xp, weight, grad, *states, **scalars)`,
the NumPy reference) run on torch tensors with torch operations, under autograd.

The generated kernels are written against an array module: NumPy's names (`multiply`,
`sqrt`, `clip`, `copyto`, ...), results written into `out=` buffers. `OPS` is such a
module for torch whose functions are functional: each array argument is a `Box` holding a
torch tensor, and `out=box` rebinds the box to the new tensor instead of writing memory,
so autograd records an ordinary graph (no in-place write of a tensor an earlier operation
saved). After the kernel the parameter receives its new value by one `copy_`, as torch's
optimizers update it in place, and the states are replaced (`Launch`); with
`differentiable=True` torch records it all, so gradients flow through a step.

Used by optforge.torch for groups with `differentiable=True` (element-wise rules); the
native kernels stay the path of every other step. The host scalars are planned by the
engine as for any step (float64, from the step count).
"""
import torch


class Box:
    """A kernel's array argument or temporary: the torch tensor it currently stands for."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def ndim(self):
        return self.value.dim()

    @property
    def dtype(self):
        return self.value.dtype


def _t(x):
    return x.value if isinstance(x, Box) else x


def _result(value, out):
    if out is None:
        return Box(value)
    out.value = value.to(out.value.dtype) if value.dtype != out.value.dtype else value
    return out


def _binary(op):
    def apply(a, b, out=None):
        a, b = _t(a), _t(b)
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            a = torch.tensor(a, dtype=torch.float64)     # (two numbers: NumPy gives float64)
        return _result(op(a, b), out)
    return apply


def _unary(op):
    def apply(a, out=None):
        return _result(op(_t(a)), out)
    return apply


class _Ops:
    """NumPy's names as the generated element-wise kernels call them, on Boxes."""

    float32 = torch.float32
    multiply = staticmethod(_binary(torch.mul))
    add = staticmethod(_binary(torch.add))
    subtract = staticmethod(_binary(torch.sub))
    divide = staticmethod(_binary(torch.div))
    maximum = staticmethod(_binary(lambda a, b: torch.maximum(*_tensors(a, b))))
    greater = staticmethod(_binary(torch.gt))
    less = staticmethod(_binary(torch.lt))
    equal = staticmethod(_binary(torch.eq))
    logical_and = staticmethod(_binary(torch.logical_and))
    logical_or = staticmethod(_binary(torch.logical_or))
    sqrt = staticmethod(_unary(torch.sqrt))
    square = staticmethod(_unary(torch.square))
    sign = staticmethod(_unary(torch.sign))
    negative = staticmethod(_unary(torch.neg))
    abs = staticmethod(_unary(torch.abs))
    logical_not = staticmethod(_unary(torch.logical_not))

    @staticmethod
    def clip(a, lo, hi, out=None):
        # NumPy's clip: maximum then minimum, NaN kept (torch.clamp keeps NaN too)
        return _result(torch.clamp(_t(a), _t(lo), _t(hi)), out)

    @staticmethod
    def copyto(dst, src, where=None, casting=None):
        value = _t(src)
        target = dst.value
        if not isinstance(value, torch.Tensor):
            value = torch.tensor(value, dtype=target.dtype, device=target.device)
        # a copy: the source may be an input (DCASGD's prev_weight = weight) that is written
        # in place after the kernel, which would change the state with it
        value = torch.broadcast_to(value.to(target.dtype), target.shape).clone()
        dst.value = value if where is None else torch.where(_t(where), value, target)

    @staticmethod
    def asarray(x, dtype=None):
        x = _t(x)
        return Box(torch.as_tensor(x, dtype=dtype))

    @staticmethod
    def broadcast_to(x, shape):
        return Box(torch.broadcast_to(_t(x), tuple(shape)))

    @staticmethod
    def promote_types(a, b):
        return torch.promote_types(a, b)


def _tensors(a, b):
    """Two operands as tensors (torch.maximum takes no Python number)."""
    like = a if isinstance(a, torch.Tensor) else b
    a = a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=like.dtype, device=like.device)
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=like.dtype, device=like.device)
    return a, b


OPS = _Ops()


def native(tensor):
    """The tensor a kernel takes: a complex one as its view_as_real (element-wise rules
    step real and imaginary parts as torch's optimizers do)."""
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor


class Launch:
    """An engine Launch planned as for the native kernels (host scalars, checks), run on
    the torch tensors instead: `items` holds each parameter's (param, grad, state dict).

    The parameter receives its new value by `copy_` (its identity is the model's); each
    state is replaced by its new tensor in the state dict, not written in place: a state
    the step read may be saved for backward (AMSGrad's maximum saves max_exp_avg_sq), and
    an in-place write would invalidate that graph."""

    def __init__(self, engine, planned_launch, items, differentiable=True):
        self.engine, self.launch, self.items = engine, planned_launch, items
        self.differentiable = differentiable

    def run(self):
        states_meta = self.engine.states
        with torch.set_grad_enabled(self.differentiable):
            for plan, (param, grad, state) in zip(self.launch.planned, self.items):
                if plan is None:     # the rule's skip_if
                    continue
                variant = plan.variant
                names = [name for name in variant["states"] if not states_meta[name].host_scalar]
                weight, *new = run(variant["kernel"], native(param), native(grad),
                                   [native(state[name]) for name in names], plan.scalars)
                param.copy_(torch.view_as_complex(weight) if param.is_complex() else weight)
                for name, value in zip(names, new):
                    old = state[name]
                    state[name] = torch.view_as_complex(value.contiguous()) if old.is_complex() else value
                for name, value in plan.updates.items():
                    plan.scalar_arrays[name][...] = value


def run(kernel, weight, grad, states, scalars):
    """Run one planned element-wise kernel on torch tensors, writing nothing: the new values
    of the weight and of each state, in the dtype each had."""
    boxes = [Box(weight), Box(grad)] + [Box(s) for s in states]
    kernel(OPS, *boxes, **scalars)
    return [box.value.to(target.dtype) for target, box in zip([weight] + list(states), [boxes[0]] + boxes[2:])]
