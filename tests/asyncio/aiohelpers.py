"""Helpers of the asyncio tests: addresses per transport, and a bounded
asyncio.run."""
import asyncio
import itertools
import os
import tempfile
import uuid
from typing import Any, Awaitable, Callable, Coroutine, List, TypeVar

import pytest

import nnofi
import nnofi.fabric

T = TypeVar("T")

# ofi:// over libfabric's tcp provider (FI_EP_MSG); the others as in tests/protocols
TRANSPORTS = ["inproc", "ipc", "tcp", "ofi+tcp"]

TIMEOUT_MS = 5000
OPTS = dict(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)

# sockaddr_un.sun_path holds 108 bytes with its terminating NUL.
_IPC_PATH_MAX = 100


def ofi_tcp_missing() -> str:
    """Why ofi+tcp cannot run here ("" if it can)."""
    found = {(p.provider, p.ep_type) for p in nnofi.fabric.providers()}
    return "" if ("tcp", "MSG") in found else "libfabric has no tcp provider (FI_EP_MSG) here"


class Addresses:
    """Fresh addresses of one transport, for one test (tcp and ofi use
    port 0: bind first, connect to the endpoint's .url)."""

    def __init__(self, transport: str, tmp_path: Any) -> None:
        self.transport = transport
        self._tmp = str(tmp_path)
        if len(os.path.join(self._tmp, "s000.ipc")) > _IPC_PATH_MAX:
            self._tmp = tempfile.mkdtemp(prefix="nnofi-aio-")
            self._made = True
        else:
            self._made = False
        self._n = itertools.count()

    def new(self) -> str:
        if self.transport == "inproc":
            return f"inproc://{uuid.uuid4().hex}"
        if self.transport == "ipc":
            return f"ipc://{os.path.join(self._tmp, f's{next(self._n)}.ipc')}"
        if self.transport == "tcp":
            return "tcp://127.0.0.1:0"
        return "ofi://127.0.0.1:0@tcp"

    def cleanup(self) -> None:
        if self._made:
            for name in os.listdir(self._tmp):
                try:
                    os.unlink(os.path.join(self._tmp, name))
                except OSError:
                    pass
            try:
                os.rmdir(self._tmp)
            except OSError:
                pass


def run(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 60.0) -> T:
    """asyncio.run(main()), failing the test if it takes over timeout s."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(main(), timeout)
        except asyncio.TimeoutError as exc:
            if isinstance(exc, nnofi.Error):  # nnofi.Timeout is a TimeoutError too
                raise
            pytest.fail(f"the test's coroutines did not finish within {timeout}s")

    return asyncio.run(bounded())


async def wait_pipes(sock: nnofi.Socket, n: int, timeout: float = 5.0) -> None:
    """Until sock has opened n pipes, without blocking the loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sock.stats["pipes_opened"] < n:
        if loop.time() > deadline:
            pytest.fail(f"{n} pipe(s) not up on {sock!r} after {timeout}s: {sock.stats}")
        await asyncio.sleep(0.005)


async def gather_all(aws: List[Awaitable[T]]) -> List[T]:
    """gather, cancelling the others when one fails (so the loop ends)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
