"""`optforge bench`: the ResNet-50 layout and a short CPU run that prints every row.

Timings on a shared machine are noise: the run is checked for its structure (one row per
optimizer and layout, the right parameter and tensor counts) and for sane figures (finite,
not negative), never for the printed digits of a timing, which round to 0.00 under load."""
import math
import subprocess
import sys

import numpy as np

from optforge import bench


def test_resnet50_layout_is_torchvisions():
    shapes = bench.resnet50_shapes()
    assert len(shapes) == 161
    assert sum(int(np.prod(s)) for s in shapes) == 25_557_032   # torchvision's resnet50 parameter count


def _number(text):
    value = float(text)
    assert math.isfinite(value) and value >= 0, text
    return value


def test_cpu_bench_prints_a_row_per_optimizer_and_layout():
    result = subprocess.run([sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--min-log2", "10",
                             "--max-log2", "11", "--repeat", "1"], capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("device: CPU (NumPy); device-to-device copy:")
    _number(lines[0].split("copy:")[1].split()[0])
    assert lines[1].split() == ["optimizer", "params", "tensors", "ms", "GB/s", "/copy", "torch", "ms", "torch/ours"]
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [(name, layout) for name in ("adam", "sgd", "lamb")
                                             for layout in ("2^10", "2^11", "resnet50")]
    counts = {"2^10": (1024, 1), "2^11": (2048, 1), "resnet50": (25_557_032, 161)}
    for row in rows:
        assert len(row) == 9, row
        assert (int(row[2].strip("()")), int(row[3])) == counts[row[1]]
        for figure in row[4:7]:      # ms, GB/s, /copy
            _number(figure)
        if (row[7], row[8]) != ("-", "-"):     # torch's figures, when torch is installed
            _number(row[7]), _number(row[8])
