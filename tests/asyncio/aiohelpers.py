"""Helpers of the asyncio tests: addresses per transport, and a bounded
asyncio.run."""
import asyncio
import os
import sys
from typing import Any, Awaitable, Callable, Coroutine, List, TypeVar

import pytest

import nnofi
import nnofi.fabric

# fresh addresses per transport, shared with the protocol tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "protocols"))
from protohelpers import Addresses  # noqa: E402,F401

T = TypeVar("T")

# ofi:// over libfabric's tcp provider (FI_EP_MSG); the others as in tests/protocols
TRANSPORTS = ["inproc", "ipc", "tcp", "ofi+tcp"]

TIMEOUT_MS = 5000
OPTS = dict(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)


def ofi_tcp_missing() -> str:
    """Why ofi+tcp cannot run here ("" if it can)."""
    found = {(p.provider, p.ep_type) for p in nnofi.fabric.providers()}
    return "" if ("tcp", "MSG") in found else "libfabric has no tcp provider (FI_EP_MSG) here"


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
