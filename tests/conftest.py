import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


class _RootIsAPlainDirectory:
    """The repository root is the `optforge` package itself (it has an __init__.py).
    pytest would collect it as a Package and import it under the checkout folder's
    name, which fails when that name is not an identifier (a clone in `docs-clone/`).
    The tests use the installed `optforge`, so the root is collected as a directory.
    Registered as a plugin: a conftest's own hooks do not apply to its parent folder."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if path == ROOT:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="the long runs: 3000 random specs through the differential verifier (300 without); "
                          "every optim_db variant of tests/test_torch_optim_db.py (a selection without)")


def pytest_configure(config):
    config.pluginmanager.register(_RootIsAPlainDirectory(), "optforge-root-directory")


@pytest.fixture(autouse=True)
def builtin_registry():
    """Every test starts and ends with the built-in registry: a spec a test loads
    (optforge.load_spec registers its class) does not leak into later tests."""
    from optforge.runtime import registry
    registry.names()    # the built-ins first
    saved = {flavor: dict(table) for flavor, table in registry._REGISTRY.items()}
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


@pytest.fixture(scope="session")
def repo_root():
    return ROOT


# Under CI (.ci/run sets CI) a test skipped because a package of the test extra failed to
# import fails instead: a broken install must not pass as skipped tests.
def _missing_import_fails(report, excinfo):
    if os.environ.get("CI") and report.skipped and excinfo is not None \
            and str(excinfo.value).startswith("could not import"):
        report.outcome = "failed"
        report.longrepr = f"{excinfo.value}: the test extra installs it, and CI runs every test"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _missing_import_fails(outcome.get_result(), call.excinfo)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "could not import" in reason:
            report.outcome = "failed"
            report.longrepr = f"{reason}: the test extra installs it, and CI runs every test"
