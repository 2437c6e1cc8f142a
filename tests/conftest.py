import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


class _RootAsFolder:
    """The repository root holds the package's `__init__.py`, so pytest would collect it as a
    test package and import that file by path, which fails when the clone's folder name is
    not an identifier (`git clone ... optforge-ci`). Collect the root as a plain folder."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if Path(path).resolve() == ROOT:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    config.pluginmanager.register(_RootAsFolder(), "optforge-root-as-folder")


@pytest.fixture(scope="session")
def repo_root():
    return ROOT
