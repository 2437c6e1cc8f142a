"""Quantized state storage, the NumPy reference: 8-bit block-wise states and bfloat16 states.

A state stored quantized is computed in float32: a step loads it into a float32 array
(`load`), runs the rule's generated code on that array as on any state, and stores the
result back (`store`). The native kernels do the same per element in one pass; this
module is the reference they are compared with (docs/architecture.md, "Quantized
optimizer states").

8-bit states (`Blockwise8bit`): per block of 256 consecutive elements (in C order) a
float32 absmax, per element a uint8 code; the value is `map[code] * absmax` with the
signed or unsigned dynamic map (conventions/state_storage.py). Quantizing follows
bitsandbytes' CPU quantizer (`quantize_blockwise`, bitsandbytes 0.50) code for code:

- absmax = the largest |x| of the block (NaN elements ignored), 0 for a block of zeros;
- each x is scaled by the float32 reciprocal of absmax, clamped to [-1, 1] and snapped to
  the nearest of 65536 grid points of [-1, 1] (index = trunc((s + 1) * 0.5 * 65535 + 0.5)
  in float32, the same for every float32 s with or without a fused multiply-add, checked
  over all of them); a table gives each grid point its nearest code (the first code whose midpoint
  with the next is not below the point); a NaN takes grid point 0;
- a block whose absmax is 0 stores code 0 everywhere.

The grid costs at most 1/65535 of absmax besides the map's own rounding, and makes the
quantizer one table lookup per element on every target.

bfloat16 states: float32 rounded to nearest even, or stochastically ("bfloat16_stochastic":
16 random bits added below bfloat16's last bit before truncation, the bits a hash of a
64-bit key per (parameter, step, state) and the element's index, so a run is reproducible).

bfloat16 states on CuPy arrays: CuPy has no bfloat16 dtype, so such a state is its raw
bits, a uint16 CuPy array (`is_bfloat16`: a uint16 array is a bfloat16 state on CuPy only;
no other state of a float32 weight is an integer array). The CUDA kernels read and write
these 16-bit words as they would bfloat16 ones; the NumPy code's path loads them as
`bits << 16` viewed as float32 and stores them with `bfloat16_bits`, the integer form of
the NumPy reference's rounding (to nearest even as ml_dtypes converts, or stochastically
with the same random bits), bit for bit the reference's. A plain uint16 array rather than a
wrapper type: it has the state's shape, size and pointer that the checks, the kernel
launches and torch's DLPack views take, and only the places that tell a bfloat16 state
from a float one (`is_bfloat16`, `load`, `store`, saving) need to know.

Everything here takes NumPy arrays, and CuPy arrays where the operation exists there.
"""
import functools

import numpy

from ...conventions.state_storage import BLOCK, LUT_SIZE, dynamic_map
from ..noise import splitmix64
from . import array_module, is_cupy_array

_F32 = numpy.float32


class Blockwise8bit:
    """One 8-bit state: `codes` (uint8, the weight's shape), `absmax` (float32, one per block
    of 256 elements), `signed` (which map the codes index)."""

    __slots__ = ("codes", "absmax", "signed")

    def __init__(self, codes, absmax, signed):
        self.codes, self.absmax, self.signed = codes, absmax, bool(signed)

    @property
    def shape(self):
        return self.codes.shape

    @property
    def size(self):
        return self.codes.size

    @property
    def nbytes(self):
        return self.codes.nbytes + self.absmax.nbytes

    def __repr__(self):
        return (f"Blockwise8bit(shape={tuple(self.codes.shape)}, blocks={self.absmax.size}, "
                f"{'signed' if self.signed else 'unsigned'})")


def blocks(numel):
    """The number of absmax values of a tensor of `numel` elements."""
    return -(-int(numel) // BLOCK)


@functools.lru_cache(maxsize=None)
def code_table(signed):
    """The 256 float32 values codes stand for (read-only)."""
    table = numpy.array(dynamic_map(signed), dtype=_F32)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=None)
def lookup_table(signed):
    """The code of each of the LUT_SIZE grid points of [-1, 1] (uint8, read-only): the first
    code whose midpoint with the next code is not below the point, every operation in
    float32 as bitsandbytes builds its table."""
    code = code_table(signed)
    midpoints = _F32(0.5) * (code[:-1] + code[1:])
    points = _F32(-1.0) + (_F32(2.0) * numpy.arange(LUT_SIZE, dtype=_F32)) / _F32(LUT_SIZE - 1)
    table = numpy.searchsorted(midpoints, points, side="left").astype(numpy.uint8)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=None)
def search_table(signed):
    """The lookup table as the native kernels search it (uint16, read-only): the code of a
    grid index is the number of k in 1..255 whose first grid index t_k with code >= k is at
    most the index (the table is monotone), found by a binary search of 8 levels; level L
    holds the 2^L thresholds t_(j * 2 s + s), s = 128 >> L, each of the first six levels
    padded to 32 entries (one 512-bit register of 16-bit lanes), then 64 and 128."""
    lut = lookup_table(signed)
    first = numpy.searchsorted(lut, numpy.arange(1, 256), side="left")    # t_1 .. t_255
    levels = []
    for level in range(8):
        step = 128 >> level
        values = first[numpy.arange(1 << level) * 2 * step + step - 1]
        levels.append(numpy.pad(values, (0, max(0, 32 - values.size))))
    table = numpy.concatenate(levels).astype(numpy.uint16)
    table.flags.writeable = False
    return table


def zeros_8bit(shape, signed, xp=numpy):
    """An 8-bit state of zeros: every code 0 and every absmax 0 (as bitsandbytes starts
    its states), which loads as zeros."""
    numel = 1
    for n in shape:
        numel *= int(n)
    return Blockwise8bit(xp.zeros(shape, dtype=numpy.uint8), xp.zeros(blocks(numel), dtype=_F32), signed)


def quantize(values, signed):
    """A new Blockwise8bit of a float array (any float dtype: rounded to float32 first)."""
    xp = array_module(values)
    state = zeros_8bit(values.shape, signed, xp)
    store_8bit(state, values.astype(_F32, copy=False))
    return state


def load_8bit(state, out=None):
    """The float32 values of an 8-bit state: map[code] * absmax of the code's block (into
    `out` when given, a float32 array of the state's shape)."""
    xp = array_module(state.codes)
    table = code_table(state.signed) if xp is numpy else xp.asarray(code_table(state.signed))
    n = state.codes.size
    flat = table[state.codes.reshape(-1)]
    full = n - n % BLOCK
    if full:
        body = flat[:full].reshape(-1, BLOCK)
        xp.multiply(body, state.absmax[:full // BLOCK, None], out=body)
    if full < n:
        xp.multiply(flat[full:], state.absmax[-1], out=flat[full:])
    values = flat.reshape(state.codes.shape)
    if out is None:
        return values
    out[...] = values
    return out


def store_8bit(state, values):
    """Quantize float32 `values` (the state's shape) into the state's codes and absmax, in
    place (see the module docstring for the exact arithmetic)."""
    xp = array_module(state.codes)
    n = state.codes.size
    if n == 0:
        return
    flat = values.reshape(-1)
    full = n - n % BLOCK
    magnitude = xp.abs(flat)
    absmax = xp.empty(blocks(n), dtype=_F32)
    if full:
        # fmax: NaN elements are ignored, as bitsandbytes' std::max ignores them
        absmax[:full // BLOCK] = xp.fmax.reduce(magnitude[:full].reshape(-1, BLOCK), axis=1,
                                                initial=_F32(0.0))
    if full < n:
        absmax[-1] = xp.fmax.reduce(magnitude[full:], initial=_F32(0.0))
    with numpy.errstate(divide="ignore", invalid="ignore"):
        inverse = _F32(1.0) / absmax                      # float32 reciprocal, then a product
        scaled = xp.empty(n, dtype=_F32)
        if full:
            xp.multiply(flat[:full].reshape(-1, BLOCK), inverse[:full // BLOCK, None],
                        out=scaled[:full].reshape(-1, BLOCK))
        if full < n:
            xp.multiply(flat[full:], inverse[-1], out=scaled[full:])
        xp.clip(scaled, _F32(-1.0), _F32(1.0), out=scaled)   # NaN stays NaN
        point = (scaled + _F32(1.0)) * _F32(0.5) * _F32(LUT_SIZE - 1) + _F32(0.5)
        index = xp.where(xp.isnan(point), _F32(0.0), point).astype(numpy.int32)
    table = lookup_table(state.signed) if xp is numpy else xp.asarray(lookup_table(state.signed))
    codes = table[index]
    zero = absmax == 0
    if bool(zero.any()):
        mask = xp.repeat(zero, BLOCK)[:n]
        codes[mask] = 0
    state.codes[...] = codes.reshape(state.codes.shape)
    state.absmax[...] = absmax


# -- bfloat16 ----------------------------------------------------------------------------------

def bfloat16():
    import ml_dtypes
    return numpy.dtype(ml_dtypes.bfloat16)


_BITS = numpy.dtype(numpy.uint16)


def is_bfloat16(array):
    """Whether `array` is a bfloat16 state: a bfloat16 NumPy array, or a uint16 CuPy array
    (its bits, CuPy having no bfloat16)."""
    dtype = getattr(array, "dtype", None)
    if dtype is None:
        return False
    if str(dtype) == "bfloat16":
        return True
    return dtype == _BITS and is_cupy_array(array)


def bfloat16_as(state, xp, device=None):
    """A bfloat16 state in `xp`'s form (NumPy: a bfloat16 array; CuPy: a uint16 array of its
    bits, on `device` when given): the same object when it already is, else a copy."""
    if array_module(state) is xp:
        # (a CuPy that holds bfloat16 arrays, with ml_dtypes from CuPy 14 on: its bits)
        return state if xp is numpy or state.dtype == _BITS else state.view(numpy.uint16)
    if xp is numpy:
        return numpy.ascontiguousarray(state.get()).view(bfloat16())
    bits = numpy.ascontiguousarray(state).view(numpy.uint16)
    if device is None:
        return xp.array(bits, copy=True)
    with device:
        return xp.array(bits, copy=True)


def new_bfloat16(values):
    """A new bfloat16 state of float32 `values`, rounded to nearest even, in the form of
    their array module."""
    xp = array_module(values)
    if xp is numpy:
        return values.astype(bfloat16())
    state = xp.empty(values.shape, dtype=numpy.uint16)
    store_bfloat16(state, values)
    return state


def load_bfloat16(state):
    """A bfloat16 state's values as float32 (exact): a CuPy state's bits shifted into the
    high half of float32 words."""
    if state.dtype == _BITS:
        return (state.astype(numpy.uint32) << numpy.uint32(16)).view(_F32)
    return state.astype(_F32)


def bfloat16_bits(values, key=None):
    """The bfloat16 bits (uint16, flat) of float32 `values` (NumPy or CuPy), rounded as
    `store_bfloat16` rounds: to nearest even (adding 0x7FFF and the last kept bit, ml_dtypes'
    rule, finite values past the largest bfloat16 becoming infinity), or with `key` adding
    `stochastic_bits` below the last kept bit; infinities exact, a NaN the quiet NaN of its
    sign. Integer arithmetic on the float32 words, so NumPy and CuPy give the same bits."""
    xp = array_module(values)
    bits = xp.ascontiguousarray(values, dtype=_F32).reshape(-1).view(numpy.uint32)
    if key is None:
        add = numpy.uint32(0x7FFF) + ((bits >> numpy.uint32(16)) & numpy.uint32(1))
    else:
        add = stochastic_bits(key, bits.size, xp=xp).astype(numpy.uint32)
    magnitude = bits & numpy.uint32(0x7FFFFFFF)
    # no finite value wraps around: |x| <= 0x7F7FFFFF plus at most 0xFFFF stays below 2^32
    rounded = bits + add
    nan = (bits & numpy.uint32(0x80000000)) | numpy.uint32(0x7FC00000)
    out = xp.where(magnitude < numpy.uint32(0x7F800000), rounded,
                   xp.where(magnitude == numpy.uint32(0x7F800000), bits, nan))
    return (out >> numpy.uint32(16)).astype(numpy.uint16)


def store_bfloat16(state, values, key=None):
    """Round float32 `values` into the bfloat16 array `state`: to nearest even, or with
    `key` (a 64-bit int) stochastically: the 16 bits below bfloat16's last bit are added
    to random bits `stochastic_bits(key, element index)` and truncated, so a value rounds up
    with probability equal to its distance from the value below. NaN and infinities are
    rounded to nearest (they stay what they are: a NaN becomes the quiet NaN of its sign, as
    ml_dtypes converts any NaN, written out here so that the native kernels' rule is this
    function's own). A CuPy state (uint16 bits) takes `bfloat16_bits`, the same rounding."""
    if state.dtype == _BITS:
        state[...] = bfloat16_bits(values, key).reshape(state.shape)
        return
    if key is None:
        state[...] = values
        return
    bits = numpy.ascontiguousarray(values, dtype=_F32).reshape(-1).view(numpy.uint32)
    random = stochastic_bits(key, bits.size)
    rounded = ((bits.astype(numpy.uint64) + random) & 0xFFFF0000).astype(numpy.uint32)
    magnitude = bits & numpy.uint32(0x7FFFFFFF)
    # a finite value that rounds past the largest bfloat16 becomes infinity, as rounding up
    # would; infinities are exact; a NaN is 0x7FC0 with its sign (payloads are dropped)
    nan = (bits & numpy.uint32(0x80000000)) | numpy.uint32(0x7FC00000)
    out = numpy.where(magnitude < 0x7F800000, rounded, numpy.where(magnitude == 0x7F800000, bits, nan))
    state[...] = out.view(_F32).reshape(state.shape)    # exact: the low 16 bits are zero


_M32 = 0xFFFFFFFF


def _fmix32(h):
    """murmur3's 32-bit finaliser on a uint32 array."""
    h = h ^ (h >> numpy.uint32(16))
    h = h * numpy.uint32(0x85EBCA6B)
    h = h ^ (h >> numpy.uint32(13))
    h = h * numpy.uint32(0xC2B2AE35)
    return h ^ (h >> numpy.uint32(16))


def stochastic_bits(key, count, first=0, xp=numpy):
    """16 random bits per element (uint64 array of `count`, for the element indices `first`
    onwards; an `xp` array): fmix32 of the element index mixed with the key's low word, then
    with its high word; the same function in the native kernels (`om::stochastic_bits`)."""
    index = xp.arange(first, first + count, dtype=numpy.uint64)
    low = (index & _M32).astype(numpy.uint32)
    high = (index >> numpy.uint64(32)).astype(numpy.uint32)
    with numpy.errstate(over="ignore"):
        h = _fmix32(low ^ numpy.uint32(key & _M32))
        h = _fmix32(h ^ high ^ numpy.uint32((key >> 32) & _M32))
    return (h >> numpy.uint32(16)).astype(numpy.uint64)


def rounding_key(parameter_key, t, slot):
    """The 64-bit key of one state's stochastic rounding in one step: a hash of the
    parameter's key (noise.philox_key of seed 0 and its index), its update count t and the
    state's position among the step's state arrays (the variant's states less host scalar
    states). Computed on the host once per state and step, for the NumPy code and the native
    kernels alike (backends/native.py passes it to them)."""
    return splitmix64(parameter_key ^ splitmix64((int(t) << 8) + int(slot)))


# -- any stored state --------------------------------------------------------------------------

def load(state):
    """A stored state's values as a new float32 array."""
    if isinstance(state, Blockwise8bit):
        return load_8bit(state)
    return load_bfloat16(state)


def store(state, values, key=None):
    """Write float32 `values` back into a stored state (8-bit, or bfloat16 with the optional
    stochastic rounding key)."""
    if isinstance(state, Blockwise8bit):
        store_8bit(state, values)
    else:
        store_bfloat16(state, values, key)


def is_stored(weight, state):
    """Whether a kernel state array of a float32 weight (or master copy) is stored quantized:
    an 8-bit state, or a bfloat16 one (a float32 weight's states are otherwise float32)."""
    return isinstance(state, Blockwise8bit) or (is_bfloat16(state) and str(weight.dtype) == "float32")
