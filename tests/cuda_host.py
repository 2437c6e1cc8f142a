"""The host build of the generated CUDA sources (optforge.verify.host_cuda) for the tests:
where the tests keep the libraries, and skipping or failing without a compiler."""
import os
from pathlib import Path

import pytest

from optforge.verify.host_cuda import *  # noqa: F401,F403  (the tests' cuda_host.build, HostKernels, ...)
from optforge.verify.host_cuda import _compile, _digest  # noqa: F401



def need(tool, what):
    """Skip without `tool`; fail instead when CI demands every CUDA compiler
    (OPTFORGE_REQUIRE_CUDA_COMPILERS=1, set by .ci/run)."""
    if tool:
        return tool
    message = f"{what} is not available"
    if os.environ.get("OPTFORGE_REQUIRE_CUDA_COMPILERS") == "1":
        pytest.fail(message + " and OPTFORGE_REQUIRE_CUDA_COMPILERS=1 demands it")
    pytest.skip(message)


def cache_folder(config, tmp_path_factory):
    """Where built libraries are kept between runs: pytest's cache folder, or a
    temporary one when the cache plugin is off (`-p no:cacheprovider`)."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("cuda-host"))
    return tmp_path_factory.mktemp("cuda-host")
