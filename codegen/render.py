"""One spec's generated code: what `optforge.load_spec` and `optforge generate` both run.

`render_spec` runs every per-spec code emitter (`SPEC_EMITTERS`: NumPy, CUDA, native
CPU) and refuses a spec whose files would pass the size limit; `render_file` parses and
analyses a spec file first. The tool that writes the whole tree (docs, stubs, packages)
is `generate.py`.
"""
from .analysis import Analysis, analyse
from .emitters import cpu_module, cuda_matrix, cuda_module, numpy_module
from .emitters.templates import MAX_FILE_CHARS, FileTooLarge
from .errors import SpecError
from .loader import load_rule
from . import targets


def numpy_files(rule, analysis, spec_path, name):
    group = group_module(name).rpartition(".")[2] if analysis.group is not None and analysis.group.rule else ""
    return {f"numpy/{name.replace('.', '/')}.py": numpy_module.render(rule, analysis, spec_path, group)}


def cuda_files(rule, analysis, spec_path, name):
    """The spec's CUDA kernels and their launch metadata; for a matrix rule its stage
    kernels (`<spec>.stages.cu`, no metadata); none for other rules the CUDA emitter does
    not cover: their NumPy code runs on CuPy arrays."""
    if rule.matrix:
        return cuda_matrix.files(rule, analysis, name)
    if not targets.has_kernels(rule, analysis):
        return {}
    cu, meta = cuda_module.render(rule, analysis, spec_path, name)
    target = name.replace(".", "/")
    return {f"cuda/{target}.cu": cu, f"cuda/{target}.py": meta}


def cpu_files(rule, analysis, spec_path, name):
    """The spec's native CPU kernels (for the rules that have CUDA kernels: they share the
    launch metadata)."""
    return cpu_module.files(rule, analysis, name)


# The per-spec code emitters: each maps (rule, analysis, spec path, module name such as
# "mxnet1.adam") to {path under generated/: text}. `optforge generate` and
# `optforge.load_spec` both run every emitter listed here, so a new target (CUDA, CPU)
# is added once, here, and serves both.
SPEC_EMITTERS = (numpy_files, cuda_files, cpu_files)
# the file each emitter renders with `render_limited`
_LIMITED = {numpy_files: "numpy/{}.py", cuda_files: "cuda/{}.cu", cpu_files: "cpu/{}.cpp"}


def group_module(name):
    """The module name of a spec's partials stage (codegen/group_stage.py): "prodigy" ->
    "_group_prodigy", "mxnet1.adam" -> "mxnet1._group_adam" (a spec's own file name never
    starts with '_', so it is never a spec's)."""
    folder, _, stem = name.rpartition(".")
    return f"{folder}._group_{stem}" if folder else f"_group_{stem}"


def render_spec(rule, analysis, spec_path, name):
    """Every per-spec emitter's files for one spec: {path under generated/: text}. A rule
    with group reductions also gets its partials stage as a generated rule of its own (the
    same emitters, module `group_module(name)`): every target runs it as any rule."""
    files = {}
    if analysis.group is not None and analysis.group.rule is not None:
        group = analysis.group
        files.update(render_spec(group.rule, Analysis(group.rule, group.atoms, group.variants), spec_path,
                                 group_module(name)))
    where = rule.statements[0].loc
    for emitter in SPEC_EMITTERS:
        try:
            new = emitter(rule, analysis, spec_path, name)
        except FileTooLarge:    # the code templates stop at the limit (render_limited)
            relative = _LIMITED[emitter].format(name.replace(".", "/"))
            raise SpecError(f"the generated {relative} would have more than {MAX_FILE_CHARS} characters: "
                            "more than the limit (printed size)", where.path, where.line, where.col) from None
        for relative, text in new.items():     # checked per emitter: a spec past the limit stops early
            if len(text) > MAX_FILE_CHARS:
                raise SpecError(f"the generated {relative} would have {len(text)} characters: more than the "
                                f"limit of {MAX_FILE_CHARS} (printed size)", where.path, where.line, where.col)
        files.update(new)
    return files


def render_file(path):
    """(Rule, {path under generated/: text}) of the spec file at `path`, its module named by
    the file's stem (as `optforge.load_spec` caches it)."""
    rule = load_rule(path)      # the spec's file name is checked there: an identifier
    return rule, render_spec(rule, analyse(rule), path.name, path.stem)
