"""docs/examples/asyncio_example.py runs, as a user would run it, and
prints every client's answers."""
import os
import subprocess
import sys

import pytest

from aiohelpers import ofi_tcp_missing

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples", "asyncio_example.py")


@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp", "ofi"])
def test_asyncio_example_runs(transport):
    if transport == "ofi" and ofi_tcp_missing():
        pytest.skip(ofi_tcp_missing())
    done = subprocess.run(
        [sys.executable, EXAMPLE, "--transport", transport],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    expected = [f"client {k}: " + " ".join(str((10 * k + q) ** 2) for q in range(4)) for k in range(5)]
    assert lines == expected + ["served 20 requests, counted 20 progress reports", "no more reports"], done.stdout
