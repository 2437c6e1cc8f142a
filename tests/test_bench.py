"""`optforge bench`: the layouts, the bytes per parameter, and short CPU runs that print every
row (structure only: timings on a shared machine are not asserted)."""
import ctypes
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import optforge
from optforge import bench


def test_resnet50_layout_is_torchvisions():
    shapes = bench.resnet50_shapes()
    assert len(shapes) == 161
    assert sum(int(np.prod(s)) for s in shapes) == 25_557_032   # torchvision's resnet50 parameter count


def test_cpu_layouts_are_the_sizes_and_the_two_models():
    labels = [label for label, _ in bench.cpu_layouts()]
    assert labels == [f"2^{k}" for k in range(16, 27)] + ["resnet50", "1000x4096"]
    shapes = dict(bench.cpu_layouts())["1000x4096"]
    assert len(shapes) == 1000 and set(shapes) == {(4096,)}


@pytest.mark.parametrize("name,expected", [("adam", 28), ("sgd", 20), ("rmsprop", 20), ("adagrad", 20),
                                           ("adadelta", 28), ("lamb", 40), ("prodigy", 52), ("dadaptadam", 48),
                                           ("clippedadamw", 32)])
def test_bytes_per_parameter_are_the_rules_minimum_traffic(name, expected):
    # fp32: Adam reads p, g, m, v and writes p, m, v (28 B); SGD with momentum, RMSprop and
    # Adagrad one state (20 B); Adadelta two (28 B); LAMB in two passes 40 B; the group
    # rules a partials pass and the update: Prodigy 16 + 36 B (p0 read only), DAdaptAdam
    # 12 + 36 B, ClippedAdamW 4 + 28 B
    flavor, hyper, *_ = bench.CPU_OPTIMIZERS[name]
    opt = optforge.create(name, flavor=flavor, **hyper)
    assert bench.bytes_per_parameter(name, opt, np.zeros(4, np.float32)) == expected


def test_cpu_bench_prints_a_row_per_optimizer_and_layout(tmp_path):
    command = [sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--min-log2", "10", "--max-log2", "11",
               "--repeat", "2", "--optimizers", "adam,rmsprop,lamb", "--no-models"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("device: CPU (") and "streaming copy:" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [(name, layout) for name in ("adam", "rmsprop", "lamb")
                                            for layout in ("2^10", "2^11")]
    for row in rows:
        params, tensors, moved = int(row[2]), int(row[3]), int(row[4])
        assert params == 2 ** int(row[1][2:]) and tensors == 1
        best, median, gbs, ratio = map(float, row[5:9])
        assert 0 < best <= median and gbs > 0 and ratio > 0
        assert moved == {"adam": 28, "rmsprop": 20, "lamb": 40}[row[0]]
        if row[9] != "-":      # torch installed: its tier, min <= median, a speed ratio
            assert row[9] == {"adam": "fused", "rmsprop": "foreach"}[row[0]]
            assert 0 < float(row[10]) <= float(row[11]) and float(row[13]) > 0
        else:
            assert row[9:] == ["-"] * 5


def test_group_rules_run_against_their_authors_packages_and_clipped_adamw():
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--min-log2", "10", "--max-log2", "10",
               "--repeat", "2", "--optimizers", "prodigy,dadaptadam,clippedadamw", "--no-models"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert "load average" in lines[0]
    assert "clippedadamw: clip_grad_norm_(max_norm=1.0, foreach) then AdamW (fused)" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1], int(r[4])) for r in rows] == [("prodigy", "2^10", 52), ("dadaptadam", "2^10", 48),
                                                       ("clippedadamw", "2^10", 32)]
    for row, package in zip(rows, ("prodigyopt", "dadaptation", None)):
        installed = package is None or importlib.util.find_spec(package) is not None
        assert (package or "clip") in lines[0]
        if installed:       # the peer ran beside, with its tier
            assert row[9] == ("fused" if package is None else "single") and float(row[13]) > 0
            if package is not None:
                assert f"{package} not installed" not in lines[0]
        else:
            assert row[9:] == ["-"] * 5 and f"{package} not installed" in lines[0]


def test_cpu_bench_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "bench.png"
    rows = [{"optimizer": "adam", "layout": f"2^{k}", "params": 2 ** k, "tensors": 1, "gbs": float(k),
             "torch_gbs": k / 2, "tier": "fused"} for k in (10, 11)]
    bench.plot_cpu(rows, 30.0, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_optimizer_is_refused():
    result = subprocess.run([sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--optimizers", "adamm"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "unknown optimizer(s) adamm" in result.stderr


def test_matrix_rules_run_on_matrix_layouts_against_torch():
    assert [label for label, _ in bench.cpu_layouts(10, 11, matrices=True)] == \
        ["32x32", "32x64", "1024x4096", "4096x4096"]
    command = [sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--min-log2", "8", "--max-log2", "9",
               "--repeat", "2", "--optimizers", "muon,adafactor", "--no-models"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    # muon also measures optforge.torch.Muon with ns_dtype="bfloat16" (muon-bf16)
    assert [(r[0], r[1]) for r in rows] == [("muon", "16x16"), ("muon", "16x32"),
                                            ("muon-bf16", "16x16"), ("muon-bf16", "16x32"),
                                            ("adafactor", "16x16"), ("adafactor", "16x32")]
    assert [r[9] for r in rows] == ["single"] * 4 + ["foreach"] * 2   # torch.optim ran beside
    assert {int(r[4]) for r in rows[:4]} == {20}     # the same rule's bytes: p, g, buffer


def test_torch_loop_prints_every_case_with_the_overhead_target():
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--torch-loop", "--repeat", "2",
               "--optimizers", "sgd", "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("device: CPU (") and "1 threads each side" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1], int(r[2])) for r in rows] == [
        ("sgd", "mlp-train", 6), ("sgd", "mlp-step", 6), ("sgd", "resnet50-step", 161),
        ("sgd", "overhead-161", 161), ("sgd", "overhead-1000", 1000)]
    for row in rows:
        best, median, torch_best, torch_median, speed = map(float, row[3:8])
        assert 0 < best <= median and 0 < torch_best <= torch_median and speed > 0
        if row[1].startswith("overhead"):   # the step's time in us, and 30 us + 1 us per tensor
            assert float(row[8]) > 0 and float(row[9]) == 30 + int(row[2])
        else:
            assert row[8:] == ["-", "-"]


def test_torch_loop_needs_the_cpu_and_known_optimizers():
    result = subprocess.run([sys.executable, "-m", "optforge", "bench", "--torch-loop"], capture_output=True, text=True)
    assert result.returncode != 0 and "--device cpu" in result.stderr
    result = subprocess.run([sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--torch-loop",
                             "--optimizers", "lamb"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown optimizer(s) lamb for --torch-loop" in result.stderr


def test_mlp_has_136k_parameters():
    torch = pytest.importorskip("torch")
    assert sum(p.numel() for p in bench.mlp(torch).parameters()) == 136_074


@pytest.mark.parametrize("copy", ["stream_copy", "stream_copy_nt"])
def test_the_roofline_copy_copies_every_element_at_any_alignment_and_thread_count(copy):
    from pathlib import Path
    from optforge.runtime.backends import native_build
    try:
        native_build.compiler()
    except native_build.CompilerMissing as err:
        pytest.skip(f"no C++ compiler: {err}")
    lib = native_build.load(Path(bench.__file__).with_name("bench_copy.cpp"))
    rng = np.random.default_rng(5)
    for n, offset, threads in [(0, 0, 2), (5, 1, 1), (1000, 3, 2), ((1 << 17) + 7, 1, 2), ((1 << 17) + 7, 0, 3)]:
        src = rng.standard_normal(n + 1, dtype=np.float32)[1:]      # a misaligned source too
        dst = np.zeros(n + offset + 1, np.float32)
        getattr(lib, copy)(ctypes.c_void_p(src.ctypes.data), ctypes.c_void_p(dst[offset:].ctypes.data),
                           ctypes.c_longlong(n), ctypes.c_int(threads))
        np.testing.assert_array_equal(dst[offset:offset + n], src)
        assert not dst[:offset].any() and dst[offset + n] == 0          # nothing written outside


def test_the_streaming_roofline_is_a_native_copy_and_nan_without_it(monkeypatch):
    from optforge.runtime.backends import native
    if native.backend() != "native":
        pytest.skip("no native backend")
    gbs = bench.streaming_gbs(2, n=1 << 18, repeat=2)
    assert 0.1 < gbs < 10_000
    monkeypatch.setattr(native, "backend", lambda: "numpy")
    assert np.isnan(bench.streaming_gbs(2, n=1 << 18, repeat=2))


def test_state_storage_bench_prints_bytes_per_parameter_and_the_peers():
    """`--state-storage 8bit`: Adam's 8-bit moments move 1 byte each way per parameter plus
    an absmax per 256 (8 + 4 + 2 * 2 * (1 + 4 / 256) = 16.0625 B/p) and take 2.03125 B/p."""
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--state-storage", "8bit",
               "--min-log2", "12", "--max-log2", "12", "--repeat", "2", "--optimizers", "adam", "--no-models"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("device: CPU (") and "load average" in lines[0]
    row = lines[-1].split()
    assert row[:3] == ["adam", "2^12", "4096"] and row[3:5] == ["16.06", "2.031"]
    assert float(row[5]) > 0 and float(row[9]) > 0
    refused = subprocess.run(command[:4] + ["--state-storage", "8bit"], capture_output=True, text=True)   # on the GPU
    assert refused.returncode != 0 and "--state-storage runs on the CPU" in refused.stderr


@pytest.mark.parametrize("storage", ["bfloat16", "bfloat16_stochastic"])
def test_state_storage_bench_prints_bfloat16_rows(storage):
    """`--state-storage bfloat16` and `bfloat16_stochastic`: Adam's bfloat16 moments move 2
    bytes each way per parameter (8 + 4 + 2 * 2 * 2 = 20 B/p) and take 4 B/p; the row has
    its times and speeds like the 8-bit one (no bitsandbytes column: it has no such states)."""
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--state-storage", storage,
               "--min-log2", "12", "--max-log2", "12", "--repeat", "2", "--optimizers", "adam", "--no-models"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert f"state storage {storage};" in lines[1]
    row = lines[-1].split()
    assert row[:5] == ["adam", "2^12", "4096", "20.00", "4.000"]
    # times, GB/s, torch's time and the speed are positive; the fraction of the copy is
    # printed with two decimals, 0.00 for a slow step of 4096 parameters
    minimum, median, gbs, copy, torch_ms, speed = map(float, row[5:11])
    assert min(minimum, median, gbs, torch_ms, speed) > 0 and copy >= 0 and row[-2:] == ["-", "-"]
