"""The CuPy backend's own code path (runtime/backends/cupy_backend.py) without a GPU.

`optimizer.update` on stand-ins for CuPy arrays goes through the real runtime: the checks,
the planning, the grouping by (variant, dtype), the single, multi-tensor and multi-pass
launches with their tables and device buffers. Only the last step is replaced: kernels
come from the host-compiled `.cu` files (optforge.verify.host_device) instead of NVRTC, and device
memory is host memory. Blocks keep the runtime's grid but run 4 threads each (the kernels
stride by blockDim, and block sums need a power of two). Results are compared with the
NumPy code on NumPy arrays: bit for bit for element-wise rules, within NORM_TOLERANCE for
rules with reductions.
"""

import numpy as np
import pytest

import optforge
from optforge.runtime.backends import launch_table
from optforge.verify import host_device

import cuda_host
from test_cuda_cpu import NORM_TOLERANCE, NO_WEIGHT_DECAY, STEPS, assert_same_bits, gradient, parts

pytest.importorskip("cupy")   # array_module recognises CuPy arrays through the cupy package


def device_steps(rng, shape, dtype, optimizers, nan=True):
    """(t, gradient) per step of STEPS, with every optimizer's lr/wd/rescale/clip set for it."""
    for t, (lr, wd, rescale, clip, with_nan) in enumerate(STEPS, start=1):
        for opt in optimizers:
            opt.lr, opt.rescale_grad, opt.clip_gradient = lr, rescale, clip
            opt.wd = NO_WEIGHT_DECAY.get(type(opt).__name__.lower(), wd)
        yield t, gradient(rng, shape, dtype, nan and with_nan)


FakeDevice, FakeCupyArray, HostModule = host_device.Device, host_device.DeviceArray, host_device.HostModule
fake, on_host = host_device.on_device, host_device.on_host


@pytest.fixture
def host_backend(host, request, tmp_path_factory):
    """The CuPy backend's launches run the host-compiled kernels (optforge.verify.host_device);
    a spec of optforge.load_spec gets its cached .cu built on first use."""
    folder = cuda_host.cache_folder(request.config, tmp_path_factory)
    libraries = host_device.HostLibraries(folder, prebuilt={path.resolve(): k for path, k in host.items()})
    with host_device.host_cuda_backend(libraries):
        yield libraries


from test_cuda_cpu import host  # noqa: E402  (the session fixture building every .cu for the host)

CASES = [("mxnet2", "adam", {}), ("mxnet2", "sgd", {"momentum": 0.9}), ("mxnet2", "rmsprop", {"centered": True}),
         ("mxnet1", "nadam", {}), ("mxnet2", "lamb", {}), ("mxnet2", "lars", {"momentum": 0.9}),
         ("mxnet2", "groupadagrad", {}), ("mxnet2", "lans", {})]
SHAPES = [(3, 21847), (7,), (40, 25)]     # several chunks and rows across chunks, a tiny tensor, packs


@pytest.mark.parametrize("together", [False, True], ids=["one-per-update", "one-update"])
@pytest.mark.parametrize("flavor,name,hyper", CASES, ids=[f"{f}-{n}" for f, n, _ in CASES])
def test_update_on_device_arrays_runs_the_kernels_like_numpy(host_backend, flavor, name, hyper, together):
    reference = optforge.create(name, flavor=flavor, use_fused_step=False, **hyper)
    fused = optforge.create(name, flavor=flavor, use_fused_step=True, **hyper)
    meta = launch_table.metadata(type(fused)._module)
    exact = not any(v["passes"] for v in meta.VARIANTS.values())
    rng = np.random.default_rng(21)
    ref_w = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ref_s = [reference.create_state(i, w) for i, w in enumerate(ref_w)]
    dev_w = [FakeCupyArray(w.copy()) for w in ref_w]
    dev_s = [fake(s) for s in ref_s]
    indices = list(range(len(SHAPES)))
    for t, _ in device_steps(rng, (1,), np.float32, (reference, fused), nan=False):
        grads = [gradient(rng, s, np.float32, exact and STEPS[t - 1][4]) for s in SHAPES]
        if together:
            reference.update(indices, ref_w, grads, ref_s)
            fused.update(indices, dev_w, [FakeCupyArray(g) for g in grads], dev_s)
        else:
            for i in indices:
                reference.update(i, ref_w[i], grads[i], ref_s[i])
                fused.update(i, dev_w[i], FakeCupyArray(grads[i]), dev_s[i])
        for i in indices:
            for what, d, r in [("weight", dev_w[i], ref_w[i])] + [
                    (f"state part {k}", a, b) for k, (a, b) in enumerate(zip(parts(dev_s[i]), parts(ref_s[i])))]:
                if exact:
                    assert_same_bits(on_host(d), r, f"step {t}, tensor {i}: {what}")
                else:
                    np.testing.assert_allclose(on_host(d), r, err_msg=f"step {t}, tensor {i}: {what}",
                                               **NORM_TOLERANCE["float32"])


@pytest.mark.parametrize("name", ["adam", "lamb"])
def test_multi_precision_update_runs_the_master_copy_kernels(host_backend, name):
    reference = optforge.create(name, multi_precision=True, use_fused_step=False)
    fused = optforge.create(name, multi_precision=True, use_fused_step=True)
    rng = np.random.default_rng(22)
    weight = rng.standard_normal((40, 25)).astype(np.float16)
    ref_w, ref_s = weight.copy(), reference.create_state_multi_precision(0, weight)
    dev_w, dev_s = FakeCupyArray(weight.copy()), fake(reference.create_state_multi_precision(0, weight))
    for t, grad in device_steps(rng, weight.shape, np.float16, (reference, fused), nan=False):
        reference.update_multi_precision(0, ref_w, grad, ref_s)
        fused.update_multi_precision(0, dev_w, FakeCupyArray(grad), dev_s)
        if name == "adam":
            assert_same_bits(on_host(dev_w), ref_w, f"step {t}: weight")
            assert_same_bits(on_host(dev_s[0]), ref_s[0], f"step {t}: master copy")
        else:
            np.testing.assert_allclose(on_host(dev_s[0]), ref_s[0], **NORM_TOLERANCE["float32"])
            np.testing.assert_allclose(on_host(dev_w).astype(np.float32), ref_w.astype(np.float32),
                                       **NORM_TOLERANCE["float16"])


def test_a_non_contiguous_device_array_is_a_clear_error_before_anything_changes(host_backend):
    opt = optforge.create("adam", use_fused_step=True)
    weight = np.ones((4, 6), np.float32)
    view = FakeCupyArray(weight[:, ::2])
    state = fake(opt.create_state(0, weight[:, ::2].copy()))
    with pytest.raises(ValueError, match="not C-contiguous"):
        opt.update(0, view, FakeCupyArray(np.ones((4, 3), np.float32)), state)
    assert (weight == 1).all() and opt._index_update_count == {}


def test_a_spec_loaded_with_load_spec_runs_its_cached_kernels(host_backend, repo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    spec = tmp_path / "myadam.toml"
    spec.write_text((repo_root / "specs" / "adam.toml").read_text().replace('name = "Adam"', 'name = "MyAdam"'))
    cls = optforge.load_spec(spec, register=False)
    assert launch_table.metadata(cls._module).VARIANTS      # found next to the cached NumPy module
    reference, fused = cls(use_fused_step=False), cls(use_fused_step=True)
    rng = np.random.default_rng(23)
    weight = rng.standard_normal((40, 25)).astype(np.float32)
    ref_w, ref_s = weight.copy(), reference.create_state(0, weight)
    dev_w, dev_s = FakeCupyArray(weight.copy()), fake(reference.create_state(0, weight))
    for t, grad in device_steps(rng, weight.shape, np.float32, (reference, fused)):
        reference.update(0, ref_w, grad, ref_s)
        fused.update(0, dev_w, FakeCupyArray(grad), dev_s)
        assert_same_bits(on_host(dev_w), ref_w, f"step {t}: weight")


class OtherDevice(FakeDevice):
    id = 1

    def __eq__(self, other):
        return isinstance(other, OtherDevice)

    def __hash__(self):
        return 1


def test_parameters_on_two_devices_in_one_update_are_a_clear_error_before_anything_changes(host_backend):
    opt = optforge.create("sgd", momentum=0.9, use_fused_step=True)
    weights = [np.ones(5, np.float32), np.ones(5, np.float32)]
    dev_w = [FakeCupyArray(w) for w in weights]
    dev_g = [FakeCupyArray(np.ones(5, np.float32)) for _ in weights]
    states = [fake(opt.create_state(i, w)) for i, w in enumerate(weights)]
    for array in (dev_w[1], dev_g[1], states[1]):
        array.device = OtherDevice()
    with pytest.raises(ValueError, match="one update runs on one device"):
        opt.update([0, 1], dev_w, dev_g, states)
    assert all((w == 1).all() for w in weights) and opt._index_update_count == {}
