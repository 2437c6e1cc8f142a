"""`optforge generate` / `--check`, `list`, `show`."""
import shutil
import subprocess
import sys

import pytest


def optforge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "optforge", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def tree(repo_root, tmp_path):
    """A copy of specs/ and generated/ to break."""
    for folder in ("specs", "generated"):
        shutil.copytree(repo_root / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_check_passes_on_the_repository(repo_root):
    result = optforge("generate", "--check", "--root", str(repo_root))
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_names_a_stale_file(tree):
    spec = tree / "specs" / "adam.toml"
    spec.write_text(spec.read_text().replace("default = 0.999", "default = 0.99"))
    result = optforge("generate", "--check", "--root", str(tree))
    assert result.returncode == 1
    assert "generated/numpy/adam.py: stale" in result.stdout
    assert "sgd.py" not in result.stdout


def test_check_names_missing_and_extra_files(tree):
    (tree / "generated" / "numpy" / "nag.py").unlink()
    (tree / "generated" / "numpy" / "old.py").write_text("# left over\n")
    result = optforge("generate", "--check", "--root", str(tree))
    assert result.returncode == 1
    assert "generated/numpy/nag.py: missing" in result.stdout
    assert "generated/numpy/old.py: extra" in result.stdout


def test_generate_repairs_the_tree(tree):
    spec = tree / "specs" / "adam.toml"
    spec.write_text(spec.read_text().replace("default = 0.999", "default = 0.99"))
    (tree / "generated" / "numpy" / "old.py").write_text("# left over\n")
    result = optforge("generate", "--root", str(tree))
    assert result.returncode == 0
    assert "wrote generated/numpy/adam.py" in result.stdout
    assert not (tree / "generated" / "numpy" / "old.py").exists()
    assert "'default': 0.99," in (tree / "generated" / "numpy" / "adam.py").read_text()
    assert optforge("generate", "--check", "--root", str(tree)).returncode == 0


def test_generate_reports_spec_errors_with_location(tree):
    spec = tree / "specs" / "adam.toml"
    spec.write_text(spec.read_text().replace("grad**2", "grad**2 + oops"))
    result = optforge("generate", "--check", "--root", str(tree))
    assert result.returncode == 1
    assert "specs/adam.toml:8:" in result.stderr and "unknown name 'oops'" in result.stderr


def test_list_shows_every_optimizer():
    result = optforge("list", "--long")
    assert result.returncode == 0
    for name in ("sgd", "nag", "signum", "ftml", "dcasgd", "sgld", "adam", "adamw", "adamax",
                 "nadam", "adagrad", "adadelta", "rmsprop", "ftrl", "test"):
        assert f"\n{name} " in result.stdout
    assert "beta1=0.9" in result.stdout and "mom [momentum != 0]" in result.stdout


def test_show_prints_formula_hyperparameters_and_code():
    result = optforge("show", "Adam", "--code")
    assert result.returncode == 0
    assert "mean   = beta1 * mean + (1 - beta1) * grad" in result.stdout
    assert "beta2 = 0.999 (float in [0, 1))" in result.stdout
    assert "def kernel_default(xp, weight, grad, mean, var" in result.stdout


def test_show_unknown_optimizer():
    result = optforge("show", "nope")
    assert result.returncode == 1 and "Cannot find optimizer nope" in result.stderr


def test_check_covers_the_type_stubs(tree):
    stub = tree / "generated" / "params_classes.pyi"
    stub.write_text(stub.read_text().replace("lr: float = 0.001", "lr: float = 0.002", 1))
    result = optforge("generate", "--check", "--root", str(tree))
    assert result.returncode == 1
    assert "generated/params_classes.pyi: stale" in result.stdout
