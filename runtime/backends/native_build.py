"""Native CPU kernels: compiled with the system C++ compiler on first use, cached on disk.

A generated `generated/cpu/<spec>.cpp` holds every variant and storage dtype of a rule,
each (variant, dtype) kernel's entry points inside `#if !defined(OM_ONE_KERNEL) ||
defined(OM_KERNEL_<name>)`. `kernels(source)` returns the rule's entry points, each
kernel compiled on first access by `$CXX`, else the first of c++, g++, clang++ on the
PATH, from that same source with `-DOM_ONE_KERNEL -DOM_KERNEL_<name>` into a shared object
of its own, and loaded with ctypes: a first step compiles only the kernel it runs (about
0.2 s, most of it the compiler's start and the system headers) instead of the whole
file (96 kernels for torch's SGD: 7 s and more), the way torch Inductor compiles per
kernel. No compiled extension ships in the wheel, nothing is built at install time, and
nothing is compiled or loaded at `import optforge`. `load(source)` builds the whole file
as one library (every kernel; for checks of the file as a whole).

Flags: `-O3 -fno-math-errno` (sqrtf vectorises), `-ffp-contract=off` (no FMA contraction:
every operation rounds as NumPy's ufuncs do, so float32/float64 results are bitwise the
NumPy code's), `-fopenmp` (threads) and `-march=native`: this machine's full vector ISA
(AVX-512 where present). The library is used only on the machine that built it, and the
CPU's identity and feature flags are part of the cache key, so a cache folder shared with
another CPU model builds its own entry instead of loading one with unsupported instructions.

Cache: `native/<key>.so` under optforge's cache folder ($OPTFORGE_CACHE_DIR, else
~/.cache/optforge, as `optforge.load_spec` and the CUDA kernel cache use it). The key is
the SHA-256 of the source, the header, the flags (the kernel's defines among them), the
compiler's identity (`$CXX --version`) and the CPU features. Beside each library,
`<key>.sha256` holds the SHA-256 of its bytes: a library that does not match (truncated,
overwritten, copied from elsewhere) is rebuilt before anything loads it. Writers hold an
exclusive lock on `<key>.lock`, compile into a temporary file and publish it with
os.replace, so concurrent processes end with one valid entry, and readers never see a
partial file.
"""
import ctypes
import fcntl
import hashlib
import os
import platform
import re
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
    from ..cache_folder import cache_root
    return cache_root() / "native"


def make_cache_folder(folder):
    from ..cache_folder import make_cache_folder as make
    make(folder)


def compiler():
    """The compiler's path: $CXX (which must exist), else the first of c++, g++, clang++."""
    return _compiler(os.environ.get("CXX"), os.environ.get("PATH"))


@lru_cache(maxsize=None)
def _compiler(named, search_path):
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
    """`<compiler> --version`: a compiler upgrade changes the cache key.

    Kept in the cache folder's `compilers/` under the SHA-256 of the executable's resolved
    path, size, modification time and inode (what ccache's default compiler check
    compares): starting the compiler to ask (several ms) is left to the first process
    after it changed."""
    try:
        stamp = _stamp(path)
    except OSError as err:
        raise CompilerMissing(f"cannot run the C++ compiler {path}: {err}") from None
    kept = cache_dir().with_name("compilers") / f"{hashlib.sha256(stamp).hexdigest()}.txt"
    try:
        return kept.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as err:
        raise CompilerMissing(f"cannot run the C++ compiler {path}: {err}") from None
    if result.returncode != 0:
        raise CompilerMissing(f"{path} --version failed: {result.stderr.strip()}")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(kept, result.stdout.encode("utf-8"))
    except OSError:         # a read-only cache: ask again next time
        pass
    return result.stdout


def _stamp(path):
    """The compiler executable's resolved path, size, modification time and inode."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    return f"{real}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}".encode("utf-8")


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


_GUARD = re.compile(r"#if !defined\(OM_ONE_KERNEL\) \|\| defined\(OM_KERNEL_(\w+)\)\n")   # a literal start: fast
_ENTRY = re.compile(r"_(?:multi|pass\d+|finish\d+)$")    # entry points of a kernel besides its name


def kernel_names(source):
    """The kernels of a generated source: the names of its one-kernel guards."""
    return frozenset(_GUARD.findall(source))


def kernel_of(entry_point):
    """The kernel an entry point belongs to: `<kernel>`, `<kernel>_multi`, `<kernel>_pass<j>`
    or `<kernel>_finish<j>`."""
    return _ENTRY.sub("", entry_point)


def defines_of(kernel):
    """The compiler flags that select one kernel of a source (None: the whole file)."""
    return () if kernel is None else ("-DOM_ONE_KERNEL", f"-DOM_KERNEL_{kernel}")


def key_of(source, header, compiler_path, kernel=None):
    digest = hashlib.sha256()
    flags = "\0".join(FLAGS + defines_of(kernel))
    for part in (source, header, flags, compiler_identity(compiler_path), cpu_features()):
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


def _compile(compiler_path, source_path, text, header, kernel):
    """The library's bytes, compiled from the very text and header the key was made of."""
    with tempfile.TemporaryDirectory(prefix="optforge-native-") as work:
        work = Path(work)
        (work / HEADER).write_text(header, encoding="utf-8")
        source = work / "kernels.cpp"
        source.write_text(text, encoding="utf-8")
        target = work / "kernels.so"
        command = [compiler_path, *FLAGS, *defines_of(kernel), f"-I{work}", str(source), "-o", str(target)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            what = source_path if kernel is None else f"{kernel} of {source_path}"
            raise RuntimeError(f"{compiler_path} failed to compile {what}:\n{result.stderr}")
        return target.read_bytes()


def _identify(source_path, kernel):
    """(compiler, source text, header text, cache key) of one kernel of a generated source."""
    compiler_path = compiler()
    source = source_path.read_text(encoding="utf-8")
    if kernel is not None and f"#if !defined(OM_ONE_KERNEL) || defined(OM_KERNEL_{kernel})\n" not in source:
        raise ValueError(f"{source_path} has no kernel {kernel!r}")
    header = header_path(source_path).read_text(encoding="utf-8")
    return compiler_path, source, header, key_of(source, header, compiler_path, kernel)


def library_path(source_path, kernel=None):
    """(key, path) of the compiled library of one kernel of a generated .cpp file (None:
    the whole file): built if absent or corrupt, under a lock shared with every other
    process using the same cache."""
    source_path = Path(source_path)
    compiler_path, source, header, key = _identify(source_path, kernel)
    folder = cache_dir()
    library, checksum = folder / f"{key}.so", folder / f"{key}.sha256"
    if _valid(library, checksum):
        return key, library
    make_cache_folder(folder)
    with open(folder / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # one writer; the others wait, then find it built
        try:
            if not _valid(library, checksum):
                data = _compile(compiler_path, source_path, source, header, kernel)
                compiled.append(key)
                _atomic_write(library, data)
                _atomic_write(checksum, hashlib.sha256(data).hexdigest().encode("ascii") + b"\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return key, library


def load(source_path, kernel=None):
    """The ctypes library of one kernel of a generated .cpp file (None: the whole file),
    compiled and cached on first use."""
    key = _identify(Path(source_path), kernel)[3]
    lib = _LIBRARIES.get(key)
    if lib is None:
        key, path = library_path(source_path, kernel)
        lib = _LIBRARIES[key] = _open(path)
    return lib


def cached(source_path, kernel=None):
    """Whether a kernel's library is loaded or valid in the disk cache (nothing to compile)."""
    key = _identify(Path(source_path), kernel)[3]
    folder = cache_dir()
    return key in _LIBRARIES or _valid(folder / f"{key}.so", folder / f"{key}.sha256")


def load_together(items, folder):
    """Compile kernels of several generated sources ([(source path, kernel)]) in one compiler
    run into one library in `folder`, loaded in this process, so that `load` finds each of
    them there: one compiler start and one pass over the headers for all (for checks that
    build many small rules, such as the random-spec verifier). The sources' own names keep
    their kernels apart (every symbol starts with the rule's key and the variant's name), so
    sources whose symbols could meet (a rule in two flavors: adam.cpp and mxnet1/adam.cpp, or
    a spec file named otherwise whose rule is also called Adam) go to separate runs; nothing
    goes into the disk cache."""
    items = [(Path(source).resolve(), kernel) for source, kernel in items]
    names = {}      # source -> what its symbols could share with another source's
    for source, kernel in items:
        names.setdefault(source, {source.name}).add(_SYMBOL_SUFFIX.sub("", kernel or ""))
    runs = []       # [(sources, names, items)]: no shared name within a run
    for source, kernel in items:
        run = next((r for r in runs if source in r[0] or not (r[1] & names[source])), None)
        if run is None:
            run = (set(), set(), [])
            runs.append(run)
        run[0].add(source)
        run[1].update(names[source])
        run[2].append((source, kernel))
    for _, _, run in runs:
        _load_together(run, folder)


# a kernel's name past its `<key>_<variant>` prefix: the stage marker, the storage type and
# what follows it (_mp, _multi, ...)
_SYMBOL_SUFFIX = re.compile(r"(_stages)?_(f32|f64|f16|bf16)(_[a-z0-9]+)*$")


def _load_together(items, folder):
    identified = [_identify(source, kernel) for source, kernel in items]
    compiler_path = identified[0][0]
    headers = {header_path(source) for source, _ in items}
    if len(headers) != 1 or any(i[0] != compiler_path for i in identified):
        raise ValueError("load_together builds sources that share one header and compiler")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256("\0".join(i[3] for i in identified).encode()).hexdigest()[:20]
    unit, target = folder / f"together-{digest}.cpp", folder / f"together-{digest}.so"
    sources = sorted({source for source, _ in items})
    unit.write_text("".join(f'#include "{source}"\n' for source in sources), encoding="utf-8")
    defines = ["-DOM_ONE_KERNEL"] + sorted({f"-DOM_KERNEL_{kernel}" for _, kernel in items})
    command = [compiler_path, *FLAGS, *defines, f"-I{headers.pop().parent}", str(unit), "-o", str(target)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{compiler_path} failed to compile {len(sources)} sources together:\n{result.stderr}")
    lib = _open(target)
    for (_, _, _, key) in identified:
        _LIBRARIES[key] = lib


def kernels(source_path):
    """The entry points of a generated .cpp file, as attributes (`lib.<name>`), each kernel
    compiled (or found in the cache) and loaded when one of its entry points is first used."""
    return Kernels(source_path)


class Kernels:
    """A generated source's entry points, compiled per kernel on first access.

    `kernels.<kernel>_multi` builds and loads `<kernel>`'s library (all of that kernel's
    entry points), then keeps the function as an attribute: later accesses are plain
    attribute lookups. A name that is no entry point of the source raises AttributeError
    and compiles nothing."""

    def __init__(self, source_path):
        self._source_path = Path(source_path)
        self._names = kernel_names(self._source_path.read_text(encoding="utf-8"))
        self._loaded = {}       # kernel -> ctypes.CDLL

    def load_kernel(self, kernel):
        """The library of one kernel (all its entry points), compiled or found on first use."""
        lib = self._loaded.get(kernel)
        if lib is None:
            if kernel not in self._names:
                raise AttributeError(f"{self._source_path} has no kernel {kernel!r}")
            lib = self._loaded[kernel] = load(self._source_path, kernel)
        return lib

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if kernel_of(name) not in self._names:
            raise AttributeError(f"{self._source_path} has no entry point {name!r}")
        function = getattr(self.load_kernel(kernel_of(name)), name)
        setattr(self, name, function)       # later accesses: a plain attribute
        return function

    def __repr__(self):
        return f"<native kernels of {self._source_path}>"


# libgomp's spins before an idle thread sleeps (its default: 300 000, or sleeping at once
# under OMP_WAIT_POLICY=PASSIVE)
SPIN_COUNT = "1000"


def _open(path):
    """dlopen the library. libgomp reads its wait settings when it is first loaded: if this
    is the first OpenMP library of the process (torch, which loads its own, not imported
    yet) and the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, idle threads spin
    SPIN_COUNT times (about 0.1 ms of one core per step, measured) and then sleep: updates
    in quick succession find them awake, and between steps they do not take cores from the
    user's other threads (libgomp's default spun through a 5 ms pause between updates).
    Sleeping at once (OMP_WAIT_POLICY=PASSIVE) makes every parallel region wait for futex
    wake-ups: an update of an MLP's 6 arrays took 92 us instead of 50. Set only for the load."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return ctypes.CDLL(str(path))
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        return ctypes.CDLL(str(path))
    finally:
        del os.environ["GOMP_SPINCOUNT"]
