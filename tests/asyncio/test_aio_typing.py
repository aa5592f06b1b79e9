"""A user's asyncio code is type-checked against nnofi: the coroutines
give bytes and Message, and take what send and send_msg take."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("mypy", reason="mypy is part of the test extra: pip install -e '.[test]'")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

USER_CODE = """\
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


def test_user_asyncio_code_is_checked(tmp_path):
    (tmp_path / "user.py").write_text(USER_CODE)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "--strict", "user.py"],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": ROOT}, capture_output=True, text=True, timeout=240,
    )
    expected = {i for i, line in enumerate(USER_CODE.splitlines(), 1) if "# ERROR" in line}
    reported = {}
    for line in done.stdout.splitlines():
        parts = line.split(":", 3)
        if len(parts) == 4 and parts[0] == "user.py" and parts[2].strip() == "error":
            reported.setdefault(int(parts[1]), line)
    assert set(reported) == expected, (
        f"mypy flagged lines {sorted(reported)}, expected {sorted(expected)}:\n{done.stdout}{done.stderr}"
    )
