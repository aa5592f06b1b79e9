"""fds: the send readiness fd goes with its socket, and coroutines that
waited (woken, timed out, cancelled, closed under) leave no reader in the
loop. Counted as tests/test_leaks.py counts them (/proc/self/fd)."""
import asyncio
import gc
import os
import shutil
import tempfile
import time
import uuid

import pytest

import nnofi

if not os.path.isdir("/proc/self/fd"):
    pytest.skip("needs /proc (Linux)", allow_module_level=True)

OPTS = dict(recv_timeout=5000, send_timeout=5000)
TRANSPORTS = ("inproc", "ipc", "tcp")
CYCLES = 150
FD_SLACK = 2


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def settled_fds(base, timeout=5.0):
    """Pipes close in the background a little after close(): poll."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        n = fd_count()
        if n <= base + FD_SLACK or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


async def one_cycle(url):
    loop = asyncio.get_running_loop()
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        waiting = asyncio.ensure_future(a.arecv())  # registers a reader on a's fd
        await b.asend(b"ping")
        assert await waiting == b"ping"
        await a.asend(b"pong")
        assert await b.arecv() == b"pong"
        # a wait that times out, one that is cancelled: both leave no reader
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(a.arecv(), 0.01)
        cancelled = asyncio.ensure_future(b.arecv())
        await asyncio.sleep(0.001)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        for fd in (a.fileno(), b.fileno(), a.send_fileno(), b.send_fileno()):
            assert not loop.remove_reader(fd), "a reader was left in the loop"
    with nnofi.Push(**OPTS) as lonely:
        sending = asyncio.ensure_future(lonely.asend(b"x"))  # waits on the send fd: no peer
        await asyncio.sleep(0.001)
        lonely.close()
        with pytest.raises(nnofi.Closed):
            await sending
        assert not loop.remove_reader(lonely.send_fileno())


def test_asyncio_cycles_release_fds():
    tmpdir = tempfile.mkdtemp(prefix="nnofi-aio-leak-")

    def url(i):
        kind = TRANSPORTS[i % len(TRANSPORTS)]
        if kind == "inproc":
            return f"inproc://{uuid.uuid4().hex}"
        if kind == "ipc":
            return f"ipc://{tmpdir}/l{i % 8}.ipc"
        return "tcp://127.0.0.1:0"

    try:
        for i in range(30):  # warm-up: lazy threads, caches
            asyncio.run(one_cycle(url(i)))
        time.sleep(0.3)
        base = settled_fds(fd_count(), 0)
        for i in range(CYCLES):
            asyncio.run(one_cycle(url(i)))
        after = settled_fds(base)
        # each cycle makes 3 send fds (besides each socket's epoll and eventfd)
        assert after <= base + FD_SLACK, f"fd leak: {base} fds before {CYCLES} cycles, {after} after"
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_send_fd_is_closed_with_its_socket():
    before = fd_count()
    socks = [nnofi.Push(**OPTS) for _ in range(20)]
    with_fds = fd_count()
    fds = [s.send_fileno() for s in socks]
    assert len(set(fds)) == len(socks)
    assert fd_count() == with_fds + len(socks), "one eventfd per socket, made on first use"
    for s in socks:
        s.close()
    del socks, s
    assert settled_fds(before) <= before + FD_SLACK
