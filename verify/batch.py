"""Many specs through the verifier at once: the random-spec batch.

Verifying one small spec costs mostly compiler starts and header parses (its generated code
through sympy, its native kernels through g++ -O3, its CUDA source through g++ for the
host). A batch pays them once per group of specs: the code of every spec is generated in
parallel processes (`optforge.load_spec`'s disk cache hands it to this process), the
native kernels of a group of specs are one compiler run (`native_build.load_together`),
their CUDA sources another (`host_cuda.build_together`), and only then does each spec
run through `verifier.verify`.
"""
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from ..runtime.backends import cuda_launch, native_build
from . import host_cuda, host_device, random_specs
from .verifier import verify

GROUP = 25          # specs per compiler run


def _generate(path):
    """In a worker process: the spec's code generated into the load_spec cache; its coverage."""
    from ..runtime.spec_loading import load_spec
    from . import coverage_of
    load_spec(path, register=False)
    return coverage_of(path)[1]


def write_specs(seeds, folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = folder / f"rand{seed}.toml"
        path.write_text(random_specs.generate(seed), encoding="utf-8")
        paths.append(path)
    return paths


def _native_items(cls, dtypes):
    """[(generated .cpp, kernel)] that verifying `cls` in `dtypes` runs."""
    from ..runtime.backends import native, native_matrix
    module = cls._module
    suffixes = [{"float32": "f32", "float64": "f64"}[d] for d in dtypes]
    if cls.SPEC.get("matrix"):
        source = native_matrix.source_of(module)
        if not source.is_file():
            return []
        return [(source, f"{cls.SPEC['key']}_{v['name']}_stages_{s}") for v in module.VARIANTS.values()
                for s in suffixes]
    if not native.has_kernels(module):
        return []
    meta = cuda_launch.metadata(module)
    return [(native.source_of(module), v["kernels"][s]) for v in meta.VARIANTS.values() for s in suffixes]


def _cuda_sources(cls):
    from ..runtime.backends import cupy_matrix
    module = cls._module
    if cls.SPEC.get("matrix"):
        source = cupy_matrix.source_of(module)
        return [source] if source is not None and Path(source).exists() else []
    try:
        meta = cuda_launch.metadata(module)
    except ModuleNotFoundError:
        return []
    return [Path(meta.__file__).with_name(meta.SOURCE)]


def verify_batch(paths, folder, dtypes=("float32",), workers=None, torch=True):
    """[(path, Report)] of every spec file in `paths`, built together (see the module's
    docstring); `folder` holds the batch's libraries."""
    from . import resolve
    folder = Path(folder)
    workers = workers or max(1, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers) as pool:
        covered = list(pool.map(_generate, paths))
    subjects = [(path, *resolve(path, c)) for path, c in zip(paths, covered)]
    groups = [subjects[k:k + GROUP] for k in range(0, len(subjects), GROUP)]

    def build_native(group):
        items = [item for _, cls, _, covered in group if covered.gap is None for item in _native_items(cls, dtypes)]
        if items:
            native_build.load_together(items, folder / "native")

    def build_cuda(group):
        sources = [s for _, cls, _, covered in group if covered.gap is None for s in _cuda_sources(cls)]
        if not sources:
            return {}
        library = host_cuda.build_together(sources, Path(host_cuda.__file__).parent.parent / "generated" / "cuda",
                                           folder)
        kernels = host_cuda.HostKernels(library)
        return {Path(s).resolve(): kernels for s in sources}

    (folder / "native").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(workers) as pool:       # the compilers run in their own processes
        list(pool.map(build_native, groups))
        built = {}
        for libraries in pool.map(build_cuda, groups):
            built.update(libraries)
    device = host_device.HostLibraries(folder, prebuilt=built)
    reports = []
    for path, cls, label, covered in subjects:
        reports.append((path, verify(cls, label, covered, folder, device=device, dtypes=dtypes, quick=True,
                                     torch=torch)))
    return reports
