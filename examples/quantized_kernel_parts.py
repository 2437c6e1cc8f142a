"""Where the time of the 8-bit Adam kernel goes (not installed; run from a checkout).

Builds generated/cpu/adam.cpp's f32 and f32_q8 entry points of the default variant, a copy
of the f32_q8 one that finds each code with one load from the 64 KiB table (the header's
AVX-512 search switched off), and one with no code lookup at all (the grid index stored
as the code: wrong codes, everything else the same), then times the four interleaved at
2^22 parameters, 20 times each, on 1 and 2 threads: f32 moves 28 bytes per parameter,
f32_q8 16.06.

    python examples/quantized_kernel_parts.py
"""
import ctypes
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from optforge.runtime.backends import quantized as Q

ROOT = Path(__file__).resolve().parent.parent / "generated" / "cpu"
SEARCH = "#if defined(__AVX512BW__)\n    const __m512i l0"
LOOKUP = "codes[i] = lut[index[i]] & keep;"
FLAGS = ["-std=c++17", "-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared",
         "-DOM_ONE_KERNEL", "-DOM_KERNEL_adam_default_f32_q8", "-DOM_KERNEL_adam_default_f32"]


def build(folder, name):
    out = folder / f"{name}.so"
    subprocess.check_call(["g++", *FLAGS, str(folder / "adam.cpp"), "-o", str(out)])
    return ctypes.CDLL(str(out))


def main(n=1 << 22, repeat=20):
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name in ("real", "table", "without_lookups"):
            folder = Path(tmp) / name
            folder.mkdir()
            shutil.copy(ROOT / "adam.cpp", folder)
            header = (ROOT / "optforge_cpu.h").read_text()
            if name != "real":      # the search off: every code from the table
                assert SEARCH in header
                header = header.replace(SEARCH, "#if 0\n    const __m512i l0")
            if name == "without_lookups":
                assert LOOKUP in header
                header = header.replace(LOOKUP, "codes[i] = (unsigned char)index[i] & keep;")
            (folder / "optforge_cpu.h").write_text(header)
            folders[name] = build(folder, name)
        real, table, nolut = folders["real"], folders["table"], folders["without_lookups"]
        rng = np.random.default_rng(0)
        w = rng.standard_normal(n, dtype=np.float32)
        g = rng.standard_normal(n, dtype=np.float32) * 1e-2
        m, v = Q.quantize(g * 0.1, True), Q.quantize(g * g * 1e-3, False)
        m32, v32 = Q.load_8bit(m), Q.load_8bit(v)

        def p(a):
            return ctypes.c_void_p(a.ctypes.data)

        maps = [p(x) for x in (Q.code_table(True), Q.code_table(False), Q.lookup_table(True), Q.lookup_table(False),
                               Q.search_table(True), Q.search_table(False))]
        scalars = [ctypes.c_float(x) for x in (0.9, 0.999, 0.1, 0.001, np.inf, 1e-8, 1e-3, 1.0, 0.0)]
        count = ctypes.c_longlong(n)
        q8 = [p(w), p(g), p(m.codes), p(m.absmax), p(v.codes), p(v.absmax), count, *scalars, *maps]
        for threads in (1, 2):
            t = ctypes.c_int(threads)
            runs = {"f32": lambda: real.adam_default_f32(p(w), p(g), p(m32), p(v32), count, *scalars, t),
                    "f32_q8": lambda: real.adam_default_f32_q8(*q8, t),
                    "f32_q8, table lookups": lambda: table.adam_default_f32_q8(*q8, t),
                    "f32_q8 without lookups": lambda: nolut.adam_default_f32_q8(*q8, t)}
            times = {k: [] for k in runs}
            for _ in range(repeat):
                for k, run in runs.items():
                    start = time.perf_counter()
                    run()
                    times[k].append(time.perf_counter() - start)
            for k, ts in times.items():
                print(f"threads {threads}  {k:<24} min {min(ts) * 1e3:6.2f} ms  median {statistics.median(ts) * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
