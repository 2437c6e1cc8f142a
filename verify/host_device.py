"""The CuPy backend's own launch path without a GPU.

`update` on `DeviceArray`s (host arrays the runtime takes for CuPy arrays) goes through the
real runtime: the checks, the planning, the grouping by (variant, dtype), the single,
multi-tensor and multi-pass launches with their tables and device buffers. Only the last
step is replaced: kernels come from the host-compiled `.cu` files (`host_cuda`) instead of
NVRTC, and device memory is host memory. Blocks keep the runtime's grid but run `THREADS`
threads each (the kernels stride by blockDim, and block sums need a power of two).

Matrix rules run their stage driver on NumPy arrays with the runtime's `cupy_matrix.Stages`
launching the host-compiled `.stages.cu` kernels, NumPy doing the products.

The partials stage of a rule with group reductions (runtime/engine/group.py) is a generated
rule of its own, launched on CuPy arrays with its own CUDA kernels; here it runs on the host
arrays behind the `DeviceArray`s (the values every target reads) through the native CPU
target, so what this path checks of such a rule is its step: the host-compiled kernels
given the group's values.
"""
import contextlib
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np

from ..runtime.backends import cpu, launch_table, cupy_backend, cupy_matrix, kernel_cache
from ..runtime.engine import group
from . import host_cuda

THREADS = 4


class Device:
    id = 0
    compute_capability = "90"
    attributes = {"MultiProcessorCount": 2}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return self.id


class DeviceArray:
    """A host array that the runtime takes for a cupy.ndarray on `Device`."""

    __module__ = "cupy._core.core"
    __cuda_array_interface__ = {}

    def __init__(self, array):
        self.array = array
        self.device = Device()
        self.shape, self.dtype, self.ndim, self.size = array.shape, array.dtype, array.ndim, array.size
        self.flags = array.flags
        self.data = SimpleNamespace(ptr=array.ctypes.data)


def on_device(state, host=()):
    """A state (None, an array or a tuple) with its arrays as DeviceArrays, but for the parts
    `host` marks (host scalar states: the runtime keeps them NumPy); without `host`, 0-d
    parts stay NumPy."""
    if state is None:
        return None
    if isinstance(state, tuple):
        if not host:
            return tuple(on_device(s) for s in state)
        return tuple(s.copy() if keep else DeviceArray(s.copy()) for s, keep in zip(state, host))
    if (host[0] if host else state.ndim == 0):
        return state.copy()
    return DeviceArray(state.copy())


def on_host(value):
    return value.array if isinstance(value, DeviceArray) else value


class HostModule:
    """Stands in for the NVRTC-loaded cupy.RawModule: the host-compiled kernels."""

    def __init__(self, kernels):
        self.kernels = kernels

    def get_function(self, name):
        def call(grid, block, args):
            args = [on_host(a) for a in args]
            # kernels that may synchronise a block: multi-tensor, passes, finishes, and the
            # 8-bit kernels of stored states (a block's absmax reduced in shared memory)
            if name.endswith(("_multi", "_f32_q8")) or "_pass" in name or "_finish" in name:
                self.kernels.launch_blocks(name, args, blocks=grid[0], threads=THREADS)
            else:
                self.kernels.launch(name, args, blocks=grid[0], threads=THREADS)
        return call


def fake_cupy():
    return SimpleNamespace(
        cuda=SimpleNamespace(is_available=lambda: True),
        float64=np.float64,
        asarray=lambda a: DeviceArray(np.ascontiguousarray(a)),
        empty=lambda n, dtype: DeviceArray(np.zeros(n, dtype)),
    )


class HostLibraries:
    """Host builds of generated `.cu` files, built on first use into `folder`, kept by path;
    `launched` lists every (kernel, grid) run."""

    def __init__(self, folder, prebuilt=None):
        self.folder = Path(folder)
        self.by_path = dict(prebuilt or {})
        self.launched = []

    def kernels(self, source):
        source = Path(source).resolve()
        if source not in self.by_path:
            include = kernel_cache.header_path(source).parent
            self.by_path[source] = host_cuda.HostKernels(host_cuda.build(source, include, self.folder))
        return self.by_path[source]

    def module(self, source, arch, device, fmad=True):
        kernels = self.kernels(source)
        libraries = self

        class Recording(HostModule):
            def get_function(self, name):
                call = super().get_function(name)

                def record(grid, block, args):
                    libraries.launched.append((name, grid))
                    call(grid, block, args)
                return record
        return Recording(kernels)

    def run_stages(self, module, variant, weight, grad, arrays, scalars):
        """`cpu.run_stages` replaced: the matrix driver with the CUDA stage kernels on the host."""
        suffix = {np.dtype("float32"): "f32", np.dtype("float64"): "f64"}.get(weight.dtype)
        if suffix is None or variant.get("stages") is None:
            return False
        kernels = self.kernels(cupy_matrix.source_of(module))

        def launch(name, n, args):
            self.launched.append((name, n))
            kernels.launch(name, args, blocks=2, threads=3)

        variant["stages"](np, cupy_matrix.Stages(np, launch, ("host", module.__name__), suffix),
                          weight, grad, *arrays, **scalars)
        return True


def _may_share_memory(a, b):
    return np.may_share_memory(on_host(a), on_host(b))


def _host_state(state):
    return tuple(map(on_host, state)) if isinstance(state, tuple) else on_host(state)


def _host_partials(partials):
    """`group.partials` on the host arrays behind `DeviceArray`s (see the module's docstring)."""
    def run(engine, indices, weights, grads, states, *args, **kwargs):
        return partials(engine, indices, [on_host(w) for w in weights], [on_host(g) for g in grads],
                        [_host_state(s) for s in states], *args, **kwargs)
    return run


@contextlib.contextmanager
def host_cuda_backend(libraries):
    """Within: CuPy-backend launches and matrix stage drivers run `libraries`' host kernels
    (and cupy.may_share_memory sees the host arrays behind `DeviceArray`s)."""
    import cupy
    with mock.patch.object(cupy_backend, "cupy_module", fake_cupy), \
            mock.patch.object(kernel_cache, "module", libraries.module), \
            mock.patch.object(cpu, "run_stages", libraries.run_stages), \
            mock.patch.object(cupy, "may_share_memory", _may_share_memory), \
            mock.patch.object(group, "partials", _host_partials(group.partials)):
        yield libraries


class DeviceNoise:
    """Stands in for runtime.noise.Noise in the NumPy code: the numbers the kernels draw
    (Philox4x32-10 of optforge.cuh, through the host build of `host_cuda.PROBE`)."""

    def __init__(self, probe, seed, index, t):
        self.lib = probe.lib
        self.key, self.t = launch_table.noise_words(seed, index, t)

    def normal(self, tag, mean, std, like, out=None):
        math = np.float64 if like.dtype == np.float64 else np.float32
        z = np.empty(like.size, math)
        name = "om_normal_f64" if math is np.float64 else "om_normal_f32"
        getattr(self.lib, name)(host_cuda.pointer(z), host_cuda.c_int64(z.size), host_cuda.c_uint64(self.key),
                                host_cuda.c_uint64(self.t), host_cuda.c_int(tag))
        sample = (z.reshape(like.shape) * std + mean).astype(math, copy=False)
        if out is None:
            return sample.astype(like.dtype)
        np.copyto(out, sample, casting="same_kind")
        return out


def probe(folder):
    """The host build of `host_cuda.PROBE` (optforge.cuh's noise and conversions)."""
    include = Path(__file__).resolve().parent.parent / "generated" / "cuda"
    return host_cuda.HostKernels(host_cuda.build(host_cuda.PROBE, include, folder))


@contextlib.contextmanager
def device_noise(probe_kernels):
    """Within: `step` draws the kernels' noise instead of NumPy's generator."""
    from ..runtime.engine import plans
    with mock.patch.object(plans, "Noise",
                           lambda seed, index, t: DeviceNoise(probe_kernels, seed, index, t)):
        yield
