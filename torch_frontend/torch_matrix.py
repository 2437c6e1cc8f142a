"""A matrix rule's generated array code (`kernel_<variant>(xp, weight, grad, *states, **scalars)`)
run on torch tensors with torch operations, its matrix products in a low-precision dtype:
Muon's `ns_dtype="bfloat16"`, torch.optim.Muon's Newton-Schulz iteration.

`Products(dtype)` is the array module the kernel gets. Its arrays are the torch tensors
themselves; the kernel's `copyto` calls are kept and done by `write()` after the kernel
returns, every value evaluated before the first write (the parameter and states are
written in place). Two values stay unevaluated until they are used, so that the kernel's
`s * x + t * matmul(a, b)` runs as torch.optim.Muon runs it, one `torch.addmm(x, a, b,
beta=s, alpha=t)`, and `w - s * x` as one `torch.sub(w, x, alpha=s)`:

    _Scaled(x, s)        s * x (s a Python number)
    _Product(a, b, s)    s * (a @ b), a and b already in the products' dtype

Any other use evaluates them. Products take their operands cast to the products' dtype
and give results in it; every other operation follows torch's type promotion, so the
values computed from a product stay in that dtype (a bfloat16 matrix times a Python
number is bfloat16) and come back to the weight's dtype where they meet it (`w - s * o`:
float32, as `param.add_(update, alpha=-lr)` in torch). Two more rules make the kernel's
operations torch.optim.Muon's: a matrix divided by a whole-tensor value (the normalisation
before the products) is divided in the products' dtype, both rounded to it first, as
torch divides its bfloat16 update by its bfloat16 norm; and the transpose of a Gram matrix
`x x^T` is the matrix itself (the kernel's `a a^T`, a BLAS syrk in NumPy, is torch's
`a a`). There is no optimizer math here: the operations and their order are the
generated kernel's.
"""
import numbers

import torch

DTYPES = {"bfloat16": torch.bfloat16}


class _Scaled:
    __slots__ = ("x", "s")

    def __init__(self, x, s):
        self.x, self.s = x, s


class _Product:
    __slots__ = ("a", "b", "s", "origin", "value", "gram")

    def __init__(self, a, b, s, origin=None, gram=False):
        self.a, self.b, self.s = a, b, s
        self.origin = origin    # the unscaled product this one scales (its value, once evaluated, is reused)
        self.value = None
        self.gram = gram        # a @ a^T: symmetric by construction


def _transposed(b, a):
    """Whether b is a^T (the same memory, the last two axes swapped)."""
    return a.dim() == b.dim() == 2 and b.data_ptr() == a.data_ptr() and b.shape == a.shape[::-1] \
        and b.stride() == a.stride()[::-1]


def _number(x):
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


class Products:
    """NumPy's names as a matrix kernel calls them, on torch tensors, products in `dtype`."""

    float32 = torch.float32

    def __init__(self, dtype):
        self.dtype = dtype
        self._cast = (None, None)     # (tensor, its cast): an operand is often cast twice in a row
        self._writes = []             # the kernel's copyto calls, done by write()

    # -- evaluation ------------------------------------------------------------------
    def _value(self, x):
        if isinstance(x, _Product):
            x = self._resolved(x)
        if isinstance(x, _Scaled):
            return x.x if x.s == 1 else x.x * x.s
        if isinstance(x, _Product):     # evaluated once: a kernel may read a product several times
            if x.value is None:
                out = torch.matmul(x.a, x.b)
                x.value = out if x.s == 1 else out.mul_(x.s)
            return x.value
        return x

    @staticmethod
    def _resolved(p):
        """A scaled product whose unscaled product has been evaluated since: that value scaled
        (the product is not computed twice)."""
        if p.origin is not None and p.origin.value is not None:
            return _Scaled(p.origin.value, p.s)
        return p

    def _low(self, x):
        """x in the products' dtype (the last cast kept: x x^T and b x read the same x)."""
        x = self._value(x)
        if x.dtype == self.dtype:
            return x
        if self._cast[0] is x:
            return self._cast[1]
        low = x.to(self.dtype)
        self._cast = (x, low)
        return low

    # -- matrix operations -----------------------------------------------------------
    def matmul(self, a, b):
        a, b = self._low(a), self._low(b)
        return _Product(a, b, 1, gram=_transposed(b, a))

    def swapaxes(self, x, a, b):
        if isinstance(x, _Product) and x.gram and x.s == 1:
            # the transpose of a Gram matrix x x^T is itself: the kernel's s s^T (a BLAS syrk
            # in NumPy) is s s here, as torch.optim.Muon writes it (a transposed operand also
            # takes a slow path in torch's small bfloat16 addmm)
            return self._value(x)
        return self._value(x).transpose(a, b)

    # -- element-wise operations -------------------------------------------------------
    def multiply(self, a, b, out=None):
        if _number(a):
            a, b = b, a
        if _number(b):
            if isinstance(a, _Product) and a.s == 1 and a.value is None:
                return _Product(a.a, a.b, b, a)
            return _Scaled(self._value(a), b)
        return self._value(a) * self._value(b)

    def add(self, a, b, out=None):
        a = self._resolved(a) if isinstance(a, _Product) else a
        b = self._resolved(b) if isinstance(b, _Product) else b
        if isinstance(a, _Product):
            a, b = b, a
        if isinstance(b, _Product) and not isinstance(a, _Product) and not _number(a) \
                and self._value(b.a).dim() == 2:
            # s * x + t * (p @ q): torch.addmm, in the products' dtype
            x, s = (a.x, a.s) if isinstance(a, _Scaled) else (a, 1)
            return torch.addmm(self._low(x), b.a, b.b, beta=s, alpha=b.s)
        if isinstance(a, _Scaled) and not isinstance(b, _Scaled):
            a, b = b, a
        if isinstance(b, _Scaled) and not _number(a):
            return torch.add(self._value(a), b.x, alpha=b.s)
        return self._value(a) + self._value(b)

    def subtract(self, a, b, out=None):
        b = self._resolved(b) if isinstance(b, _Product) else b
        if isinstance(b, _Scaled) and not _number(a):
            return torch.sub(self._value(a), b.x, alpha=b.s)
        return self._value(a) - self._value(b)

    def divide(self, a, b, out=None):
        a, b = self._value(a), self._value(b)
        if torch.is_tensor(a) and torch.is_tensor(b) and a.dim() >= 2 and b.dim() == 0:
            # a matrix divided by a whole-tensor value (Muon's normalisation before its products):
            # both rounded to the products' dtype first, as torch.optim.Muon divides its
            # bfloat16 update by the update's norm rounded to bfloat16
            return self._low(a) / b.to(self.dtype)
        return a / b

    def maximum(self, a, b, out=None):
        if _number(b):
            return torch.clamp(self._value(a), min=b)
        if _number(a):
            return torch.clamp(self._value(b), min=a)
        return torch.maximum(self._value(a), self._value(b))

    def clip(self, a, lo, hi, out=None):
        return torch.clamp(self._value(a), self._value(lo), self._value(hi))

    def sqrt(self, x, out=None):
        return torch.sqrt(self._value(x))

    def square(self, x, out=None, dtype=None):
        x = self._value(x)
        return torch.square(x if dtype is None else x.to(dtype))

    def sum(self, x, dtype=None):
        return torch.sum(self._value(x), dtype=dtype)

    def asarray(self, x, dtype=None):
        x = self._value(x)
        return x if dtype is None else x.to(dtype)

    def promote_types(self, a, b):
        return torch.promote_types(a, b)

    def broadcast_to(self, x, shape):
        return torch.broadcast_to(self._value(x), tuple(shape))

    def array(self, x, dtype=None, copy=True):
        x = self._value(x)
        return x.to(dtype=dtype, copy=True)

    def copyto(self, dst, src, where=None, casting=None):
        # evaluated now (it may read an input a later copyto writes), written by write()
        src = self._value(src)
        if where is not None:
            src = torch.where(self._value(where), src, dst)
        self._writes.append((dst, src))

    def write(self):
        """Write the kernel's outputs (its copyto calls), each value evaluated before any is
        written: an unevaluated `s * weight` read after the weight was written would see the
        new weight."""
        for dst, src in self._writes:
            dst.copy_(src)
        self._writes.clear()


class Launch:
    """An engine Launch planned as for the native kernels (host scalars, checks), run on
    the torch tensors with `Products`: `items` holds each parameter's (param, grad, state
    dict). The parameter and its states are written in place (torch's `copy_`, which
    counts their versions)."""

    def __init__(self, engine, planned_launch, items, dtype):
        self.engine, self.launch, self.items = engine, planned_launch, items
        self.dtype = DTYPES[dtype]

    def run(self):
        states_meta = self.engine.states
        with torch.no_grad():
            for plan, (param, grad, state) in zip(self.launch.planned, self.items):
                if plan is None:     # the rule's skip_if
                    continue
                names = [name for name in plan.variant["states"] if not states_meta[name].host_scalar]
                xp = Products(self.dtype)
                plan.variant["kernel"](xp, param, grad, *[state[name] for name in names], **plan.scalars)
                xp.write()
                for name, value in plan.updates.items():
                    plan.scalar_arrays[name][...] = value
