"""The `optforge` command line."""
import argparse
import os
import sys
import textwrap
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
WIDTH = 100     # `list` and `show` lines fit this many columns
DOCS_INDEX = PACKAGE_ROOT / "generated" / "docs" / "html" / "index.html"


def _integer(minimum):
    """An argparse type: an int >= minimum, else a clear usage error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def main(argv=None):
    from . import __version__
    parser = argparse.ArgumentParser(prog="optforge", description=(
        "Optimizers written once as formulas, generated into NumPy and CUDA code."))
    parser.add_argument("--version", action="version", version=f"optforge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate", help="regenerate generated/ from specs/")
    gen.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 and name the files that are stale")
    gen.add_argument("--root", type=Path, default=PACKAGE_ROOT,
                     help="folder holding specs/ and generated/ (default: the optforge package)")
    gen.set_defaults(run=_generate)

    lst = commands.add_parser("list", help="table of the registered optimizers")
    lst.add_argument("--flavor", default=None, help="only this flavor (mxnet2, mxnet1 or torch)")
    lst.add_argument("--long", action="store_true",
                     help="every argument with its default, and the states (default: argument names only)")
    lst.set_defaults(run=_list)

    show = commands.add_parser("show", help="an optimizer's formulas, hyperparameters, states and files")
    show.add_argument("name", metavar="NAME|FILE",
                      help="the optimizer's name, any case (e.g. adam), or a spec file's path (my_specs/myopt.toml: "
                           "loaded as optforge.load_spec loads it)")
    show.add_argument("--flavor", default=None,
                      help="its flavor: mxnet2 (default), mxnet1 or torch; a spec file has its own")
    show.add_argument("--code", action="store_true", help="also print the generated NumPy code")
    show.set_defaults(run=_show)

    new = commands.add_parser("new", help="write a commented spec to start a new optimizer from")
    new.add_argument("name", help="the optimizer's class name, e.g. MyOpt")
    new.add_argument("--dir", type=Path, default=Path("."), help="folder to write NAME.toml in")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(run=_new)

    check = commands.add_parser("check", help="validate spec files; print every mistake as file:line:col")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="spec files (.toml) to check")
    check.add_argument("--verify", action="store_true",
                       help="also run each spec on seeded data through every target (NumPy step, native CPU "
                            "kernels, the CUDA kernels compiled for the host, optforge.torch) and compare "
                            "them; exit 1 on any disagreement")
    check.set_defaults(run=_check)

    fuzz = commands.add_parser("fuzz", help="generate random valid specs and verify every target of each "
                                            "(optforge check --verify on each)")
    fuzz.add_argument("--count", type=_integer(1), default=300, help="how many specs (default 300)")
    fuzz.add_argument("--long", action="store_true", help="3000 specs")
    fuzz.add_argument("--seed", type=_integer(0), default=0, help="the first spec's seed (the others follow)")
    fuzz.add_argument("--keep", type=Path, default=None, metavar="DIR",
                      help="write the specs into DIR and keep them (default: a temporary folder)")
    fuzz.set_defaults(run=_fuzz)

    demo = commands.add_parser("demo", help="train a small model with every optimizer (the main job)")
    demo.add_argument("--steps", type=_integer(10), default=300,
                      help="training steps per optimizer, at least 10 (default 300)")
    demo.add_argument("--seed", type=_integer(0), default=0, help="seed of the data, weights and batches")
    demo.add_argument("--plot", type=Path, default=None, metavar="FILE",
                      help="write the loss curves as a PNG image (needs matplotlib: pip install 'optforge[plot]')")
    demo.set_defaults(run=_demo)

    docs = commands.add_parser("docs", help="print where the HTML formula docs are installed, or render a spec "
                                            "file's page")
    docs.add_argument("file", nargs="?", type=Path, default=None, metavar="FILE",
                      help="a spec file (my_specs/myopt.toml): render its HTML and Markdown pages into the optforge "
                           "cache and print the HTML page's path")
    docs.add_argument("--open", action="store_true", help="open them (or the spec's page) in the web browser")
    docs.set_defaults(run=_docs)

    bench = commands.add_parser("bench", help="optimizer step GB/s against the device's copy GB/s")
    bench.add_argument("--device", choices=("gpu", "cpu"), default="gpu",
                       help="gpu: fused_step on CuPy arrays (default); cpu: the native CPU kernels against torch")
    bench.add_argument("--min-log2", type=int, default=None,
                       help="smallest size: 2**N parameters (default 20 on the GPU, 16 on the CPU)")
    bench.add_argument("--max-log2", type=int, default=None,
                       help="largest size: 2**N parameters (default 28 on the GPU, 26 on the CPU)")
    bench.add_argument("--repeat", type=_integer(1), default=None,
                       help="timed steps per size (GPU: best of 10; CPU: min and median of 20)")
    bench.add_argument("--threads", type=_integer(1), default=None, help="CPU: threads of each side (default: every core)")
    bench.add_argument("--optimizers", default=None,
                       help="CPU: comma-separated subset of " + ",".join(
                           ("adam", "adamw", "sgd", "adagrad", "rmsprop", "adamax", "nadam", "radam", "adadelta",
                            "lamb", "prodigy", "dadaptadam", "clippedadamw", "muon", "muon-bf16", "adafactor"))
                       + " (default: all but muon and adafactor, which run only when named; muon also runs "
                       "muon-bf16, optforge.torch.Muon with ns_dtype='bfloat16')")
    bench.add_argument("--no-models", action="store_true",
                       help="CPU: leave out the ResNet-50 and 1000 x 4096 layouts")
    bench.add_argument("--plot", default=None, metavar="FILE", help="CPU: a PNG of GB/s against size (matplotlib)")
    bench.add_argument("--state-storage", choices=("8bit", "bfloat16", "bfloat16_stochastic"), default=None,
                       help="CPU: Adam and AdamW with quantized states against torch's fused fp32 ones and "
                            "bitsandbytes' 8-bit ones (default sizes 2^20 .. 2^24)")
    bench.add_argument("--torch-loop", action="store_true",
                       help="CPU: optforge.torch Adam, AdamW and SGD against torch.optim's fused ones in a torch "
                            "loop (MLP training step, ResNet-50 step, Python overhead per step)")
    bench.set_defaults(run=_bench)

    args = parser.parse_args(argv)
    return args.run(args)


def _generate(args):
    from .codegen import generate
    from .codegen.errors import SpecError
    root = args.root.resolve()
    if not (root / "specs").is_dir():
        print(f"optforge generate: {root} has no specs/ folder", file=sys.stderr)
        return 2
    try:
        if args.check:
            problems = generate.check(root)
            for path, problem in problems:
                print(f"{path}: {problem}")
            if problems:
                print(f"{len(problems)} generated file(s) out of date; run `optforge generate`",
                      file=sys.stderr)
                return 1
            print(f"generated/ is up to date with {len(generate.load_all(root))} specs")
            return 0
        changed = generate.write(root)
    except SpecError as err:
        print(err, file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(changed)} file(s) changed")
    return 0


def _bench(args):
    from . import bench
    min_log2 = _given(args.min_log2, 16 if args.device == "cpu" else 20)
    max_log2 = _given(args.max_log2, 26 if args.device == "cpu" else 28)
    if not 0 <= min_log2 <= max_log2:
        print(f"optforge bench: need 0 <= --min-log2 <= --max-log2, got {min_log2} and {max_log2}",
              file=sys.stderr)
        return 2
    if args.torch_loop:
        if args.device != "cpu":
            raise SystemExit("optforge bench: --torch-loop runs on the CPU: add --device cpu")
        names = _bench_optimizers(args, bench.TORCH_LOOP_OPTIMIZERS, "--torch-loop")
        bench.run_torch_loop(_given(args.repeat, 20), args.threads, names)
        return 0
    if args.state_storage:
        if args.device != "cpu" or args.torch_loop:
            raise SystemExit("optforge bench: --state-storage runs on the CPU: add --device cpu (without --torch-loop)")
        from . import bench_states
        names = _bench_optimizers(args, bench_states.OPTIMIZERS, "--state-storage")
        bench_states.run(args.state_storage, _given(args.min_log2, 20), _given(args.max_log2, 24),
                         _given(args.repeat, 20), args.threads, names, not args.no_models)
        return 0
    if args.device == "cpu":
        names = args.optimizers.split(",") if args.optimizers else None
        unknown = sorted(set(names or ()) - set(bench.CPU_OPTIMIZERS))
        if unknown:
            raise SystemExit(f"optforge bench: unknown optimizer(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(bench.CPU_OPTIMIZERS)}")
        bench.run_cpu(min_log2, max_log2, _given(args.repeat, 20), args.threads,
                      names, not args.no_models, args.plot)
        return 0
    bench.run(args.device, min_log2, max_log2, _given(args.repeat, 10))
    return 0


def _bench_optimizers(args, allowed, flag):
    """`--optimizers a,b` of a bench mode (None: its default list); SystemExit names the unknown."""
    names = args.optimizers.split(",") if args.optimizers else None
    unknown = sorted(set(names or ()) - set(allowed))
    if unknown:
        raise SystemExit(f"optforge bench: unknown optimizer(s) {', '.join(unknown)} for {flag}; "
                         f"choose from {', '.join(allowed)}")
    return names


def _given(value, default):
    return default if value is None else value


def arguments(spec):
    """[(name, default)] of an optimizer's constructor in its flavor's API family: torch's
    names (lr, betas, eps, weight_decay) for the torch flavor, else MXNet's."""
    from .conventions import arguments as families
    if spec["flavor"] == families.PARAMS_FLAVOR:
        return list(families.default_arguments(spec).items())
    return [("learning_rate", spec["learning_rate"])] + families.mxnet_arguments(spec)


def _known_flavor(flavor, command):
    """None if the flavor is registered, else the error (with the closest names) printed."""
    from .runtime import registry
    known = registry.flavors()
    if flavor in known:
        return None
    print(f"optforge {command}: unknown flavor {flavor!r}; " + registry.suggestion(flavor, known)
          + f"known flavors: {', '.join(known)}", file=sys.stderr)
    return 2


def _list(args):
    from .runtime import catalog
    if args.flavor is not None and _known_flavor(args.flavor, "list"):
        return 2
    rows = []
    from .runtime.registry import DEFAULT_FLAVOR
    order = sorted(catalog.load().items(), key=lambda kv: (kv[0][0] != DEFAULT_FLAVOR, kv[0][0], kv[0][1].lower()))
    for (flavor, name), cls in order:
        if args.flavor and flavor != args.flavor:
            continue
        spec = cls.SPEC
        if args.long:
            hps = ", ".join(f"{n}={v!r}" for n, v in arguments(spec))
            states = ", ".join(s["name"] + (f" [{s['when']}]" if s["when"] else "") for s in spec["states"])
            rows.append((spec["key"], flavor, hps, states or "-"))
        else:
            rows.append((spec["key"], flavor, ", ".join(n for n, _ in arguments(spec))))
    header = ("name", "flavor", "arguments (defaults)" if args.long else "arguments", "states")
    header = header[:len(rows[0])] if rows else header[:3]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(2)]
    free = WIDTH - sum(widths) - 2 * (len(header) - 1)
    widths += [free * 3 // 5, free - free * 3 // 5] if args.long else [free]
    for row in [header, tuple("-" * len(h) for h in header)] + rows:
        cells = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] for c, w in zip(row, widths)]
        for k in range(max(len(c) for c in cells)):
            line = "  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, widths))
            print(line.rstrip())
    print(f"\n{len(rows)} optimizers" + ("" if args.long else "; `optforge list --long` for defaults and states"))
    return 0


def is_spec_file(text):
    """Whether a command's NAME|FILE argument names a spec file rather than an optimizer: a
    `.toml` file or any path with a folder (optimizer names are identifiers)."""
    return text.endswith(".toml") or "/" in text or os.sep in text


def _spec_error(command, err):
    """A SpecError as `optforge check` prints it: every mistake as file:line:col: message."""
    mistakes = getattr(err, "errors", [err])
    for mistake in mistakes:
        print(mistake, file=sys.stderr)
    print(f"optforge {command}: {len(mistakes)} mistake(s) in {err.path}", file=sys.stderr)
    return 1


def _show(args):
    import inspect
    from .codegen.errors import SpecError
    from .conventions import arguments as families
    from .runtime import catalog, registry
    from_file = is_spec_file(args.name)
    flavor = args.flavor or registry.DEFAULT_FLAVOR
    if _known_flavor(flavor, "show"):
        return 2
    catalog.load()
    if from_file:
        from .runtime.catalog import load_spec
        try:
            cls = load_spec(args.name, register=False)   # as optforge.load_spec, without registering here
        except SpecError as err:
            return _spec_error("show", err)
        if args.flavor is not None and args.flavor != cls.flavor:
            print(f"optforge show: {args.name} is a spec of flavor {cls.flavor!r}, not {args.flavor!r}",
                  file=sys.stderr)
            return 2
    else:
        try:
            cls = registry.lookup(args.name, flavor)
        except ValueError as err:
            print(f"optforge show: {err}", file=sys.stderr)
            return 1
    spec = cls.SPEC
    # a spec of load_spec (from FILE, or registered by load_spec in this process) has its files
    # in the cache and no class attribute of optforge
    loaded = ".generated.numpy." not in cls._module.__name__
    spec_path = Path(args.name).resolve() if from_file else None
    shipped = loaded and from_file and spec_path.is_relative_to(PACKAGE_ROOT / "specs")   # optforge's own file
    wrap = textwrap.TextWrapper(WIDTH, initial_indent="    ", subsequent_indent="        ")
    print(f"{spec['name']} ({spec['flavor']}) - {spec['summary']}\n")
    from .conventions.api_families import constructors
    # the params-style class a name gets, counting this spec as registered (as load_spec would)
    registered = list(registry.registered().items()) + [((cls.flavor, spec["key"]), cls)]
    has_params_class = families.chosen(registered).get(spec["key"]) is cls
    if from_file and not shipped:
        print(f"Not shipped with optforge: optforge.load_spec({str(spec_path)!r}) generates and registers it "
              "first.\n")
    for family in constructors(spec, has_params_class, builtin=shipped or not loaded):
        print(f"{family['label']}:")
        for line in family["lines"]:
            print(wrap.fill(line))
    print()
    print("Update rule:\n")
    for line in spec["update"].splitlines():
        print("    " + line)
    if spec.get("skip_if"):
        print(f"\nSkipped entirely when: {spec['skip_if']}")
    metas = {h["name"]: h for h in spec["hyperparameters"]}

    def describe(h):
        extra = f" in {h['range_text']}" if h.get("range_text") else ""
        extra += f" one of {h['choices']}" if h.get("choices") else ""
        return f"({h['type']}{extra})  {h['doc']}"

    print("\nHyperparameters:\n")
    if spec["flavor"] == families.PARAMS_FLAVOR:
        shared = dict(families.keywords(spec))
        for name, default in arguments(spec):
            names = shared.get(name, [])
            if len(names) == 1 and names[0] in metas:
                print(wrap.fill(f"{name} = {default!r} {describe(metas[names[0]])}"))
                continue
            print(wrap.fill(f"{name} = {default!r}"))
            for part in names:
                print(wrap.fill(f"    {families.written(metas[part])}: {describe(metas[part])}"))
    else:
        print(f"    learning_rate = {spec['learning_rate']!r}")
        shown = set()
        for h in spec["hyperparameters"]:
            if h.get("list"):     # one line per list: its elements share range and doc
                if h["list"] not in shown:
                    shown.add(h["list"])
                    default = dict(families.mxnet_arguments(spec))[h["list"]]
                    print(wrap.fill(f"{h['list']} = {default!r} ({len(default)} x {describe(h)[1:]}"))
                continue
            print(wrap.fill(f"{h['name']} = {h['default']!r} {describe(h)}"))
    print("\nStates:\n")
    shapes = {"weight": "the weight's shape", "rows": "one value per row", "scalar": "a scalar"}
    dtypes = {"weight": "the weight's dtype", "float32": "float32 or wider"}
    for s in spec["states"]:
        where = "" if s["shape"] == "scalar" else f", {dtypes[s['dtype']]}"
        when = f", exists when {s['when']}" if s["when"] else ""
        print(wrap.fill(f"{s['name']}: starts as {s['init']}, {shapes[s['shape']]}{where}{when}. {s['doc']}".rstrip()))
    if not spec["states"]:
        print("    (none)")
    module_path = Path(inspect.getsourcefile(cls._module))
    if loaded:   # the load_spec cache entry: numpy/<stem>.py, cuda/<stem>.cu, ...
        entry, stem = module_path.parent.parent, module_path.stem
        files = ([("spec", spec_path)] if from_file else []) + [
            ("NumPy code", module_path), ("CUDA kernels", entry / "cuda" / f"{stem}.cu")]
    else:
        relative = cls._module.__name__.split(".generated.numpy.")[1].replace(".", "/")
        files = [("spec", PACKAGE_ROOT / spec["spec"]), ("NumPy code", module_path),
                 ("CUDA kernels", PACKAGE_ROOT / "generated" / "cuda" / f"{relative}.cu"),
                 ("docs", PACKAGE_ROOT / "generated" / "docs" / "html" / f"{relative}.html")]
    print("\nFiles:\n")
    for label, path in files:
        if path.exists():
            print(f"    {label + ':':<14}{path}")
    if from_file:
        print(f"    {'docs:':<14}optforge docs {args.name}")
    if args.code:
        print(f"\nGenerated NumPy code ({module_path}):\n")
        print(inspect.getsource(cls._module))
    elif from_file:
        print(f"\nThe generated code: optforge show {args.name} --code")
    else:
        print(f"\nThe generated code: optforge show {spec['key']} --flavor {spec['flavor']} --code")
    return 0


def _docs(args):
    if args.file is not None:
        return _spec_docs(args)
    if not DOCS_INDEX.exists():
        print(f"optforge docs: the HTML docs are missing ({DOCS_INDEX}); run `optforge generate`",
              file=sys.stderr)
        return 1
    print(DOCS_INDEX)
    return _open(DOCS_INDEX) if args.open else 0


def render_docs(path):
    """Write the docs pages of the spec at `path` (Markdown and HTML, as `optforge generate`
    writes them, with an index and the stylesheet so that the HTML page works on its own) into
    `<cache>/docs/<hash>/` and return the HTML page's path. The spec is loaded first
    (`load_spec`, unregistered), so a page exists only for a spec that loads; a malformed one
    raises SpecError. The folder is named by the spec's cache key and its resolved path (the
    page names the path), and its files are written anew each time: they are the generator's
    output, never trusted input, and are not imported."""
    import hashlib
    import os
    from .codegen.emitters import docs
    from .codegen.generate import module_name
    from .codegen.loader import load_rule
    from .runtime.catalog import load_spec
    from .runtime.spec_loading import cache_key, cache_root
    path = Path(path)
    load_spec(path, register=False)
    resolved = path.resolve()
    rule = load_rule(path)
    shipped = resolved.is_relative_to(docs.SHIPPED_SPECS)   # one of optforge's own specs
    if shipped:
        module, spec_path = module_name(PACKAGE_ROOT, resolved), resolved.relative_to(PACKAGE_ROOT).as_posix()
    else:
        module, spec_path = path.stem, str(resolved)
    entry = docs.Entry(module, rule, spec_path, shipped=shipped)
    name = hashlib.sha256(f"{cache_key(path)}\0{resolved}".encode()).hexdigest()[:32]
    folder = cache_root() / "docs" / name
    pages = docs.render_site([entry], folder="site", command="optforge docs", source=resolved.name)
    for relative, text in pages.items():
        target = folder / relative.split("/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".tmp-{os.getpid()}-{target.name}")
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, target)    # a reader never sees half a page
    return folder / "html" / docs.page_path(module, ".html")


def _spec_docs(args):
    """`optforge docs FILE`: the spec's pages, rendered into the cache."""
    from .codegen.errors import SpecError
    try:
        page = render_docs(args.file)
    except SpecError as err:
        return _spec_error("docs", err)
    print(page)
    return _open(page) if args.open else 0


def _open(page):
    import webbrowser
    if not webbrowser.open(page.as_uri()):
        print("optforge docs: no web browser could be started; open the file above", file=sys.stderr)
        return 1
    return 0


def _new(args):
    from .codegen.authoring import new_spec
    try:
        path = new_spec(args.name, args.dir, args.force)
    except (ValueError, FileExistsError) as err:
        print(f"optforge new: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}; check it with `optforge check {path}`")
    return 0


def _check(args):
    from .codegen.authoring import check_spec
    failed = 0
    for path in args.files:
        summary, errors = check_spec(path)
        for err in errors:
            print(err)
        if errors:
            failed += 1
            print(f"{path}: {len(errors)} mistake(s)", file=sys.stderr)
        else:
            print(f"{path}: ok, {summary}")
            if args.verify:
                failed += _verify(path)
    return 1 if failed else 0


def _verify(path):
    """Print the differential verifier's report of one spec; 1 when a target disagrees."""
    from .runtime.spec_loading import cache_root
    from .verify import resolve, verify
    cls, label, covered = resolve(path)
    report = verify(cls, label, covered, cache_root() / "cuda-host")
    for line in report.lines():
        print(line)
    return int(report.failed)


def _fuzz(args):
    import tempfile
    from .verify import batch
    count = 3000 if args.long else args.count
    with tempfile.TemporaryDirectory(prefix="optforge-fuzz-") as temporary:
        folder = args.keep or Path(temporary)
        paths = batch.write_specs(range(args.seed, args.seed + count), folder / "specs")
        failed = 0
        for path, report in batch.verify_batch(paths, folder / "build"):
            if report.failed:
                failed += 1
                print("\n".join(report.lines()))
                print(path.read_text(encoding="utf-8"))
    print(f"{count} random specs (seeds {args.seed}..{args.seed + count - 1}): {failed} with a disagreement")
    return 1 if failed else 0


def _demo(args):
    from .demo import run
    return run(steps=args.steps, seed=args.seed, plot=args.plot)


if __name__ == "__main__":
    sys.exit(main())
