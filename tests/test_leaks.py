"""Resource leaks: many socket life cycles must give back every fd, thread
and (within a few MB) every byte of memory."""
import gc
import os
import shutil
import tempfile
import threading
import time
import uuid

import pytest

import nnofi

if not os.path.isdir("/proc/self/fd"):
    pytest.skip("needs /proc (Linux)", allow_module_level=True)

CYCLES = 1000
PAGE = os.sysconf("SC_PAGE_SIZE")
OPTS = dict(recv_timeout=5000, send_timeout=5000)
TRANSPORTS = ("inproc", "ipc", "tcp")

FD_SLACK = 2
RSS_SLACK = 4 << 20  # allocator noise; 1,000 leaked sockets or messages would be far more
# Under ASan freed memory sits in quarantine, so RSS says nothing there.
SANITIZED = bool(os.environ.get("NNOFI_EXPECT_SANITIZED")) or "asan" in os.environ.get("LD_PRELOAD", "")


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def task_count():
    return len(os.listdir("/proc/self/task"))


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def snapshot():
    gc.collect()
    return dict(fds=fd_count(), threads=threading.active_count(), tasks=task_count(), rss=rss_bytes())


class Cycler:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.n = 0

    def url(self, transport):
        self.n += 1
        if transport == "inproc":
            return f"inproc://{uuid.uuid4().hex}"
        if transport == "ipc":
            return f"ipc://{self.tmpdir}/l{self.n % 8}.ipc"  # reuse a few paths
        return "tcp://127.0.0.1:0"

    def cycle(self, i):
        transport = TRANSPORTS[i % len(TRANSPORTS)]
        kind = i % 4
        url = self.url(transport)
        if kind == 0:
            with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
                b.connect(a.bind(url).url)
                b.send(b"ping %d" % i)
                assert a.recv() == b"ping %d" % i
                a.send(b"pong")
                assert b.recv() == b"pong"
        elif kind == 1:
            with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
                req.connect(rep.bind(url).url)
                req.send(b"q")
                rep.send(rep.recv() + b"a")
                assert req.recv() == b"qa"
        elif kind == 2:
            with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
                push.connect(pull.bind(url).url)
                push.send(b"x" * 100_000)  # the large-message (zero-copy) path
                msg = pull.recv_msg()
                assert len(msg) == 100_000
                del msg
        else:
            # connect first where the address is known, fileno, close with
            # nothing ever received
            with nnofi.Pair(**OPTS) as a:
                ep = a.bind(url)
                a.fileno()
                with nnofi.Pair(**OPTS) as b:
                    b.connect(ep.url)
                    b.send(b"unread")  # left queued at close


def wait_settled(base, timeout=5.0):
    """Background teardown (pipes closing, linger) may finish a little after
    close() returns: poll until fds and threads are back, or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        now = snapshot()
        ok = (
            now["fds"] <= base["fds"] + FD_SLACK
            and now["threads"] <= base["threads"]
            and now["tasks"] <= base["tasks"]
        )
        if ok or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def test_socket_cycles_release_fds_threads_memory():
    tmpdir = tempfile.mkdtemp(prefix="nnofi-leak-")
    try:
        c = Cycler(tmpdir)
        for i in range(200):  # warm-up: lazy threads, caches, allocator arenas
            c.cycle(i)
        time.sleep(0.3)  # let the warm-up's background teardown finish
        base = snapshot()

        t0 = time.monotonic()
        for i in range(CYCLES):
            c.cycle(i)
        took = time.monotonic() - t0

        after = wait_settled(base)
        detail = f"baseline {base}, after {CYCLES} cycles {after} ({took:.1f}s)"
        assert after["fds"] <= base["fds"] + FD_SLACK, "fd leak: " + detail
        assert after["threads"] <= base["threads"], "Python thread leak: " + detail
        assert after["tasks"] <= base["tasks"], "native thread leak: " + detail
        if not SANITIZED:
            assert after["rss"] <= base["rss"] + RSS_SLACK, "memory leak: " + detail
        assert took < 30, "cycles too slow: " + detail
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_unclosed_sockets_are_released_by_gc():
    """Sockets dropped without close() (no `with`) are reclaimed too."""
    for _ in range(50):
        a = nnofi.Pair(**OPTS)
        b = nnofi.Pair(**OPTS)
        b.connect(a.bind("inproc://" + uuid.uuid4().hex).url)
        b.send(b"x")
        assert a.recv() == b"x"
        del a, b
    time.sleep(0.3)
    base = snapshot()
    for i in range(300):
        a = nnofi.Pair(**OPTS)
        b = nnofi.Pair(**OPTS)
        url = "inproc://" + uuid.uuid4().hex if i % 2 else "tcp://127.0.0.1:0"
        b.connect(a.bind(url).url)
        b.send(b"x")
        assert a.recv() == b"x"
        del a, b
    after = wait_settled(base)
    detail = f"baseline {base}, after {after}"
    assert after["fds"] <= base["fds"] + FD_SLACK, "fd leak: " + detail
    assert after["tasks"] <= base["tasks"], "native thread leak: " + detail
    if not SANITIZED:
        assert after["rss"] <= base["rss"] + RSS_SLACK, "memory leak: " + detail
