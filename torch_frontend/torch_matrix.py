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
float32, as `param.add_(update, alpha=-lr)` in torch). `(1 - w) * x + w * y` is one
`torch.lerp`, as torch.optim.Muon's momentum. Two more rules make the kernel's operations
torch.optim.Muon's: a matrix divided by a whole-tensor value (the normalisation
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


class _Axpy:
    """a + s * x, not computed yet: evaluated once (a kernel may read it twice), or written
    straight into the output array it is copied to (`Products.write`)."""
    __slots__ = ("a", "x", "s", "value", "shape", "dtype")

    def __init__(self, a, x, s):
        self.a, self.x, self.s = a, x, s
        self.value = None
        first = a.x if isinstance(a, _Scaled) else a
        self.shape = torch.broadcast_shapes(first.shape, x.shape)
        self.dtype = torch.promote_types(first.dtype, x.dtype)

    def reshape(self, shape):
        """Itself where the shape is its own (the kernel's `.reshape(weight.shape)` of an
        output on the matrix view of a 2-D weight), so that write() can compute it in place."""
        if tuple(shape) != tuple(self.shape):
            raise ValueError(f"reshape of an unevaluated value to {tuple(shape)}, not {tuple(self.shape)}")
        return self


class _Square:
    __slots__ = ("x", "dtype")

    def __init__(self, x, dtype):
        self.x, self.dtype = x, dtype


def _transposed(b, a):
    """Whether b is a^T (the same memory, the last two axes swapped)."""
    return a.dim() == b.dim() == 2 and b.data_ptr() == a.data_ptr() and b.shape == a.shape[::-1] \
        and b.stride() == a.stride()[::-1]


def _overlap(a, b):
    """Whether two tensors may share memory (the same storage)."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _leaves(x):
    """The tensors an unevaluated value reads."""
    if isinstance(x, _Scaled):
        return [x.x]
    if isinstance(x, _Axpy):
        return ([x.value] if x.value is not None else _leaves(x.a) + _leaves(x.x))
    return [x]


def _same_or_apart(a, b):
    """Whether a is b element for element (same memory and layout) or shares no memory with it:
    then an element-wise result may be written into b while a is read."""
    return not _overlap(a, b) or (a.data_ptr() == b.data_ptr() and a.shape == b.shape
                                  and a.stride() == b.stride())


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
        if isinstance(x, _Scaled):      # a new tensor at each use: _axpy may write into it
            return x.x if x.s == 1 else x.x * x.s
        if isinstance(x, _Axpy):
            if x.value is None:
                x.value = self._axpy_value(x, None)
            return x.value
        if isinstance(x, _Square):
            return torch.square(x.x if x.dtype is None else x.x.to(x.dtype))
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
        return self._axpy(a, b, 1)

    def subtract(self, a, b, out=None):
        b = self._resolved(b) if isinstance(b, _Product) else b
        return self._axpy(a, b, -1)

    def _axpy(self, a, b, sign):
        """a + sign * b as an _Axpy of one scaled operand (torch.add with alpha: one pass)."""
        if _number(a) or _number(b):
            return self._value(a) + sign * self._value(b)
        a = self._value(a) if isinstance(a, (_Product, _Square)) else a
        b = self._value(b) if isinstance(b, (_Product, _Square)) else b
        if isinstance(a, _Scaled) and isinstance(b, _Scaled) and sign == 1 and a.s + b.s == 1 \
                and a.x.shape == b.x.shape and a.x.dtype == b.x.dtype:
            # (1 - w) * x + w * y: torch.lerp(x, y, w), as torch.optim.Muon's momentum
            # (buf.lerp_(grad, 1 - momentum)), the smaller weight as lerp's
            x, y = (b.x, a.x) if a.s <= b.s else (a.x, b.x)
            return torch.lerp(x, y, min(a.s, b.s))
        if isinstance(b, _Scaled):
            return _Axpy(a, b.x, sign * b.s)
        if isinstance(a, _Scaled) and sign == 1:
            return _Axpy(b, a.x, a.s)
        return _Axpy(a, self._value(b), sign)

    def _axpy_value(self, p, out):
        a, x = p.a, p.x
        if out is None and isinstance(a, _Scaled) and a.s != 1 \
                and torch.promote_types(a.x.dtype, x.dtype) == a.x.dtype:
            return torch.mul(a.x, a.s).add_(x, alpha=p.s)     # into the new tensor s * a
        if out is None:
            return torch.add(self._value(a), x, alpha=p.s)
        return torch.add(self._value(a), x, alpha=p.s, out=out)

    def divide(self, a, b, out=None):
        a, b = self._value(a), self._value(b)
        if torch.is_tensor(a) and torch.is_tensor(b) and a.dim() >= 2 and b.dim() == 0:
            # a matrix divided by a whole-tensor value (Muon's normalisation before its products):
            # both rounded to the products' dtype first, as torch.optim.Muon divides its
            # bfloat16 update by the update's norm rounded to bfloat16
            low = self._low(a)
            if low is a:
                return low / b.to(self.dtype)
            self._cast = (None, None)
            return low.div_(b.to(self.dtype))   # into the new cast
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
        return _Square(self._value(x), dtype)

    def sum(self, x, dtype=None):
        if isinstance(x, _Square) and x.x.dim() >= 2 and dtype is None:
            # a matrix's sum of squares (Muon's norm before its products): of the matrix rounded
            # to the products' dtype, as torch.optim.Muon takes the norm of its bfloat16 update
            # (accumulated in float32 or wider, no squares stored)
            # (torch's norm of a bfloat16 tensor, rounded to bfloat16: its square is exact in
            # the wider dtype, so the kernel's sqrt gives that norm back)
            wide = x.dtype or torch.promote_types(x.x.dtype, torch.float32)
            return torch.linalg.vector_norm(self._low(x.x)).to(wide).square()
        return torch.sum(self._value(x), dtype=dtype)

    def asarray(self, x, dtype=None):
        x = self._value(x)
        return x if dtype is None else x.to(dtype)

    def promote_types(self, a, b):
        return torch.promote_types(a, b)

    def array(self, x, dtype=None, copy=True):
        x = self._value(x)
        return x.to(dtype=dtype, copy=True)

    def copyto(self, dst, src, where=None, casting=None):
        # kept for write(): an output may be an input another copyto writes
        if not (isinstance(src, _Axpy) and src.value is None and where is None):
            src = self._value(src)
            if where is not None:
                src = torch.where(self._value(where), src, dst)
        self._writes.append((dst, src))

    def broadcast_to(self, x, shape):
        if isinstance(x, _Axpy) and x.value is None and tuple(shape) == tuple(x.shape):
            return x
        return torch.broadcast_to(self._value(x), tuple(shape))

    def write(self):
        """Write the kernel's outputs (its copyto calls). Every value is evaluated before the
        first write, except an unevaluated a + s * x whose operands share no memory with
        another output: it is computed straight into its output (torch.add's out=)."""
        writes, self._writes = self._writes, []
        late = []
        for k, (dst, src) in enumerate(writes):
            if isinstance(src, _Axpy):
                others = [d for j, (d, _) in enumerate(writes) if j != k]
                operands = _leaves(src)
                if src.dtype == dst.dtype \
                        and tuple(src.shape) == tuple(dst.shape) \
                        and not any(_overlap(o, d) for o in operands for d in others) \
                        and all(_same_or_apart(o, dst) for o in operands):
                    late.append((dst, src))
                    continue
                writes[k] = (dst, self._value(src))
        for dst, src in writes:
            if not isinstance(src, _Axpy):
                dst.copy_(src)
        for dst, src in late:
            self._axpy_into(src, dst)

    def _axpy_into(self, p, dst):
        """dst = p.a + p.s * p.x, where p.a is an unevaluated a' + s' x' of dst's shape and
        dtype whose operands are dst itself or apart from it: that one first, into dst (Muon's
        weight: `w - lr wd w`, then `- lr scale o`, as torch's mul_ and add_ on the parameter)."""
        a = p.a
        if isinstance(a, _Axpy) and a.value is None and tuple(a.shape) == tuple(dst.shape) \
                and a.dtype == dst.dtype and not isinstance(a.a, (_Scaled, _Axpy)) \
                and all(_same_or_apart(o, dst) for o in (a.a, a.x)):
            self._axpy_into(a, dst)
            dst.add_(p.x, alpha=p.s)
            return
        self._axpy_value(p, dst)


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
