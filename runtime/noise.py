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
