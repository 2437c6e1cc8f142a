"""The `optforge` command line."""
import argparse
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(prog="optforge", description=(
        "Optimizers written once as formulas, generated into NumPy and CUDA code."))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate", help="regenerate generated/ from specs/")
    gen.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 and name the files that are stale")
    gen.add_argument("--root", type=Path, default=PACKAGE_ROOT,
                     help="folder holding specs/ and generated/ (default: the optforge package)")
    gen.set_defaults(run=_generate)

    lst = commands.add_parser("list", help="table of the registered optimizers")
    lst.add_argument("--flavor", default=None, help="only this flavor (e.g. mxnet2)")
    lst.set_defaults(run=_list)

    show = commands.add_parser("show", help="an optimizer's formulas, hyperparameters and generated code")
    show.add_argument("name")
    show.add_argument("--flavor", default="mxnet2")
    show.set_defaults(run=_show)

    new = commands.add_parser("new", help="write a commented spec to start a new optimizer from")
    new.add_argument("name", help="the optimizer's class name, e.g. MyOpt")
    new.add_argument("--dir", type=Path, default=Path("."), help="folder to write NAME.toml in")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(run=_new)

    check = commands.add_parser("check", help="validate spec files; print every mistake as file:line:col")
    check.add_argument("files", nargs="+", type=Path)
    check.set_defaults(run=_check)

    demo = commands.add_parser("demo", help="train a small model with every optimizer (the main job)")
    demo.add_argument("--steps", type=int, default=300)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    bench = commands.add_parser("bench", help="optimizer step GB/s against the device's copy GB/s")
    bench.add_argument("--device", choices=("gpu", "cpu"), default="gpu",
                       help="gpu: fused_step on CuPy arrays (default); cpu: the native CPU kernels against torch")
    bench.add_argument("--min-log2", type=int, default=None,
                       help="smallest size: 2**N parameters (default 20 on the GPU, 16 on the CPU)")
    bench.add_argument("--max-log2", type=int, default=None,
                       help="largest size: 2**N parameters (default 28 on the GPU, 26 on the CPU)")
    bench.add_argument("--repeat", type=int, default=None,
                       help="timed steps per size (GPU: best of 10; CPU: min and median of 20)")
    bench.add_argument("--threads", type=int, default=None, help="CPU: threads of each side (default: every core)")
    bench.add_argument("--optimizers", default=None,
                       help="CPU: comma-separated subset of " + ",".join(
                           ("adam", "adamw", "sgd", "adagrad", "rmsprop", "adamax", "nadam", "radam", "adadelta",
                            "lamb")))
    bench.add_argument("--no-models", action="store_true",
                       help="CPU: leave out the ResNet-50 and 1000 x 4096 layouts")
    bench.add_argument("--plot", default=None, metavar="FILE", help="CPU: a PNG of GB/s against size (matplotlib)")
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
    if args.device == "cpu":
        names = args.optimizers.split(",") if args.optimizers else None
        unknown = sorted(set(names or ()) - set(bench.CPU_OPTIMIZERS))
        if unknown:
            raise SystemExit(f"optforge bench: unknown optimizer(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(bench.CPU_OPTIMIZERS)}")
        bench.run_cpu(_given(args.min_log2, 16), _given(args.max_log2, 26), _given(args.repeat, 20), args.threads,
                      names, not args.no_models, args.plot)
        return 0
    bench.run(args.device, _given(args.min_log2, 20), _given(args.max_log2, 28), _given(args.repeat, 10))
    return 0


def _given(value, default):
    return default if value is None else value


def _list(args):
    from .runtime import catalog
    rows = []
    for (flavor, name), cls in sorted(catalog.load().items(), key=lambda kv: (kv[0][0], kv[0][1].lower())):
        if args.flavor and flavor != args.flavor:
            continue
        spec = cls.SPEC
        hps = [f"learning_rate={spec['learning_rate']!r}"]
        hps += [f"{h['name']}={h['default']!r}" for h in spec["hyperparameters"]]
        states = [s["name"] + (f" [{s['when']}]" if s["when"] else "") for s in spec["states"]]
        rows.append((spec["key"], flavor, ", ".join(hps), ", ".join(states) or "-"))
    header = ("name", "flavor", "hyperparameters (defaults)", "states")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[3])
    print("  ".join("-" * w for w in widths) + "  " + "-" * len(header[3]))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    print(f"\n{len(rows)} optimizers")
    return 0


def _show(args):
    import inspect
    from .runtime import catalog, registry
    catalog.load()
    try:
        cls = registry.lookup(args.name, args.flavor)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    spec = cls.SPEC
    print(f"{spec['name']} ({spec['flavor']}) - {spec['summary']}\n")
    print("Update rule:\n")
    for line in spec["update"].splitlines():
        print("    " + line)
    if spec.get("skip_if"):
        print(f"\nSkipped entirely when: {spec['skip_if']}")
    print("\nHyperparameters:\n")
    print(f"    learning_rate = {spec['learning_rate']!r}")
    for h in spec["hyperparameters"]:
        extra = f" in {h['range_text']}" if h.get("range_text") else ""
        extra += f" one of {h['choices']}" if h.get("choices") else ""
        print(f"    {h['name']} = {h['default']!r} ({h['type']}{extra})  {h['doc']}")
    print("\nStates:\n")
    shapes = {"weight": "the weight's shape", "rows": "one value per row", "scalar": "a scalar"}
    dtypes = {"weight": "the weight's dtype", "float32": "float32 or wider"}
    for s in spec["states"]:
        where = "" if s["shape"] == "scalar" else f", {dtypes[s['dtype']]}"
        when = f", exists when {s['when']}" if s["when"] else ""
        print(f"    {s['name']}: starts as {s['init']}, {shapes[s['shape']]}{where}{when}. {s['doc']}".rstrip())
    if not spec["states"]:
        print("    (none)")
    print(f"\nGenerated NumPy code ({inspect.getsourcefile(cls._module)}):\n")
    print(inspect.getsource(cls._module))
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
    return 1 if failed else 0


def _demo(args):
    from .demo import run
    return run(steps=args.steps, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
