"""Buffers for array-at-a-time code (NumPy/CuPy ufuncs with `out=`).

Three-address code computes one operation per instruction; run with whole
arrays, every instruction needs an array to write into. This module chooses
them so that the generated code uses as few temporaries as a person would:
results go straight into the weight or state they become, into an operand
array that dies at that instruction, or into a free temporary.

Value classes keep precision honest: "w" values have the weight's dtype, "p"
values the promoted dtype of float32-policy states (at least float32), "bool"
masks are booleans. A buffer is reused only for a value of its own class and
shape; a final value may be stored into a buffer of another class (it is cast
on store) only when nothing reads it afterwards.
"""
from dataclasses import dataclass, field

from .tac import Scalar, Val

READ_ONLY = ("grad",)


@dataclass
class Step:
    val: Val
    out: str                    # the buffer that receives the result
    mode: str                   # "new": binds a new temporary; "out": writes into `out`;
                                # "guarded": in place, skipped when an optional bound is None;
                                # "alias": new name that is the input itself when the bound is None
    operands: tuple = ()        # buffer names (str), Scalar or Const, in operand order


@dataclass
class Schedule:
    steps: list
    copies: list = field(default_factory=list)     # (buffer, operand) stored after the last step


def schedule(program, state_classes):
    """Assign a buffer to every value of a `TensorProgram`.

    `state_classes` maps each state to "w" or "p" (its dtype policy)."""
    return _Allocator(program, state_classes).run()


class _Allocator:
    def __init__(self, program, state_classes):
        self.program = program
        self.code = list(program.code)
        self.outputs = dict(program.outputs)
        self.classes = {}
        self.shapes = {}
        self._value_classes = {}    # value id -> its class
        for name, v in program.inputs.items():
            self.classes[name] = "w" if name in ("weight", "grad") else state_classes.get(name, "w")
            self.shapes[name] = v.shape
        self._insert_copies()

    # -- value classes ----------------------------------------------------------
    def value_class(self, v):
        known = self._value_classes.get(v.id)
        if known is None:
            known = self._value_classes[v.id] = self._value_class(v)
        return known

    def _value_class(self, v):
        if v.boolean:
            return "bool"
        if v.op == "input":
            return self.classes[v.name]
        if v.op == "normal":
            return "w"
        if v.op in ("norm", "sum", "row_sum"):   # norms and sums accumulate in float32 or wider
            return "p"
        # operands' classes are kept (value_class): a value shared along a chain is walked once,
        # not once per path to it (exponential in the chain's length)
        return "p" if any(isinstance(a, Val) and self.value_class(a) == "p" for a in v.args) else "w"

    # -- outputs that copy another value ------------------------------------------
    def _insert_copies(self):
        """An output whose final value is another array's input, a scalar, or a value that
        is already another output gets an explicit copy, placed as early as possible:
        right after the last read of the output's old value."""
        claimed = set()
        next_id = max([v.id for v in self.code], default=-1) + 1
        for name, final in list(self.outputs.items()):
            own = isinstance(final, Val) and final.op != "input" and final.id not in claimed
            if own:
                claimed.add(final.id)
                continue
            old = self.program.inputs[name]
            position = 0
            for i, v in enumerate(self.code):
                if any(a is old for a in v.args):
                    position = i + 1
                if final is v:
                    position = max(position, i + 1)
            copy = Val(next_id, "copy", (final,), old.shape)
            next_id += 1
            self.code.insert(position, copy)
            self.outputs[name] = copy
            claimed.add(copy.id)

    # -- allocation -----------------------------------------------------------------
    def run(self):
        code, n = self.code, len(self.code)
        last = {}
        reads = {}
        for i, v in enumerate(code):
            for a in v.args:
                if isinstance(a, Val):
                    last[a.id] = i
                    reads[a.id] = i
        final_of = {}
        for name, v in self.outputs.items():
            if isinstance(v, Val):
                last[v.id] = n
                final_of.setdefault(v.id, name)
        self.last, self.reads = last, reads

        buffer_of = {}
        holders = {}
        for name, v in self.program.inputs.items():
            buffer_of[v.id] = name
            holders[name] = {v.id} if v.id in last else set()
        free_temps = []
        alias_temps = set()
        self.temps = set()
        steps = []

        def writable(b):
            return b not in READ_ONLY and b not in alias_temps

        def fits(b, v):
            return self.classes[b] == self.value_class(v) and self.shapes[b] == v.shape

        for i, v in enumerate(code):
            dying = {a.id for a in v.args if isinstance(a, Val) and last.get(a.id) == i}

            def free_after(b):
                return not (holders[b] - dying)

            out, mode = None, "out"
            optional_clip = v.op == "clip" and any(isinstance(a, Scalar) and a.optional for a in v.args[1:])
            if optional_clip:
                x = v.args[0]
                xb = buffer_of.get(x.id) if isinstance(x, Val) else None
                if xb is not None and x.id in dying and writable(xb) and fits(xb, v) and free_after(xb):
                    out, mode = xb, "guarded"
                else:
                    out, mode = self._new_temp(), "alias"
                    alias_temps.add(out)
                    self.classes[out], self.shapes[out] = self.value_class(v), v.shape
                    holders[out] = set()
                    if xb is not None:
                        holders[xb].add(v.id)   # the alias may be x itself: keep x's array intact
            else:
                target = final_of.get(v.id)
                if target is not None and writable(target) and free_after(target) \
                        and self.shapes[target] == v.shape \
                        and (fits(target, v) or self.reads.get(v.id, -1) < i):
                    out = target
                if out is None:
                    for a in v.args:
                        b = buffer_of.get(a.id) if isinstance(a, Val) else None
                        if b is not None and a.id in dying and writable(b) and fits(b, v) \
                                and free_after(b) and b in self.temps:
                            out = b
                            break
                if out is None:
                    for a in v.args:
                        b = buffer_of.get(a.id) if isinstance(a, Val) else None
                        if b is not None and a.id in dying and writable(b) and fits(b, v) \
                                and free_after(b) and self._scratch_ok(b, v, i, final_of):
                            out = b
                            break
                if out is None:
                    for b in free_temps:
                        if fits(b, v):
                            out = b
                            free_temps.remove(b)
                            break
                if out is None:
                    out, mode = self._new_temp(), "new"
                    self.classes[out], self.shapes[out] = self.value_class(v), v.shape
                    holders[out] = set()
            operands = tuple(buffer_of[a.id] if isinstance(a, Val) else a for a in v.args)
            steps.append(Step(v, out, mode, operands))
            holders[out].add(v.id)   # before releasing operands: `out` may be an operand's buffer
            buffer_of[v.id] = out
            for a in v.args:
                if isinstance(a, Val) and a.id in dying:
                    self._release(a.id, buffer_of, holders, free_temps, alias_temps)
            if last.get(v.id) is None:   # computed but never read (cannot happen after dead-code removal)
                self._release(v.id, buffer_of, holders, free_temps, alias_temps)

        copies = []
        for name, v in self.outputs.items():
            source = buffer_of.get(v.id) if isinstance(v, Val) else v
            if source != name:
                copies.append((name, source))
        return Schedule(steps, copies)

    def _new_temp(self):
        taken = set(self.program.inputs) | set(self.program.scalars)
        k = len(self.temps)
        while f"t{k}" in taken or f"t{k}" in self.temps:
            k += 1
        name = f"t{k}"
        self.temps.add(name)
        return name

    def _scratch_ok(self, b, v, i, final_of):
        """May `v` use the weight/state array `b` as scratch? Only if b's own final value is
        computed later and `v` is dead by then (read at the latest by that very instruction)."""
        for vid, name in final_of.items():
            if name == b:
                for k in range(i + 1, len(self.code)):
                    if self.code[k].id == vid:
                        return self.last.get(v.id, -1) <= k
                return False
        return False

    def _release(self, vid, buffer_of, holders, free_temps, alias_temps):
        for b, held in holders.items():
            if vid in held:
                held.discard(vid)
                if not held and b in self.temps and b not in alias_temps and b not in free_temps:
                    free_temps.append(b)
