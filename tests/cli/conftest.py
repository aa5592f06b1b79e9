"""Fixtures of the command-line tests: spawn (processes ended after the
test), ipc_dir (a short directory for socket files)."""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from clihelpers import NANOCAT, Spawner  # noqa: E402


@pytest.fixture
def spawn():
    spawner = Spawner()
    yield spawner
    spawner.close()


@pytest.fixture
def ipc_dir():
    # not tmp_path: a Unix socket's path must fit in 108 bytes
    d = tempfile.mkdtemp(prefix="nnofi-cli-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nanocat():
    if NANOCAT is None:
        pytest.skip("nanocat not found (Debian's nanomsg-utils has it): no interop peer")
    return NANOCAT
