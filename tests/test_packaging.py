"""The distribution installs everything under the one import name `optforge`."""
import os
import subprocess
import sys
import zipfile

import pytest


@pytest.fixture(scope="module")
def wheel(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(repo_root)], check=True, capture_output=True)
    (path,) = out.glob("optforge-*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def wheel_names(wheel):
    return wheel.namelist()


def test_everything_lives_under_optforge(wheel_names):
    top = {name.split("/")[0] for name in wheel_names}
    assert top == {"optforge", next(t for t in top if t.endswith(".dist-info"))}


def test_wheel_carries_specs_generated_code_and_templates(wheel_names):
    names = set(wheel_names)
    for expected in ("optforge/__init__.py", "optforge/cli.py", "optforge/specs/adam.toml",
                     "optforge/generated/numpy/adam.py", "optforge/codegen/templates/numpy_module.py.j2",
                     "optforge/runtime/mxnet_base.py", "optforge/torch/__init__.py", "optforge/torch/optimizer.py",
                     "optforge/lr_scheduler.py", "optforge/optimizer.py",
                     "optforge/py.typed", "optforge/generated/mxnet_classes.pyi",
                     "optforge/generated/params_classes.pyi"):
        assert expected in names
    assert not any(n.startswith("optforge/tests/") for n in names)


def test_console_script(wheel, wheel_names):
    entry = next(n for n in wheel_names if n.endswith("entry_points.txt"))
    assert "optforge = optforge.cli:main" in wheel.read(entry).decode()


def test_every_generated_module_and_spec_is_in_the_wheel(repo_root, wheel_names):
    names = set(wheel_names)
    for path in (repo_root / "generated").rglob("*.py"):
        assert "optforge/" + path.relative_to(repo_root).as_posix() in names, path
    for path in (repo_root / "specs").rglob("*.toml"):
        assert "optforge/" + path.relative_to(repo_root).as_posix() in names, path


def test_optforge_torch_imports_from_the_wheel_and_the_repository(wheel, repo_root, tmp_path):
    """optforge.torch (sources in torch_frontend/) imports from an installed wheel, and the
    repository root holds nothing named torch that would hide the real torch there."""
    pytest.importorskip("torch")
    assert not (repo_root / "torch").exists() and not (repo_root / "torch.py").exists()
    wheel.extractall(tmp_path / "site")
    code = ("import optforge.torch, torch; from optforge.torch import AdamW; "
            "assert issubclass(AdamW, torch.optim.Optimizer); "
            "print(optforge.torch.__file__); print(torch.__file__)")
    for cwd, path in ((tmp_path, str(tmp_path / "site")), (repo_root, "")):
        env = dict(os.environ, PYTHONPATH=path)
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, capture_output=True,
                             text=True).stdout.split("\n")
        if path:
            assert out[0].startswith(path), out
        assert "site-packages" in out[1] or "dist-packages" in out[1], out
