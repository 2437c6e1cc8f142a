"""Time the native CPU kernels' build cache: per spec, a cold compile of the kernel a first
step runs, and loading it again from the cache in a fresh process.

    python examples/native_build_times.py [--whole] [spec.cpp ...]

Every measurement uses a fresh cache folder ($OPTFORGE_CACHE_DIR set to a temporary
folder). Per source under generated/cpu (or those named):
- cold: `native_build.load(source, kernel)` for its first variant's float32 kernel, in a
  cache holding nothing (the compiler runs);
- load: the same in a new process with that cache (hash of source and library, dlopen),
  the first kernel of the process (it also runs `$CXX --version` once) and a second one;
- whole (with --whole): the whole file as one library, as it was built before kernels were
  compiled one at a time.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from optforge.runtime.backends import native_build

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from optforge.runtime.backends import native_build
source, first, second = sys.argv[1], sys.argv[2], sys.argv[3]
t1 = time.perf_counter()
native_build.load(source, first)
t2 = time.perf_counter()
native_build.load(source, second)
t3 = time.perf_counter()
print(json.dumps({"compiled": len(native_build.compiled), "first": t2 - t1, "second": t3 - t2}))
"""


def first_f32_kernels(source):
    names = sorted(native_build.kernel_names(source.read_text()))
    f32 = [n for n in names if n.endswith("_f32")]
    return f32[0], (f32[1] if len(f32) > 1 else next(n for n in names if n.endswith("_f64")))


def run_probe(source, first, second, cache):
    env = dict(os.environ, OPTFORGE_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", PROBE, str(source), first, second], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="*", type=Path)
    parser.add_argument("--whole", action="store_true", help="also time the whole file as one library")
    args = parser.parse_args()
    sources = [s.resolve() for s in args.sources] or sorted((ROOT / "generated" / "cpu").rglob("*.cpp"))
    print(f"{'source':32} {'kernels':>7} {'cold s':>7} {'load ms':>8} {'next ms':>8}"
          + (f" {'whole s':>8}" if args.whole else ""))
    for source in sources:
        first, second = first_f32_kernels(source)
        count = len(native_build.kernel_names(source.read_text()))
        with tempfile.TemporaryDirectory() as cache:
            cold = run_probe(source, first, second, cache)          # compiles both
            warm = run_probe(source, first, second, cache)          # loads both
        assert cold["compiled"] == 2 and warm["compiled"] == 0, (cold, warm)
        line = (f"{str(source.relative_to(ROOT / 'generated' / 'cpu')):32} {count:7d} {cold['first']:7.2f} "
                f"{warm['first'] * 1e3:8.2f} {warm['second'] * 1e3:8.2f}")
        if args.whole:
            with tempfile.TemporaryDirectory() as cache:
                os.environ["OPTFORGE_CACHE_DIR"] = cache
                start = time.perf_counter()
                native_build.library_path(source)
                line += f" {time.perf_counter() - start:8.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
