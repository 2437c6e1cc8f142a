"""Many specs through the verifier at once: the random-spec batch.

Verifying one small spec costs mostly compiler starts and header parses (its generated code
through sympy, its native kernels through g++ -O3, its CUDA source through g++ for the
host). A batch pays them once per group of specs: each group runs in a worker process (one per
core), which generates the code of its specs, builds their native kernels in one compiler
run (`native_build.load_together`) and their CUDA sources in another
(`host_cuda.build_together`), and only then runs each spec through `verifier.verify`.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..runtime.backends import launch_table, native_build
from . import host_cuda, host_device, random_specs
from .verifier import verify

GROUP = 25          # specs per compiler run


def _generate(path):
    """In a worker process: the spec's code generated into the load_spec cache; its coverage."""
    from ..runtime.catalog import load_spec
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
                if v.get("stages") for s in suffixes]
    if not native.has_kernels(module):
        return []
    meta = launch_table.metadata(module)
    return [(native.source_of(module), v["kernels"][s]) for v in meta.VARIANTS.values() for s in suffixes]


def _cuda_sources(cls):
    from ..runtime.backends import cupy_matrix
    module = cls._module
    if cls.SPEC.get("matrix"):
        source = cupy_matrix.source_of(module)
        return [source] if source is not None and Path(source).exists() else []
    try:
        meta = launch_table.metadata(module)
    except ModuleNotFoundError:
        return []
    return [Path(meta.__file__).with_name(meta.SOURCE)]


def verify_batch(paths, folder, dtypes=("float32",), workers=None, torch=True, quick=True, large=False):
    """[(path, Report)] of every spec file in `paths`, in groups of `GROUP` specs, each group
    generated, built and verified in a worker process (see the module's docstring);
    `folder` holds the batch's libraries. `quick`, `large`, `dtypes`: see `verifier.verify`."""
    paths = [Path(p) for p in paths]
    workers = workers or max(1, os.cpu_count() or 1)
    groups = [paths[k:k + GROUP] for k in range(0, len(paths), GROUP)]
    options = dict(dtypes=dtypes, torch=torch, quick=quick, large=large)
    jobs = [(group, Path(folder), options) for group in groups]
    # spawned, not forked: a forked child of a process whose OpenMP pool is running (any
    # native kernel ran) waits forever for that pool's threads, which it does not have
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [item for reports in pool.map(_verify_group, jobs) for item in reports]


def _verify_group(job):
    """One group in a worker: code generated (shipped specs: their committed code), the
    native kernels not yet in the cache and the CUDA sources each built in one compiler run,
    then every spec verified."""
    from . import resolve, shipped
    paths, folder, options = job
    folder.mkdir(parents=True, exist_ok=True)
    subjects = [(path, *resolve(path, None if shipped(path) else _generate(path))) for path in paths]
    items = [item for _, cls, _, covered in subjects if covered.gap is None
             for item in _native_items(cls, options["dtypes"])]
    items = [(source, kernel) for source, kernel in items if not native_build.cached(source, kernel)]
    if items:
        native_build.load_together(items, folder)
    # shipped specs' host builds are kept per source (the tests build the same ones)
    sources = [s for path, cls, _, covered in subjects if covered.gap is None and not shipped(path)
               for s in _cuda_sources(cls)]
    built = {}
    if sources:
        include = Path(host_cuda.__file__).resolve().parent.parent / "generated" / "cuda"
        kernels = host_cuda.HostKernels(host_cuda.build_together(sources, include, folder))
        built = {Path(s).resolve(): kernels for s in sources}
    device = host_device.HostLibraries(folder, prebuilt=built)
    return [(path, verify(cls, label, covered, folder, device=device, **options))
            for path, cls, label, covered in subjects]
