"""Reproducible Gaussian noise for rules that draw it (`normal(mean, std)`).

The noise of one draw depends only on (seed, parameter index, update count t,
draw number): no generator state is carried between steps, so resuming from
saved states reproduces the very same noise as never stopping.
"""
import zlib

import numpy

from .backends import array_module


def _index_key(index):
    if isinstance(index, (int, numpy.integer)) and index >= 0:
        return int(index)
    return zlib.crc32(repr(index).encode("utf-8")) + (1 << 32)


class Noise:
    """Draws for one parameter's step; passed to generated kernels as `rng`."""

    def __init__(self, seed, index, t):
        self.key = (int(seed) & 0xFFFFFFFFFFFFFFFF, _index_key(index), int(t))

    def normal(self, tag, mean, std, like, out=None):
        xp = array_module(like)
        rng = numpy.random.default_rng([*self.key, int(tag)])
        dtype = like.dtype if like.dtype in (numpy.float32, numpy.float64) else numpy.float32
        sample = rng.standard_normal(like.shape, dtype=dtype)
        sample *= std
        sample += mean
        if xp is not numpy:
            sample = xp.asarray(sample)
        if out is None:
            return sample.astype(like.dtype, copy=False)
        xp.copyto(out, sample, casting="same_kind")
        return out


_MASK64 = 0xFFFFFFFFFFFFFFFF


def splitmix64(x):
    """SplitMix64's finaliser of a 64-bit integer (the noise keys and the stochastic rounding's)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def philox_key(seed, index):
    """The 64-bit Philox key of the device noise of one parameter: a hash of (seed, index).

    The CUDA and native CPU kernels draw `normal()` with Philox4x32-10 keyed by this and
    counted by (t, draw, element): the same numbers on the GPU and the CPU, reproducible from
    (seed, index, t) like the NumPy code's noise above, but a different generator, so the
    numbers differ from `step`'s."""
    return splitmix64(splitmix64(int(seed) & _MASK64) ^ _index_key(index))
