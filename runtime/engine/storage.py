"""Which states an engine stores quantized, in what form, and how saved states convert.

`StateStorage(kind, min_8bit_size)` is what a frontend chose at construction (kind "8bit",
"bfloat16" or "bfloat16_stochastic"). A state of one parameter is stored quantized when the
spec allows it (its `quantize`: "signed" or "unsigned"), the state would otherwise be a
float32 array (a float32 weight or master copy), and, for 8-bit storage, the tensor holds at
least `min_8bit_size` elements. `stored` answers that per (state, weight); the engine creates,
checks and converts states by it (docs/architecture.md, "Quantized optimizer states").
"""
from typing import NamedTuple

import numpy

from ...conventions.state_storage import MIN_8BIT_SIZE, check_min_size, check_storage
from ..backends import array_module, quantized
from .layout import state_dtype

ABSMAX = "_absmax"      # suffix of an 8-bit state's absmax in saved state dicts
_FLOAT32 = numpy.dtype(numpy.float32)


class StateStorage(NamedTuple):
    kind: str                   # "8bit", "bfloat16" or "bfloat16_stochastic"
    min_8bit_size: int = MIN_8BIT_SIZE

    @property
    def stochastic(self):
        return self.kind == "bfloat16_stochastic"


def state_storage(kind, min_8bit_size=MIN_8BIT_SIZE, rule=None):
    """A validated StateStorage, or None for float states (ValueError names the argument, and
    the rule when given)."""
    try:
        kind = check_storage(kind)
        min_8bit_size = check_min_size(min_8bit_size)
    except ValueError as err:
        if rule is None:
            raise
        raise ValueError(f"{rule}: {err}") from None
    return None if kind is None else StateStorage(kind, min_8bit_size)


def stored(storage, meta, weight):
    """"8bit", "bfloat16" or None: how a state (its StateMeta) of this weight is stored."""
    if storage is None or not meta.meta.get("quantize"):
        return None
    if numpy.dtype(state_dtype(meta.meta, weight.dtype)) != _FLOAT32:
        return None
    if storage.kind == "8bit":
        return "8bit" if weight.size >= storage.min_8bit_size else None
    return "bfloat16"


def signed(meta):
    return meta.meta.get("quantize") != "unsigned"


def create(kind, meta, values):
    """The stored form of a new state's float32 `values`."""
    if kind == "8bit":
        return quantized.quantize(values, signed(meta))
    return quantized.new_bfloat16(values.astype(_FLOAT32, copy=False))


def check(index, meta, kind, part, weight, xp):
    """ValueError (or TypeError) unless `part` is the stored form `kind` of state `meta` for
    this weight: the message names the state, the parameter and the form expected."""
    name = meta.name
    if kind == "8bit":
        if not isinstance(part, quantized.Blockwise8bit):
            got = f"a {part.dtype} array" if hasattr(part, "dtype") else type(part).__name__
            raise ValueError(f"state '{name}' of parameter {index!r} is {got}, but this optimizer stores it "
                             f"in 8 bits (state_storage='8bit'): create it with create_state, or load saved "
                             f"states through load_state_dict / set_states, which convert them")
        if part.signed != signed(meta):
            raise ValueError(f"state '{name}' of parameter {index!r} is quantized with the "
                             f"{'signed' if part.signed else 'unsigned'} map, the spec names the "
                             f"{'signed' if signed(meta) else 'unsigned'} one")
        _check_arrays(index, name, weight, xp, (("codes", part.codes, numpy.uint8, tuple(weight.shape)),
                                                ("absmax", part.absmax, numpy.float32,
                                                 (quantized.blocks(weight.size),))))
        return
    if isinstance(part, quantized.Blockwise8bit) or not quantized.is_bfloat16(part):
        got = "an 8-bit state" if isinstance(part, quantized.Blockwise8bit) else \
            f"a {getattr(part, 'dtype', type(part).__name__)} array"
        form = "" if xp is numpy else ", on CuPy arrays its bits as a uint16 CuPy array"
        raise ValueError(f"state '{name}' of parameter {index!r} is {got}, but this optimizer stores it "
                         f"as bfloat16 (state_storage={'bfloat16'!r}{form}): create it with create_state, "
                         f"or load saved states through load_state_dict / set_states, which convert them")
    dtype = quantized.bfloat16() if xp is numpy else numpy.uint16     # CuPy: the bits
    _check_arrays(index, name, weight, xp, (("bfloat16 state", part, dtype, tuple(weight.shape)),))


def _check_arrays(index, name, weight, xp, arrays):
    """The arrays of a stored state, each (what, array, dtype, shape): on the weight's array
    module and device, of that shape and dtype, writable."""
    for what, array, dtype, shape in arrays:
        try:
            axp = numpy if type(array) is numpy.ndarray else array_module(array)
        except TypeError as err:
            raise TypeError(f"state '{name}' of parameter {index!r}: {what}: {err}") from None
        if axp is not xp:
            raise TypeError(f"state '{name}' of parameter {index!r}: {what} is a {axp.__name__} array "
                            f"but the weight is a {xp.__name__} array")
        if tuple(array.shape) != shape or array.dtype != dtype:
            raise ValueError(f"state '{name}' of parameter {index!r}: {what} has shape "
                             f"{tuple(array.shape)} and dtype {array.dtype}, expected {shape} and "
                             f"{numpy.dtype(dtype)}")
        if xp is not numpy and array.device != weight.device:
            raise ValueError(f"state '{name}' of parameter {index!r}: {what} is on {array.device}, "
                             f"the weight on {weight.device}")
        if xp is numpy and not array.flags.writeable:
            raise ValueError(f"state '{name}' of parameter {index!r}: {what} is read-only; "
                             "states are updated in place")


# -- saving and loading -------------------------------------------------------------------------

def items(name, value):
    """[(key, array)] of one state as a flat state dict saves it: an 8-bit state as its codes
    under the state's name and its absmax under name + "_absmax"."""
    if isinstance(value, quantized.Blockwise8bit):
        return [(name, value.codes), (name + ABSMAX, value.absmax)]
    return [(name, value)]


def saved(array, param):
    """One array of a state as a state dict holds it: the kind of array `param` is, sharing
    memory (array_views.like: a bfloat16 state on CuPy arrays as a bfloat16 tensor for torch
    tensors), but a bfloat16 state of CuPy parameters as a bfloat16 NumPy copy of its bits,
    the form NumPy parameters save (CuPy has no bfloat16), so that it loads on either."""
    from .. import array_views
    if quantized.is_bfloat16(array) and array_views.family(param) == "cupy":
        return quantized.bfloat16_as(array, numpy)
    return array_views.like(array, param)


def values_of(value):
    """A state in any saved form (float array, bfloat16 array or a CuPy one's uint16 bits,
    Blockwise8bit) as float32 values (exact for 8-bit and bfloat16 states)."""
    if isinstance(value, quantized.Blockwise8bit):
        return quantized.load_8bit(value)
    if quantized.is_bfloat16(value):
        return quantized.load_bfloat16(value)
    return value.astype(numpy.float32)


def convert(kind, meta, value, weight, weight_dtype):
    """A saved state (float array of any float dtype, bfloat16 array or Blockwise8bit, on the
    weight's device; a bfloat16 state may be in either array module's form: a bfloat16 NumPy
    array or a CuPy one's uint16 bits) in the form `kind` asks for this weight: converted
    when it is in another form (float to 8-bit or bfloat16: rounded within the scheme's
    error; 8-bit or bfloat16 to float: exact; a bfloat16 state moved to the weight's array
    module: the same bits), else the same object. A float state saved for another weight
    dtype is not converted (the optimizer's check refuses it)."""
    xp = array_module(weight)
    bfloat16 = not isinstance(value, quantized.Blockwise8bit) and quantized.is_bfloat16(value)
    if bfloat16 and array_module(value) is not xp:
        value = quantized.bfloat16_as(value, xp, None if xp is numpy else weight.device)
    if kind == "8bit":
        if isinstance(value, quantized.Blockwise8bit) and value.signed == signed(meta):
            return value
        return quantized.quantize(values_of(value), signed(meta))
    if kind == "bfloat16":
        if bfloat16:
            return value
        return quantized.new_bfloat16(values_of(value))
    if isinstance(value, quantized.Blockwise8bit):
        return quantized.load_8bit(value).astype(weight_dtype)
    if bfloat16 and str(weight_dtype) != "bfloat16":
        return values_of(value).astype(weight_dtype)    # saved with bfloat16 storage
    return value     # a float state of another dtype is the check's to refuse, as before
