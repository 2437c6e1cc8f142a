"""Imports run one way: every module imports only its own layer and the layers below.

The layers, top to bottom (docs/architecture.md draws them):

    tools        cli, bench, demo, verify (the differential verifier)
    public       optforge/__init__, optim, optimizer, lr_scheduler, optforge.torch's __init__
    frontends    the MXNet style (runtime/mxnet_base.py, spec_optimizer.py, updater, modes,
                 state_io, registry, catalog, lr_scheduler, docstrings), the params style
                 (runtime/params_api.py) and optforge.torch (torch_frontend/)
    engine       runtime/engine/, runtime/spec_loading.py
    backends     runtime/backends/, arrays, validation, sparse, noise, cache_folder
    generator    codegen/
    conventions  conventions/, codegen/errors.py (SpecError, which every layer raises or reports)

Every import counts, lazy ones inside functions included (a lazy import is still a
dependency). Within a layer modules may import each other, but the import graph has no
cycle once the one deliberate lazy import is left out: the registry loading the built-in
classes (runtime/catalog.py) on first use.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("codegen", "conventions", "runtime", "torch_frontend", "verify")
TOP = ("__init__", "__main__", "cli", "bench", "bench_states", "demo", "optim", "optimizer", "lr_scheduler")

LAYERS = ["conventions", "generator", "backends", "engine", "frontends", "public", "tools"]
LAZY_REGISTRY = ("runtime.registry", "runtime.catalog")    # the registry's built-ins, on first use


def layer(module):
    """The layer of a module named by its path under the package root (dots)."""
    if module.startswith("conventions") or module == "codegen.errors":
        return "conventions"
    if module.startswith("codegen"):
        return "generator"
    if module.startswith("runtime.backends") or module in ("runtime.array_views", "runtime.validation", "runtime.sparse",
                                                           "runtime.noise", "runtime.cache_folder", "runtime"):
        return "backends"
    if module.startswith("runtime.engine") or module == "runtime.spec_loading":
        return "engine"
    if module == "torch_frontend":
        return "public"
    if module.startswith(("runtime.", "torch_frontend.")):
        return "frontends"
    if module in ("__init__", "optim", "optimizer", "lr_scheduler"):
        return "public"
    if module in ("cli", "bench", "bench_states", "demo", "__main__") or module.startswith("verify"):
        return "tools"
    raise AssertionError(f"no layer for module {module!r}: add it to tests/test_layers.py")


def modules():
    """{module name: path} of every module of the package (generated code aside)."""
    found = {name: ROOT / f"{name}.py" for name in TOP if (ROOT / f"{name}.py").exists()}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _resolve(module, path, node):
    """The modules an import statement of `module` names (names under this package only)."""
    if isinstance(node, ast.Import):
        return [alias.name[len("optforge."):] for alias in node.names if alias.name.startswith("optforge.")]
    if node.level == 0:
        if node.module and node.module.startswith("optforge."):
            base = node.module[len("optforge."):]
            return [base] + [f"{base}.{alias.name}" for alias in node.names]
        return []
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if module == "__init__":
        package = []
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    target = ".".join(base + ([node.module] if node.module else []))
    names = [f"{target}.{alias.name}" if target else alias.name for alias in node.names]
    # `from . import x` names the submodule x; `from .m import y` the module m (and m.y if
    # that is a module)
    return names if node.module is None else [target] + names


def imports():
    """{module: {imported module: line}} over every import statement, lazy ones included."""
    known = modules()
    graph = {}
    for module, path in known.items():
        edges = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _resolve(module, path, node):
                    name = {"torch": "torch_frontend"}.get(name.split(".")[0], "") + name[len("torch"):] \
                        if name.split(".")[0] == "torch" else name
                    if name in known and name != module:
                        edges.setdefault(name, node.lineno)
        graph[module] = edges
    return graph


def test_every_module_has_a_layer():
    for module in modules():
        layer(module)


def test_no_module_imports_a_layer_above_its_own():
    rank = {name: k for k, name in enumerate(LAYERS)}
    upward = [f"{module} ({layer(module)}) imports {target} ({layer(target)}) at line {line}"
              for module, edges in imports().items() for target, line in edges.items()
              if rank[layer(target)] > rank[layer(module)]]
    assert not upward, "\n".join(upward)


def test_no_import_cycle_but_the_registry():
    graph = imports()
    graph[LAZY_REGISTRY[0]].pop(LAZY_REGISTRY[1])
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):     # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def test_the_generator_imports_no_runtime():
    offending = [f"{m} imports {t}" for m, edges in imports().items() if layer(m) in ("generator", "conventions")
                 for t in edges if layer(t) not in ("generator", "conventions")]
    assert not offending, offending


@pytest.mark.parametrize("name", ["adam", "schedulefreeadamw"])
def test_the_reserved_names_are_the_public_attributes_of_the_runtime_classes(name):
    """conventions/reserved.py (read by the generator, which imports no runtime) lists every
    public attribute of the MXNet-style classes: a hyperparameter of that name would hide it."""
    import optforge
    from optforge.codegen.loader import MODE_METHODS
    from optforge.conventions.reserved import CLASS_ATTRIBUTES
    opt = optforge.create(name)
    public = {n for n in set(dir(type(opt))) | set(vars(opt)) if not n.startswith("_")}
    public -= {m["name"] for m in opt.SPEC["hyperparameters"]} | set(MODE_METHODS)
    assert public == CLASS_ATTRIBUTES


def test_the_mxnet_options_are_the_constructors():
    """conventions/arguments.MXNET_OPTIONS (the stubs' source) is runtime/mxnet_base.py's signature."""
    import inspect
    from optforge.conventions.arguments import MXNET_OPTIONS
    from optforge.runtime.mxnet_base import Optimizer
    parameters = inspect.signature(Optimizer.__init__).parameters.values()
    assert [(p.name, p.default) for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"] \
        == list(MXNET_OPTIONS)
