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


def pytest_configure(config):
    config.pluginmanager.register(_RootIsAPlainDirectory(), "optforge-root-directory")


@pytest.fixture(scope="session")
def repo_root():
    return ROOT
