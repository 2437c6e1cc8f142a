"""Native CPU kernels: compiled with the system C++ compiler on first use, cached on disk.

A generated `generated/cpu/<spec>.cpp` (all its variants and storage dtypes: one shared
object per spec) is compiled by `$CXX`, else the first of c++, g++, clang++ on the PATH,
and loaded with ctypes: no compiled extension ships in the wheel, nothing is built at
install time, and nothing is compiled or loaded at `import optforge`.

Flags: `-O3 -fno-math-errno` (sqrtf vectorises), `-ffp-contract=off` (no FMA contraction:
every operation rounds as NumPy's ufuncs do, so float32/float64 results are bitwise the
NumPy code's), `-fopenmp` (threads) and `-march=native`: this machine's full vector ISA
(AVX-512 where present). The library is used only on the machine that built it, and the
CPU's identity and feature flags are part of the cache key, so a cache folder shared with
another CPU model builds its own entry instead of loading one with unsupported instructions.

Cache: `native/<key>.so` under optforge's cache folder ($OPTFORGE_CACHE_DIR, else
~/.cache/optforge, as `optforge.load_spec` and the CUDA kernel cache use it). The key is
the SHA-256 of the source, the header, the flags, the compiler's identity (`$CXX
--version`) and the CPU features. Beside each library, `<key>.sha256` holds the SHA-256 of
its bytes: a library that does not match (truncated, overwritten, copied from elsewhere) is
rebuilt before anything loads it. Writers hold an exclusive lock on `<key>.lock`, compile
into a temporary file and publish it with os.replace, so concurrent processes end with one
valid entry, and readers never see a partial file.
"""
import ctypes
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

HEADER = "optforge_cpu.h"
FLAGS = ("-std=c++17", "-O3", "-fno-math-errno", "-ffp-contract=off", "-march=native", "-fopenmp",
         "-fPIC", "-shared")
COMPILERS = ("c++", "g++", "clang++")
_LIBRARIES = {}    # key -> ctypes.CDLL
compiled = []      # keys compiled by this process (for tests and diagnostics)


class CompilerMissing(RuntimeError):
    """No usable C++ compiler: the native CPU kernels cannot be built."""


def cache_dir():
    from ..spec_loading import cache_root
    return cache_root() / "native"


def compiler():
    """The compiler's path: $CXX (which must exist), else the first of c++, g++, clang++."""
    named = os.environ.get("CXX")
    if named:
        found = shutil.which(named)
        if found is None:
            raise CompilerMissing(f"CXX={named!r} is not an executable on the PATH")
        return found
    for name in COMPILERS:
        found = shutil.which(name)
        if found:
            return found
    raise CompilerMissing("no C++ compiler found (looked for $CXX, c++, g++, clang++)")


@lru_cache(maxsize=None)
def compiler_identity(path):
    """`<compiler> --version`: a compiler upgrade changes the cache key."""
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as err:
        raise CompilerMissing(f"cannot run the C++ compiler {path}: {err}") from None
    if result.returncode != 0:
        raise CompilerMissing(f"{path} --version failed: {result.stderr.strip()}")
    return result.stdout


@lru_cache(maxsize=None)
def cpu_features():
    """The CPU model and feature flags (-march=native compiles for exactly these)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.machine() + " " + platform.processor()
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    lines = []
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in wanted and line not in lines:
            lines.append(line)
    return platform.machine() + "\n" + "\n".join(lines)


def key_of(source, header, compiler_path):
    digest = hashlib.sha256()
    for part in (source, header, "\0".join(FLAGS), compiler_identity(compiler_path), cpu_features()):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def header_path(source_path):
    """optforge_cpu.h next to (or above) the source, else the package's own (specs loaded
    with optforge.load_spec have their sources cached without it)."""
    for folder in Path(source_path).parents:
        if (folder / HEADER).exists():
            return folder / HEADER
    return Path(__file__).resolve().parents[2] / "generated" / "cpu" / HEADER


def _valid(library, checksum):
    """Whether the cached library's bytes match the hash stored beside it."""
    try:
        expected = checksum.read_text(encoding="ascii").strip()
        return hashlib.sha256(library.read_bytes()).hexdigest() == expected
    except OSError:
        return False


def _atomic_write(path, data):
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)


def _compile(compiler_path, source_path, header):
    with tempfile.TemporaryDirectory(prefix="optforge-native-") as work:
        work = Path(work)
        (work / HEADER).write_text(header, encoding="utf-8")
        source = work / "kernels.cpp"
        source.write_text(Path(source_path).read_text(encoding="utf-8"), encoding="utf-8")
        target = work / "kernels.so"
        command = [compiler_path, *FLAGS, f"-I{work}", str(source), "-o", str(target)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler_path} failed to compile {source_path}:\n{result.stderr}")
        return target.read_bytes()


def library_path(source_path):
    """(key, path) of the compiled library of a generated .cpp file: built if absent or
    corrupt, under a lock shared with every other process using the same cache."""
    source_path = Path(source_path)
    compiler_path = compiler()
    source = source_path.read_text(encoding="utf-8")
    header = header_path(source_path).read_text(encoding="utf-8")
    key = key_of(source, header, compiler_path)
    folder = cache_dir()
    library, checksum = folder / f"{key}.so", folder / f"{key}.sha256"
    if _valid(library, checksum):
        return key, library
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # one writer; the others wait, then find it built
        try:
            if not _valid(library, checksum):
                data = _compile(compiler_path, source_path, header)
                compiled.append(key)
                _atomic_write(library, data)
                _atomic_write(checksum, hashlib.sha256(data).hexdigest().encode("ascii") + b"\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return key, library


def load(source_path):
    """The ctypes library of a generated .cpp file (compiled and cached on first use)."""
    key, path = library_path(source_path)
    lib = _LIBRARIES.get(key)
    if lib is None:
        lib = _open(path)
        _LIBRARIES[key] = lib
    return lib


def _open(path):
    """dlopen the library. libgomp reads OMP_WAIT_POLICY when it is first loaded: if this is
    the first OpenMP library of the process, its idle threads sleep instead of spinning
    (PASSIVE), so they do not take cores from torch's or NumPy's threads between steps.
    The variable is set only for the load and only if the user has not set it."""
    if "OMP_WAIT_POLICY" in os.environ:
        return ctypes.CDLL(str(path))
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        return ctypes.CDLL(str(path))
    finally:
        del os.environ["OMP_WAIT_POLICY"]
