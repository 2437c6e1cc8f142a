"""The generated CUDA sources built as host C++ and called through ctypes.

Each generated `.cu` file is compiled by g++ with `verify/host_shim.h`
(CUDA keywords defined away, block and thread indices settable), without FMA
contraction so that float results can be compared bit for bit with NumPy. Kernels are
called once per emulated (block, thread): element-wise kernels need no
synchronisation, so running the threads one after another is exact.

One shared object holds all the kernels of a spec. It is built once and kept on disk
(the tests keep it in pytest's cache, `.pytest_cache/d/cuda-host/`; `optforge check
--verify` under the cache folder's `cuda-host/`), named by a hash of
everything that decides its bytes: the source, `optforge.cuh`, the shim, the flags and
the compiler's version. A later run reuses it; any change to one of these builds anew.
The sources compiled together share one precompiled header of the shim and `optforge.cuh`
(at -O0, parsing them was most of each compile).
"""
import contextlib
import ctypes
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

c_int, c_int64, c_uint64 = ctypes.c_int, ctypes.c_longlong, ctypes.c_ulonglong

SHIM = Path(__file__).resolve().with_name("host_shim.h")
PROBE = SHIM.with_name("probe.cpp")     # optforge.cuh's conversions and noise as plain functions
# -O0: a third less compile time than -O1 for the same bits (SSE arithmetic, no contraction,
# no fast-math); the kernels run on a handful of elements, so their speed does not matter.
FLAGS = ["-std=c++20", "-O0", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared"]


def pointer(array):
    return ctypes.c_void_p(array.ctypes.data)


def compiler():
    return shutil.which("g++")


@functools.lru_cache(maxsize=None)
def compiler_version():
    """The compiler's identity for the cache key: its version banner and target."""
    banner = subprocess.run([compiler(), "--version"], capture_output=True, text=True, check=True).stdout
    machine = subprocess.run([compiler(), "-dumpmachine"], capture_output=True, text=True, check=True).stdout
    return banner.splitlines()[0] + " " + machine.strip()


def _digest(*parts):
    digest = hashlib.sha256()
    for part in parts:           # length-prefixed, so no two inputs concatenate alike
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()[:20]


def key(source, include):
    """The hash naming a source's library: every input that decides the library's bytes."""
    return _digest(Path(source).read_bytes(), (Path(include) / "optforge.cuh").read_bytes(), SHIM.read_bytes(),
                   " ".join(FLAGS).encode(), compiler_version().encode())


def library_path(source, include, out_dir):
    return Path(out_dir) / f"{Path(source).stem}-{key(source, include)}.so"


@contextlib.contextmanager
def _exclusive(target):
    """One process builds a file; the others (test workers, verifier workers) wait for it,
    then find it built instead of compiling it again."""
    with open(target.with_name(f".{target.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _compile(command, target, what):
    """Run g++ writing to a private name, then rename: a concurrent run never reads half a file."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    result = subprocess.run([compiler(), *command, "-o", str(partial)], capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"g++ failed on {what}:\n{result.stderr}")
    os.replace(partial, target)


def precompiled_header(include, out_dir):
    """The shim and `include`'s optforge.cuh as one GCC precompiled header, so that they are
    parsed once rather than once per source (most of a source's compile time at -O0).
    Returns the header to pass with -include: g++ loads the `.gch` beside it, or, if that
    did not fit, reads the header's text; the library is the same either way."""
    cuh = (Path(include) / "optforge.cuh").resolve()
    text = f'#include "{SHIM}"\n#include "{cuh}"\n'
    name = "host-" + _digest(text.encode(), cuh.read_bytes(), SHIM.read_bytes(), " ".join(FLAGS).encode(),
                             compiler_version().encode())
    header = Path(out_dir) / f"{name}.h"
    gch = header.with_name(header.name + ".gch")
    if not gch.exists():
        with _exclusive(gch):
            if not gch.exists():
                partial = header.with_name(f".{header.name}.{os.getpid()}")
                partial.write_text(text)
                os.replace(partial, header)
                flags = [f for f in FLAGS if f != "-shared"]
                _compile([*flags, "-x", "c++-header", str(header)], gch, f"the precompiled header {header}")
    return header


def build(source, include, out_dir, header=None):
    """Compile one source (a .cu file, i.e. all the kernels of a spec, or a test .cpp) into a
    shared library in out_dir, unless the library for these exact inputs is already there;
    returns its path. `header`: a `precompiled_header` for `include`, else the shim is read."""
    source = Path(source)
    target = library_path(source, include, out_dir)
    if not target.exists():
        with _exclusive(target):
            if not target.exists():
                _compile([*FLAGS, "-include", str(header or SHIM), f"-I{include}", "-x", "c++", str(source)],
                         target, source)
    return target


def build_together(sources, include, out_dir, header=None):
    """Compile several sources (all sharing `include`'s optforge.cuh; their kernels named apart
    by their rules) as one translation unit into one library: one compiler start and one
    pass over the headers for all. Returns its path."""
    sources = sorted(Path(s).resolve() for s in sources)
    name = _digest(*(s.read_bytes() for s in sources), (Path(include) / "optforge.cuh").read_bytes(),
                   SHIM.read_bytes(), " ".join(FLAGS).encode(), compiler_version().encode())
    target = Path(out_dir) / f"together-{name}.so"
    if not target.exists():
        unit = Path(out_dir) / f"together-{name}.cpp"
        unit.write_text("".join(f'#include "{s}"\n' for s in sources))
        _compile([*FLAGS, "-include", str(header or SHIM), f"-I{include}", "-x", "c++", str(unit)],
                 target, f"{len(sources)} sources together")
    return target


def build_all(sources, include, out_dir, workers=2, prune=False):
    """build() every source; sources that need compiling share one precompiled header.
    prune: then delete every other library and header in out_dir (left by older sources)."""
    missing = [s for s in sources if not library_path(s, include, out_dir).exists()]
    header = precompiled_header(include, out_dir) if len(missing) > 1 else None
    with ThreadPoolExecutor(workers) as pool:
        built = dict(zip(sources, pool.map(lambda s: build(s, include, out_dir, header), sources)))
    if prune:
        keep = set(built.values())
        for path in Path(out_dir).iterdir():
            if path.suffix in (".so", ".h", ".gch") and path not in keep:
                path.unlink(missing_ok=True)
    return built


def _argument(value):
    if isinstance(value, np.ndarray):
        return ctypes.c_void_p(value.ctypes.data)
    if isinstance(value, np.float32):
        return ctypes.c_float(value)
    if isinstance(value, np.float64):
        return ctypes.c_double(value)
    if isinstance(value, np.uint64):
        return ctypes.c_ulonglong(int(value))
    if isinstance(value, np.int32):
        return ctypes.c_int(int(value))
    if isinstance(value, (int, np.integer)):
        return ctypes.c_longlong(int(value))
    raise TypeError(f"no C argument for {type(value).__name__}")


class HostKernels:
    """The kernels of one host-compiled `.cu` file."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(str(path))

    def launch(self, name, args, blocks=2, threads=3):
        """Element-wise kernels: every (block, thread) in turn on this thread."""
        kernel = getattr(self.lib, name)
        converted = [_argument(a) for a in args]
        for block in range(blocks):
            for thread in range(threads):
                self.lib.om_set_thread(block, thread, blocks, threads)
                kernel(*converted)

    def launch_blocks(self, name, args, blocks=3, threads=4):
        """Kernels that synchronise a block: one block at a time, its threads concurrently
        (ctypes releases the GIL during the call)."""
        kernel = getattr(self.lib, name)
        converted = [_argument(a) for a in args]

        def run(block, thread):
            self.lib.om_set_thread(block, thread, blocks, threads)
            kernel(*converted)

        for block in range(blocks):
            self.lib.om_begin_block(threads)
            workers = [threading.Thread(target=run, args=(block, t)) for t in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
