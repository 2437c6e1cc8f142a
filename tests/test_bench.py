"""`optforge bench`: the ResNet-50 layout and a short CPU run that prints every row."""
import subprocess
import sys

import numpy as np

from optforge import bench


def test_resnet50_layout_is_torchvisions():
    shapes = bench.resnet50_shapes()
    assert len(shapes) == 161
    assert sum(int(np.prod(s)) for s in shapes) == 25_557_032   # torchvision's resnet50 parameter count


def test_cpu_bench_prints_a_row_per_optimizer_and_layout():
    result = subprocess.run([sys.executable, "-m", "optforge", "bench", "--device", "cpu", "--min-log2", "10",
                             "--max-log2", "11", "--repeat", "1"], capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("device: CPU (NumPy); device-to-device copy:")
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [(name, layout) for name in ("adam", "sgd", "lamb")
                                             for layout in ("2^10", "2^11", "resnet50")]
    for row in rows:
        gbs, ratio = float(row[5]), float(row[6])
        assert gbs > 0 and ratio > 0
