"""Type checkers see the optimizer classes: the generated stubs (generated/*.pyi, imported
by `optforge`, `optforge.optimizer` and `optforge.optim` under TYPE_CHECKING) give every
class of every API family its real signature.

mypy checks two user scripts against the package as installed in the environment the tests
run in, set up as README.md says (strict editable mode: a tree of links laid out as the
wheel is, which mypy follows): a correct one must pass, and one with wrong keywords and
types must fail on exactly those lines, which proves the check can fail."""
import math
import os
import re
import subprocess
import sys

import pytest

GOOD = '''\
import numpy as np
import optforge
import optforge.lr_scheduler
from optforge import optim, optimizer
from optforge.lr_scheduler import FactorScheduler

opt = optforge.Adam(learning_rate=0.01, beta1=0.8, wd=0.1, rescale_grad=0.5,
                    lr_scheduler=FactorScheduler(step=10, factor=0.5))
beta1: float = opt.beta1
sgd = optimizer.SGD(0.1, momentum=0.9, clip_gradient=None)
lamb = optforge.LAMB(lower_bound=None, bias_correction=False)
w = np.ones(3, np.float32)
torch_adam = optim.Adam([w], lr=0.1, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.01)
lion = optim.Lion([w], lr=1e-4, betas=(0.9, 0.99))
made = optimizer.create("adam", learning_rate=0.1)

import torch
import optforge.torch

model = torch.nn.Linear(4, 2)
adamw = optforge.torch.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
as_torch: torch.optim.Optimizer = adamw
sched = torch.optim.lr_scheduler.StepLR(adamw, step_size=10)
sgd_t = optforge.torch.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=True, fused=None)
lion_t = optforge.torch.Lion(model.parameters(), lr=1e-4, master_weights=True)
'''

BAD = '''\
import numpy as np
import optforge
from optforge import optim

w = np.ones(3, np.float32)
a = optforge.Adam(learning_rat=0.01)
b = optforge.SGD(momentum="high")
c = optim.Adam([w], lr=0.1, beta1=0.9)
d = optim.Adam([w], betas=0.9)

import torch
import optforge.torch
model = torch.nn.Linear(4, 2)
e = optforge.torch.AdamW(model.parameters(), lr=1e-3, beta1=0.9)
f = optforge.torch.Adam(model.parameters(), capturable=True)
'''
BAD_LINES = {6, 7, 8, 9, 14, 15}


@pytest.fixture(scope="module")
def checked(repo_root, tmp_path_factory):
    pytest.importorskip("mypy")
    folder = tmp_path_factory.mktemp("typing")
    (folder / "good.py").write_text(GOOD)
    (folder / "bad.py").write_text(BAD)
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", sys.executable, "--follow-imports=silent",
         "--no-error-summary", "--hide-error-context", "--cache-dir", str(folder / "cache"), "good.py", "bad.py"],
        cwd=folder, env=env, capture_output=True, text=True)
    assert 'module named "optforge"' not in result.stdout, (
        "mypy finds no optforge in this environment: install it as README.md says "
        "(pip install -e '.[test]' --config-settings editable_mode=strict)\n" + result.stdout)
    errors = [m.groups() for m in re.finditer(r"^(\w+)\.py:(\d+): error: (.*)$", result.stdout, re.M)]
    return result, errors


def test_correct_use_of_every_family_type_checks(checked):
    result, errors = checked
    assert [e for e in errors if e[0] == "good"] == [], result.stdout + result.stderr


def test_wrong_keywords_and_types_fail_type_checking(checked):
    result, errors = checked
    bad = [e for e in errors if e[0] == "bad"]
    assert {int(line) for _, line, _ in bad} == BAD_LINES, result.stdout + result.stderr
    text = " ".join(message for _, _, message in bad)
    assert '"learning_rat"' in text and '"beta1"' in text, text
    assert any(line == "15" and '"capturable"' in message for _, line, message in bad), text


def _stub_signatures(path):
    """{class name: [(argument, default literal or '...', keyword-only)]} from a stub file."""
    import ast
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
            args = init.args
            positional = args.args[1:]
            defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
            rows = [(a.arg, ast.literal_eval(d) if d is not None else None, False) for a, d in zip(positional, defaults)]
            rows += [(a.arg, ast.literal_eval(d), True) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
            out[node.name] = rows
    return out


def _runtime_signature(cls, extra_keywords=()):
    import inspect
    rows = []
    for p in list(inspect.signature(cls).parameters.values()):
        if p.kind is p.VAR_KEYWORD:
            continue
        default = None if p.default is p.empty else p.default
        if isinstance(default, float) and not math.isfinite(default):
            default = ...   # no literal for it: stubs write `...` (emitters/stubs._default)
        rows.append((p.name, default, p.kind is p.KEYWORD_ONLY))
    return rows + list(extra_keywords)


def test_stubs_match_the_classes_the_runtime_builds(repo_root):
    """Every class of each family is in its stub with the runtime signature: same argument
    names, order, defaults and keyword-only split (the MXNet-style classes also take the
    base Optimizer's keywords, which the runtime passes through **kwargs)."""
    import inspect
    import optforge
    from optforge import optim
    from optforge.runtime import catalog
    mxnet = _stub_signatures(repo_root / "generated" / "mxnet_classes.pyi")
    base = [(name, p.default, True) for name, p in inspect.signature(optforge.Optimizer).parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD]
    classes = catalog.classes()
    assert set(mxnet) == set(classes)
    for name, cls in classes.items():
        own = _runtime_signature(cls)
        taken = {row[0] for row in own}
        assert mxnet[name] == own + [row for row in base if row[0] not in taken], name
    params = _stub_signatures(repo_root / "generated" / "params_classes.pyi")
    from optforge.runtime.params_api import classes as params_classes
    assert set(params) == set(params_classes())
    for name, rows in params.items():
        assert rows == _runtime_signature(getattr(optim, name)), name


def test_torch_stubs_match_the_torch_classes(repo_root):
    pytest.importorskip("torch")
    import optforge.torch
    stubs = _stub_signatures(repo_root / "generated" / "torch_classes.pyi")
    assert set(stubs) == set(optforge.torch.classes())
    for name, rows in stubs.items():
        assert rows == _runtime_signature(getattr(optforge.torch, name)), name
