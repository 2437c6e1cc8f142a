"""The differential verifier: a rule through every target against its NumPy `step`.

For each hyperparameter setting that reaches a variant not reached before
(`scenario.settings`), each dtype (float32, float64) and the shapes of the rule's kind,
the schedule runs through
- `step` (the generated NumPy code, MXNet-style `update` with use_fused_step=False): the
  reference;
- the native CPU kernels, one `update` per parameter (single-tensor entry points) and one
  for all parameters (multi-tensor), under OPTFORGE_CPU_BACKEND=native;
- the CUDA kernels compiled for the host, through the CuPy backend's launch path
  (`host_device`; matrix rules: the stage driver with the `.stages.cu` kernels);
- optforge.torch on CPU tensors, against `step` run with what torch passes (no rescaling,
  no clipping, t from 1).

A rule with group reductions or group states (docs/group-values.md) computes something
else for each split of its parameters into param groups, so each multi-tensor target runs
in every layout of `runs.layouts` (all parameters in one group; groups of 1, 2 and the
rest, tensors of unequal sizes), against `step` in the same layout: in the MXNet style one
`update` per group, the optimizer's group states carried from call to call; in
optforge.torch one param group each, against one `step` optimizer per group. The
single-tensor `update` is one parameter per group. The group states after every step are
compared too (bit for bit in float64 for exact rules: every target combines the same
partials with the same host code).

What counts as equal (`codegen.targets.Coverage.exact`): element-wise rules and matrix
rules compute the same three-address code with the same correctly rounded operations on
every target, so their float32/float64 results are compared bit for bit (NaN equal to
NaN). Two things round otherwise: sums in element-wise kernels (norms, `sum`, `dot`, row
means and sums) are added in double in another order than NumPy's pairwise sums (in
float32 or wider for norms and row means, in double for the others), and exp, log and
non-integer powers come from each target's math library (NumPy's SIMD loops, libm,
CUDA's), which differ in the last bit; maxima and minima are exact. Such rules' arrays are compared within `tolerance(shapes)` units in the last place of
each array's largest magnitude: a few ulps per step, compounded over the schedule's steps,
and for sums over many elements the spread of their rounding errors (about the square
root of the count, in ulps of the sum), far below what a wrong formula, pass or operand
moves (percents).
"""
import contextlib
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import runs, scenario

ULPS = 64           # tolerance of inexact rules, in ulps of an array's largest magnitude
SEED = 20261207


def tolerance(shapes, dtype):
    """ULPS; in float64 raised for sums over more than 256 elements by sqrt(count) / 16. Both
    sides sum in double there (NumPy pairwise, the kernels in order per chunk or row, CUDA
    as a tree per block), so their rounding errors are of one size and spread about as the
    square root of the count, in ulps of the sum; in float32 the kernels' double sums are
    the more accurate and NumPy's pairwise float32 sums err by about log2(count) ulps."""
    largest = max((math.prod(s) for s in shapes), default=1)
    if np.dtype(dtype) != np.float64:
        return float(ULPS)
    return ULPS * max(1.0, math.sqrt(largest) / 16)


@dataclass
class Outcome:
    target: str
    status: str                     # "bit-identical", "within tolerance", "DIFFERS", "not run", "no kernels"
    detail: str = ""
    worst_ulps: float = 0.0
    compared: int = 0

    @property
    def failed(self):
        return self.status in ("DIFFERS", "ERROR")


@dataclass
class Report:
    label: str
    exact: bool
    inexact: str = ""
    outcomes: list = field(default_factory=list)
    variants: set = field(default_factory=set)
    all_variants: tuple = ()
    settings: int = 0
    tolerances: tuple = ()      # per dtype compared
    shapes: tuple = ()
    error: str = ""
    refused: list = field(default_factory=list)
    layouts: tuple = ()         # the param groups a rule with group reductions ran in

    @property
    def failed(self):
        return any(o.failed for o in self.outcomes)

    def lines(self):
        kind = "bit for bit" if self.exact else \
            f"within {' / '.join(f'{t:.0f}' for t in self.tolerances)} ulps ({self.inexact})"
        reached = f"{len(self.variants & set(self.all_variants))} of {len(self.all_variants)} variants"
        unreached = sorted(set(self.all_variants) - self.variants)
        groups = f" in {' and '.join(self.layouts)} (and one per update)" if self.layouts else ""
        out = [f"{self.label}: {self.settings} setting(s), {len(self.shapes)} shapes{groups}, {reached} reached"
               + (f" (not reached: {', '.join(unreached[:3])}{', ...' if len(unreached) > 3 else ''})"
                  if unreached else "")
               + f"; compared {kind} with step"]
        width = max((len(o.target) for o in self.outcomes), default=0)
        for o in self.outcomes:
            text = f"  {o.target.ljust(width)}  {o.status}"
            if o.status in ("bit-identical", "within tolerance"):
                text += f" ({o.compared} arrays" + (f", worst {o.worst_ulps:.3g} ulps" if not self.exact else "") + ")"
            if o.detail:
                text += f": {o.detail}"
            out.append(text)
        return out


def _magnitude(array):
    finite = np.abs(np.asarray(array, np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 0.0


def _ulps(actual, expected, dtype, scale=0.0):
    """The largest difference in units in the last place of `scale` or the expected array's
    largest magnitude, whichever is larger; inf where NaN or inf stand against another value."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if a.shape != e.shape:
        return math.inf
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    if same.all():
        return 0.0
    if not (np.isfinite(a[~same]).all() and np.isfinite(e[~same]).all()):
        return math.inf
    scale = max(scale, _magnitude(e))
    spacing = float(np.spacing(np.array(scale, dtype=dtype))) or float(np.finfo(dtype).tiny)
    return float(np.abs(a[~same] - e[~same]).max()) / spacing


def _bits_equal(actual, expected, dtype):
    a = np.asarray(actual, np.float64).astype(dtype)
    e = np.asarray(expected, np.float64).astype(dtype)
    if a.shape != e.shape:
        return False
    nan = np.isnan(a) & np.isnan(e)
    bits = f"u{np.dtype(dtype).itemsize}"
    return bool(((a.view(bits) == e.view(bits)) | nan).all())


class Comparison:
    def __init__(self, target, exact):
        self.outcome = Outcome(target, "bit-identical" if exact else "within tolerance")
        self.exact = exact

    def add(self, result, reference, where, dtype, ulps=ULPS):
        """Compare `result` with `reference` step by step: every parameter's arrays, then the
        group states of a rule with group reductions. An inexact rule's array is measured
        in ulps of the largest magnitude it has held so far (the weight: from its initial
        value on): a value that cancels to near 0 carries the rounding of its operands."""
        o = self.outcome
        if o.failed:
            return
        if len(result.groups) != len(reference.groups):
            o.status, o.detail = "DIFFERS", f"{where}: group states after {len(result.groups)} steps, not " \
                                            f"{len(reference.groups)}"
            return
        held = {}
        for k, w in enumerate(reference.initial):
            held[(k, 0)] = _magnitude(w)
        for t, (got, want) in enumerate(zip(result.steps, reference.steps), start=1):
            for k, (g_arrays, w_arrays) in enumerate(zip(got, want)):
                if len(g_arrays) != len(w_arrays):
                    o.status, o.detail = "DIFFERS", f"{where}, parameter {k}: {len(g_arrays) - 1} states, not {len(w_arrays) - 1}"
                    return
                for j, (g, w) in enumerate(zip(g_arrays, w_arrays)):
                    what = f"parameter {k} {'weight' if j == 0 else f'state {j - 1}'} {tuple(np.shape(w))}"
                    if not self._one(g, w, held, (k, j), f"{where}, step {t}, {what}", dtype, ulps):
                        return
            if result.groups:
                g_groups, w_groups = result.groups[t - 1], reference.groups[t - 1]
                if len(g_groups) != len(w_groups) or any(set(g) != set(w) for g, w in zip(g_groups, w_groups)):
                    o.status, o.detail = "DIFFERS", f"{where}, step {t}: group states {g_groups}, not {w_groups}"
                    return
                for k, (g_values, w_values) in enumerate(zip(g_groups, w_groups)):
                    for name, w in w_values.items():
                        if not self._one(g_values[name], w, held, ("group", k, name),
                                         f"{where}, step {t}, group {k} state '{name}'", dtype, ulps, np.float64):
                            return

    def _one(self, g, w, held, key, what, dtype, ulps, bits=None):
        """Compare one array (or group state); False, with the outcome set, where it differs.
        bits: the dtype of an exact rule's comparison (group states: float64, the same host
        code from the same values on every target), else the run's dtype."""
        o = self.outcome
        o.compared += 1
        if self.exact:
            if not _bits_equal(g, w, bits or dtype):
                diff = _ulps(g, w, dtype)
                o.status = "DIFFERS"
                o.detail = f"{what}: not bit-identical (max |diff| {_max_diff(g, w):.3g}, {diff:.3g} ulps)"
                return False
            return True
        # group states follow arrays that round otherwise: in ulps of the run's dtype, but at
        # most float32's: they are sums over every tensor of the group, which may cancel
        # (Prodigy's numerator, sum of g (p0 - w) while w has barely moved, is 1e-12 relative
        # apart in float64 for sums added in another order); the weights and states that
        # read them are compared in the run's dtype
        held[key] = max(held.get(key, 0.0), _magnitude(w))
        unit = np.float32 if bits is not None and np.dtype(dtype).itemsize > 4 else dtype
        diff = _ulps(g, w, unit, held[key])
        o.worst_ulps = max(o.worst_ulps, diff)
        if diff > ulps:
            o.status = "DIFFERS"
            o.detail = f"{what}: {diff:.3g} ulps (max |diff| {_max_diff(g, w):.3g})"
            return False
        return True


def _max_diff(g, w):
    with np.errstate(invalid="ignore"):
        d = np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))
    return float(np.nanmax(d)) if d.size and not np.isnan(d).all() else math.nan


def verify(cls, label, covered, folder, cuda=True, large=False, torch=True, dtypes=scenario.DTYPES,
           quick=False, device=None):
    """A `Report` of every target of `cls` (an optimizer class built from a spec; `covered`:
    its `codegen.targets.Coverage`, which says whether its targets agree bit for bit).
    folder: where host builds of CUDA sources are kept; cuda=False: that target is not run;
    device: `host_device.HostLibraries` already built (the random-spec batch). quick: fewer
    settings (the random-spec batch)."""
    spec = cls.SPEC
    exact = covered.exact
    report = Report(label, exact, covered.inexact,
                    all_variants=tuple(v["name"] for v in cls._module.VARIANTS.values()))
    shapes = _accepted_shapes(cls, scenario.shapes_for(spec, large), report)
    report.shapes = shapes
    report.tolerances = tuple(tolerance(shapes, d) for d in dtypes)
    chosen = _choose_settings(cls, shapes, report, limit=6 if quick else 48)
    if report.error:
        report.outcomes.append(Outcome("NumPy step", "ERROR", report.error))
        return report
    report.settings = len(chosen)
    has_kernels = covered.gap is None
    targets = [("native CPU, one update per parameter", dict(fused=True, multi=False)),
               ("native CPU, one update for all", dict(fused=True, multi=True))]
    if device is None:
        device = _host_device(folder) if cuda else None
    noise = contextlib.nullcontext
    module = cls._module
    if has_kernels and not module.SPEC.get("matrix") and any(v.get("noise") for v in module.VARIANTS.values()):
        # the element-wise kernels draw Philox numbers, step NumPy's generator: the reference of
        # the fused targets is step given the kernels' numbers (matrix rules' stage drivers
        # draw step's own)
        from . import host_device
        probe = host_device.probe(folder)
        noise = functools.partial(host_device.device_noise, probe)
    cuda_name, torch_name = "CUDA compiled for the host", "optforge.torch"
    comparisons = {name: Comparison(name, exact) for name in [t for t, _ in targets] + [cuda_name, torch_name]}
    skipped = {}
    if not has_kernels:
        for name in (targets[0][0], targets[1][0], cuda_name):
            skipped[name] = ("no kernels", "the rule has no native CPU or CUDA kernels (optforge check says why); "
                             "fused_step runs its NumPy code")
    if isinstance(device, str):
        skipped.setdefault(cuda_name, ("not run", device))
        device = None
    elif device is None:
        skipped.setdefault(cuda_name, ("not run", "not asked for"))
    if not torch:
        skipped[torch_name] = ("not run", "not asked for")
    # A rule with group reductions computes something else for each split of the parameters
    # into param groups: every multi-tensor target runs in each of `runs.layouts` (the
    # single-tensor `update` is one parameter per group) against step in the same layout.
    # Other rules: one layout (None: every parameter in one update), step's result for all.
    layouts = runs.layouts(len(shapes)) if runs.has_group(cls) else (None,)
    report.layouts = tuple(runs.layout_text(g) for g in layouts if g is not None)
    for seed, hyper in enumerate(chosen):
        for dtype in dtypes:
            where = f"{_setting_text(hyper)} {dtype}"
            try:
                with noise():
                    reference = runs.mxnet_run(cls, hyper, shapes, dtype, SEED + seed, fused=False, multi=False)
                    references = {g: runs.mxnet_run(cls, hyper, shapes, dtype, SEED + seed, fused=False, multi=True,
                                                    groups=g) for g in layouts if g is not None}
            except runs.Refused:
                continue
            except Exception as err:
                report.outcomes.append(Outcome("NumPy step", "ERROR", f"{where}: step raised "
                                                                      f"{type(err).__name__}: {err}"))
                return report
            references[None] = reference
            for name, options in targets:
                for groups in (layouts if options["multi"] else (None,)):
                    if name in skipped:
                        break
                    at = _at(where, groups)
                    result = _attempt(skipped, name, runs.mxnet_run, cls, hyper, shapes, dtype, SEED + seed,
                                      groups=groups, **options)
                    if result is not None:
                        if result.kernels == 0:
                            skipped[name] = ("DIFFERS", "the native kernels never ran")
                        comparisons[name].add(result, references[groups], at, dtype, tolerance(shapes, dtype))
            for groups in layouts:
                if cuda_name in skipped:
                    break
                at = _at(where, groups)
                before = len(device.launched)
                result = _attempt(skipped, cuda_name, runs.mxnet_run, cls, hyper, shapes, dtype, SEED + seed,
                                  fused=True, multi=True, device=device, groups=groups)
                if result is not None:
                    if len(device.launched) == before:
                        skipped[cuda_name] = ("DIFFERS", "the host-compiled CUDA kernels never ran")
                    comparisons[cuda_name].add(result, references[groups], at, dtype, tolerance(shapes, dtype))
            for groups in layouts:
                if torch_name in skipped:
                    break
                at = _at(where, groups)
                result = _attempt(skipped, torch_name, runs.torch_run, cls, hyper, shapes, dtype, SEED + seed,
                                  native=has_kernels, groups=groups)
                if result is not None:
                    with noise():
                        expected = runs.torch_reference(cls, hyper, shapes, dtype, SEED + seed, groups=groups)
                    comparisons[torch_name].add(result, expected, at, dtype, tolerance(shapes, dtype))
    for name, comparison in comparisons.items():
        if name in skipped and not comparison.outcome.failed:
            status, detail = skipped[name]
            report.outcomes.append(Outcome(name, status, detail))
        else:
            report.outcomes.append(comparison.outcome)
    report.outcomes.insert(0, Outcome("NumPy step", "reference"))
    return report


def _attempt(skipped, name, run, *args, **kwargs):
    try:
        return run(*args, **kwargs)
    except runs.NotRun as err:
        skipped[name] = ("not run", str(err))
    except runs.Refused:
        pass
    except Exception as err:        # a target that raises where the reference ran is a disagreement
        skipped[name] = ("DIFFERS", f"raised {type(err).__name__}: {err}")
    return None


def _at(where, groups):
    return where + (f", {runs.layout_text(groups)}" if groups is not None else "")


def _setting_text(hyper):
    return "{" + ", ".join(f"{k}={v!r}" for k, v in hyper.items()) + "}"


def _choose_settings(cls, shapes, report, limit):
    """The settings (in `scenario.settings` order) that each reach a variant no earlier one
    reached, found with float64 reference runs; the defaults always."""
    chosen, reached = [], set()
    for hyper in scenario.settings(cls.SPEC, limit=limit):
        try:
            result = runs.mxnet_run(cls, hyper, shapes, "float64", SEED, fused=False, multi=False)
        except runs.Refused as err:
            report.refused.append(f"{_setting_text(hyper)}: {err}")
            continue
        except Exception as err:        # step itself fails on an accepted spec
            report.error = f"{_setting_text(hyper)} float64: step raised {type(err).__name__}: {err}"
            break
        if not chosen or result.variants - reached:
            chosen.append(hyper)
            reached |= result.variants
    report.variants = {cls._module.VARIANTS[key]["name"] for key in reached}
    return chosen


def _accepted_shapes(cls, shapes, report):
    """The shapes whose states the rule creates (row and column states need an axis;
    `requires` may ask for a rank); the others are listed in the report."""
    accepted = []
    for shape in shapes:
        try:
            cls().create_state(0, np.zeros(shape, np.float64))
        except ValueError as err:
            report.refused.append(f"shape {shape}: {err}")
            continue
        accepted.append(shape)
    return tuple(accepted)


def _host_device(folder):
    """The host CUDA build (`host_device.HostLibraries`), or why it cannot run here."""
    import shutil
    if shutil.which("g++") is None:
        return "g++ is not available to compile the CUDA sources for the host"
    try:
        import cupy  # noqa: F401  (the runtime recognises CuPy arrays through the package)
    except ImportError:
        return "CuPy is not installed (pip install 'optforge[cuda]'): the CuPy backend's launch path needs it"
    from . import host_device
    Path(folder).mkdir(parents=True, exist_ok=True)
    return host_device.HostLibraries(folder)
