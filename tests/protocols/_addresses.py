"""Addresses and small helpers of the PUB/SUB, SURVEY, BUS and device tests.

Import the fixtures into a test module (``from _addresses import transport,
url, new_url``): pytest picks fixtures up from the module's namespace. Every
address is fresh (a uuid for inproc, a file in the test's tmp_path for ipc,
port 0 for tcp), so the tests are safe under pytest-xdist.
"""
import os
import tempfile
import threading
import time
import uuid

import pytest

import nnofi

TRANSPORTS = ["inproc", "ipc", "tcp"]

# Every blocking call is bounded: a broken core fails a test with
# nnofi.Timeout instead of hanging it.
TIMEOUT_MS = 5000
OPTS = dict(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)

# sockaddr_un.sun_path holds 108 bytes with its terminating NUL.
_IPC_PATH_MAX = 100

# Probe topic used to learn that a subscriber is connected (see sync_subs).
SYNC = b"\x00sync"


class _Urls:
    def __init__(self, transport, tmp_path):
        self.transport = transport
        self.tmp = str(tmp_path)
        self.n = 0
        self.short = None

    def __call__(self):
        self.n += 1
        if self.transport == "inproc":
            return f"inproc://{uuid.uuid4()}"
        if self.transport == "ipc":
            path = os.path.join(self.tmp, f"x{self.n}.ipc")
            if len(path) > _IPC_PATH_MAX:
                if self.short is None:
                    self.short = tempfile.mkdtemp(prefix="nnofi-")
                path = os.path.join(self.short, f"x{self.n}.ipc")
            return f"ipc://{path}"
        return "tcp://127.0.0.1:0"

    def cleanup(self):
        if self.short is not None:
            for name in os.listdir(self.short):
                try:
                    os.unlink(os.path.join(self.short, name))
                except OSError:
                    pass
            try:
                os.rmdir(self.short)
            except OSError:
                pass


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture
def new_url(transport, tmp_path):
    """Factory of fresh addresses: new_url(). tcp gives port 0: bind first
    and connect to the Endpoint's .url."""
    urls = _Urls(transport, tmp_path)
    yield urls
    urls.cleanup()


@pytest.fixture
def url(new_url):
    return new_url()


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def wait_pipes(sock, n, timeout=5.0):
    wait_for(lambda: sock.stats["pipes_opened"] >= n, timeout, f"{n} pipe(s) on {sock!r}: {sock.stats}")


def sync_subs(pub, subs, timeout=5.0):
    """Publish SYNC probes until every sub has received one (each sub must
    be subscribed to SYNC or to a prefix of it), then drain the probes.
    A subscriber only gets messages published after its connection is up;
    this waits for that without a fixed sleep."""
    pending = list(subs)
    saved = [s.recv_timeout for s in subs]
    try:
        for s in subs:
            s.recv_timeout = 20
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                pytest.fail(f"subscribers not connected after {timeout}s: {pending}")
            pub.send(SYNC)
            for s in list(pending):
                try:
                    while True:
                        if s.recv() == SYNC:
                            pending.remove(s)
                            break
                except nnofi.Timeout:
                    pass
        drain(subs, SYNC)
    finally:
        for s, t in zip(subs, saved):
            s.recv_timeout = t


def drain(socks, only=None, quiet_ms=50):
    """Receive and discard (only messages equal to `only` if given, others
    fail the test) until each sock has been quiet for quiet_ms."""
    for s in socks:
        saved = s.recv_timeout
        s.recv_timeout = quiet_ms
        try:
            while True:
                m = s.recv()
                if only is not None:
                    assert m == only, f"unexpected message {m!r} while draining {only!r}"
        except nnofi.Timeout:
            pass
        finally:
            s.recv_timeout = saved


def recv_all(sock, quiet_ms=200, limit=100000):
    """Every message that arrives until sock has been quiet for quiet_ms."""
    saved = sock.recv_timeout
    sock.recv_timeout = quiet_ms
    out = []
    try:
        while len(out) < limit:
            out.append(sock.recv())
    except nnofi.Timeout:
        pass
    finally:
        sock.recv_timeout = saved
    return out


class Worker(threading.Thread):
    """A daemon thread that keeps its target's result or exception."""

    def __init__(self, target, *args, name=None):
        super().__init__(name=name, daemon=True)
        self._fn = target
        self._args = args
        self.error = None
        self.result = None

    def run(self):
        try:
            self.result = self._fn(*self._args)
        except BaseException as e:  # noqa: BLE001 - re-raised by finish()
            self.error = e


def finish(workers, timeout=15.0):
    """Join workers; fail if one still runs, re-raise the first error."""
    deadline = time.monotonic() + timeout
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    alive = [w.name for w in workers if w.is_alive()]
    assert not alive, f"threads still running after {timeout}s: {alive}"
    for w in workers:
        if w.error is not None:
            raise w.error
