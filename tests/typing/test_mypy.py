"""nnofi is typed (PEP 561): `mypy --strict` passes on the package, and a
user's program is checked against it (socket types, options, messages)."""
import os
import subprocess
import sys
import textwrap

import pytest

import nnofi
from nnofi.options import OPTIONS, SocketOptions

pytest.importorskip("mypy", reason="mypy is part of the test extra: pip install -e '.[test]'")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 240  # a cold mypy run takes some 5 s alone; the machine may be busy


def mypy(*args: str, cwd: str, cache: str) -> subprocess.CompletedProcess:
    """mypy with the repository's configuration ([tool.mypy] in
    pyproject.toml), a cache of the test's own (a stale shared one can hide
    new stubs) and nnofi's source tree, not the installed copy, on its path."""
    env = {**os.environ, "MYPYPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "pyproject.toml"),
         "--cache-dir", cache, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )


def test_package_passes_mypy_strict(tmp_path):
    done = mypy("--strict", "-p", "nnofi", cwd=ROOT, cache=str(tmp_path / "cache"))
    assert done.returncode == 0, f"mypy --strict -p nnofi:\n{done.stdout}{done.stderr}"
    assert "Success: no issues found" in done.stdout


def test_option_names_agree():
    """The options are properties made at import from OPTIONS; Socket's
    annotations and SocketOptions name them for type checkers by hand."""
    assert set(SocketOptions.__annotations__) == set(OPTIONS)
    declared = {name for name in nnofi.Socket.__annotations__ if not name.startswith("_")}
    assert declared == set(OPTIONS)


USER_CODE = """\
import numpy as np
import nnofi

with nnofi.Sub(connect="tcp://127.0.0.1:5555", topics=b"", recv_timeout=100) as sub:
    sub.subscribe("news")            # Sub's own method: `with` keeps the type
    sub.recv_timeout = 200
    data: bytes = sub.recv()
    msg = sub.recv_msg()
    header: bytes = msg.header
    view = memoryview(msg)
    first: list[bytes] = sub.recv_many(16)
with nnofi.Push(send_timeout=5) as push:
    push.send(np.zeros(4))           # any buffer
    sent: int = push.send_many([b"a", bytearray(b"b")])
try:
    nnofi.Req()
except nnofi.Timeout as exc:
    code: int = exc.errno
nnofi.Req(recv_timeot=5)             # ERROR: a misspelt option
nnofi.Req(linger="1s")               # ERROR: options are ints
nnofi.Rep().send_timeout = 1.5       # ERROR
nnofi.Pull().subscribe(b"")          # ERROR: only Sub subscribes
wrong: str = nnofi.Rep().recv()      # ERROR: recv gives bytes
"""


ASYNC_USER_CODE = """\
import asyncio
from typing_extensions import assert_type
import nnofi

async def main() -> None:
    with nnofi.Pair(recv_timeout=100) as a:
        assert_type(await a.arecv(), bytes)
        msg = await a.arecv_msg()
        assert_type(msg, nnofi.Message)
        await a.asend(b"x")
        await a.asend(bytearray(b"x"))
        await a.asend_msg(msg)
        assert_type(a.send_fileno(), int)
        got: str = await a.arecv()       # ERROR: arecv gives bytes
        await a.asend_msg(b"x")          # ERROR: asend_msg takes a Message
        a.arecv().decode()               # ERROR: a coroutine, not yet bytes

asyncio.run(main())
"""


@pytest.mark.parametrize("code", [USER_CODE, ASYNC_USER_CODE], ids=["sync", "asyncio"])
def test_user_code_is_checked_against_nnofi(tmp_path, code):
    """mypy flags exactly the lines marked # ERROR in a user's program."""
    (tmp_path / "user.py").write_text(code)
    done = mypy("--strict", "user.py", cwd=str(tmp_path), cache=str(tmp_path / "cache"))
    expected = {i for i, line in enumerate(code.splitlines(), 1) if "# ERROR" in line}
    reported = {}
    for line in done.stdout.splitlines():
        parts = line.split(":", 3)
        if len(parts) == 4 and parts[0] == "user.py" and parts[2].strip() == "error":
            reported.setdefault(int(parts[1]), line)
    assert set(reported) == expected, (
        f"mypy flagged lines {sorted(reported)}, expected {sorted(expected)}:\n{done.stdout}{done.stderr}"
    )
