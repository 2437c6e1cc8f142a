"""Compiled CUDA kernels: NVRTC through CuPy's bindings, cached in memory and on disk.

A cubin is keyed by the SHA-256 of the kernel source, the shared header it includes,
the NVRTC options, the target architecture and the NVRTC version, and stored under
kernels/ of optforge's cache folder ($OPTFORGE_CACHE_DIR, else ~/.cache/optforge, as
optforge.load_spec uses it): a second process loads it
instead of compiling. Compiling needs no GPU (the architecture is given), so the cache
itself is exercised by the CPU tests; loading a module needs one.
"""
import hashlib
import os
import tempfile
from pathlib import Path

HEADER = "optforge.cuh"
_CUBINS = {}       # key -> cubin bytes
_MODULES = {}      # (key, device id) -> cupy.RawModule
compiled = []      # keys compiled by this process (for tests and diagnostics)


def cache_dir():
    from ..cache_folder import cache_root
    return cache_root() / "kernels"


def make_cache_folder(folder):
    from ..cache_folder import make_cache_folder as make
    make(folder)


def options(arch, fmad=True, defines=()):
    """NVRTC options: C++17, the target architecture; `fmad=False` turns off FMA contraction
    (bit-for-bit comparisons with NumPy), production builds keep it; `defines`: macro names
    (-D), e.g. the one-kernel selection of a matrix rule's stage file."""
    # -default-device: NVRTC compiles only device code; the span lambdas carry no annotation
    out = ["--std=c++17", f"--gpu-architecture=sm_{arch}", "-default-device"]
    if not fmad:
        out.append("--fmad=false")
    out += [f"-D{name}" for name in defines]
    return out


def nvrtc():
    try:
        from cupy.cuda import nvrtc as bindings
    except ImportError as err:
        raise RuntimeError("compiling CUDA kernels needs CuPy (pip install 'optforge[cuda]')") from err
    return bindings


def nvrtc_version():
    return ".".join(map(str, nvrtc().getVersion()))


def key_of(source, header, opts):
    digest = hashlib.sha256()
    for part in (source, header, "\0".join(opts), nvrtc_version()):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def compile_cubin(source, header, opts, name="kernels.cu"):
    """NVRTC: CUDA C++ source -> cubin bytes; RuntimeError with the compiler log on failure."""
    bindings = nvrtc()
    program = bindings.createProgram(source, name, [header.encode()], [HEADER.encode()])
    try:
        try:
            bindings.compileProgram(program, opts)
        except bindings.NVRTCError as err:
            log = bindings.getProgramLog(program)
            raise RuntimeError(f"NVRTC failed to compile {name} ({' '.join(opts)}):\n{log}") from err
        return bytes(bindings.getCUBIN(program))
    finally:
        bindings.destroyProgram(program)


def header_path(source_path):
    """optforge.cuh next to (or above) the source, else the package's own (specs loaded with
    optforge.load_spec have their kernels cached without it)."""
    for folder in Path(source_path).parents:
        if (folder / HEADER).exists():
            return folder / HEADER
    return Path(__file__).resolve().parents[2] / "generated" / "cuda" / HEADER


def cubin(source_path, arch, fmad=True, defines=()):
    """(key, cubin bytes) of a generated .cu file: memory, then disk, then NVRTC."""
    source_path = Path(source_path)
    source = source_path.read_text(encoding="utf-8")
    header = header_path(source_path).read_text(encoding="utf-8")
    opts = options(arch, fmad, defines)
    key = key_of(source, header, opts)
    if key in _CUBINS:
        return key, _CUBINS[key]
    path = cache_dir() / f"{key}.cubin"
    if path.exists():
        data = path.read_bytes()
    else:
        data = compile_cubin(source, header, opts, source_path.name)
        compiled.append(key)
        make_cache_folder(path.parent)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:   # atomic: no torn files
            tmp.write(data)
        os.replace(tmp.name, path)
    _CUBINS[key] = data
    return key, data


def module(source_path, arch, device_id, fmad=True, defines=()):
    """The loaded CuPy module of a generated .cu file on the current device."""
    import cupy
    key, data = cubin(source_path, arch, fmad, defines)
    loaded = _MODULES.get((key, device_id))
    if loaded is None:
        path = cache_dir() / f"{key}.cubin"
        if not path.exists():   # the disk copy was removed after it was read: write it again
            make_cache_folder(path.parent)
            path.write_bytes(data)
        loaded = cupy.RawModule(path=str(path))
        _MODULES[(key, device_id)] = loaded
    return loaded
