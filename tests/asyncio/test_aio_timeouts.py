"""Timeouts: recv_timeout and send_timeout apply to arecv and asend as to
the blocking calls (nnofi.Timeout); asyncio.wait_for works too. Waiting
never blocks the event loop."""
import asyncio
import errno
import time

import pytest

import nnofi

from aiohelpers import run, wait_pipes


def test_recv_timeout_raises_timeout_without_blocking_the_loop(url):
    async def main():
        with nnofi.Pull(recv_timeout=300) as pull:
            pull.bind(url)
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            tick = asyncio.ensure_future(ticker())
            t0 = time.monotonic()
            with pytest.raises(nnofi.Timeout) as exc:
                await pull.arecv()
            took = time.monotonic() - t0
            tick.cancel()
            assert 0.29 <= took < 2, f"timed out after {took:.3f}s, not 0.3s"
            assert ticks >= 10, f"the loop was blocked: {ticks} ticks in {took:.3f}s"
            assert isinstance(exc.value, TimeoutError) and exc.value.errno == errno.ETIMEDOUT
            with pytest.raises(nnofi.Timeout) as sync_exc:
                pull.recv()  # the blocking call raises the same
            assert str(sync_exc.value) == str(exc.value)

    run(main)


def test_send_timeout_raises_timeout():
    async def main():
        with nnofi.Push(send_timeout=200) as push:  # no peer takes anything
            t0 = time.monotonic()
            with pytest.raises(nnofi.Timeout):
                await push.asend(b"nobody takes it")
            assert 0.19 <= time.monotonic() - t0 < 2

    run(main)


def test_zero_timeout_tries_once(url):
    async def main():
        with nnofi.Pull(recv_timeout=0) as pull, nnofi.Push(send_timeout=2000) as push:
            push.connect(pull.bind(url).url)
            t0 = time.monotonic()
            with pytest.raises(nnofi.Timeout):
                await pull.arecv()
            assert time.monotonic() - t0 < 0.5
            await push.asend(b"here")
            pull.recv_timeout = 2000  # until it has come in
            assert await pull.arecv() == b"here"

    run(main)


def test_wait_for_cancels_cleanly_and_the_socket_goes_on(url):
    async def main():
        with nnofi.Pair(recv_timeout=-1) as a, nnofi.Pair(send_timeout=2000) as b:
            b.connect(a.bind(url).url)
            await wait_pipes(b, 1)
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError) as exc:
                await asyncio.wait_for(a.arecv(), 0.2)
            assert not isinstance(exc.value, nnofi.Error), "wait_for's own timeout, not the socket's"
            assert 0.19 <= time.monotonic() - t0 < 2
            await b.asend(b"later")
            assert await asyncio.wait_for(a.arecv(), 5) == b"later"

    run(main)


def test_timeout_changes_apply_to_the_next_call(url):
    async def main():
        with nnofi.Pull(recv_timeout=100) as pull:
            pull.bind(url)
            for ms in (100, 400):
                pull.recv_timeout = ms
                t0 = time.monotonic()
                with pytest.raises(nnofi.Timeout):
                    await pull.arecv()
                took = time.monotonic() - t0
                assert ms / 1000 - 0.01 <= took < ms / 1000 + 1.5, f"recv_timeout={ms}: {took:.3f}s"

    run(main)
