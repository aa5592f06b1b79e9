"""Helpers of the protocol tests (imported by conftest.py and the tests)."""
import itertools
import threading
import os
import tempfile
import time
import uuid

import pytest

import nnofi

TRANSPORTS = ["inproc", "ipc", "tcp"]
STREAM_TRANSPORTS = ["ipc", "tcp"]

# Long enough that a healthy core never hits them, short enough that a
# broken one fails a test well inside the pytest-timeout budget.
TIMEOUT_MS = 5000
OPTS = dict(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)

# sockaddr_un.sun_path holds 108 bytes with its terminating NUL.
_IPC_PATH_MAX = 100


class Addresses:
    """Fresh addresses of one transport, for one test."""

    def __init__(self, transport: str, tmp_path) -> None:
        self.transport = transport
        self._tmp = str(tmp_path)
        self._short_tmp = None
        self._n = itertools.count()

    def new(self) -> str:
        """A new address to bind. For tcp it has port 0: bind first and
        connect to the Endpoint's .url."""
        n = next(self._n)
        if self.transport == "inproc":
            return f"inproc://{uuid.uuid4().hex}"
        if self.transport == "ipc":
            path = os.path.join(self._tmp, f"s{n}.ipc")
            if len(path) > _IPC_PATH_MAX:  # very long test ids: use a short dir
                if self._short_tmp is None:
                    self._short_tmp = tempfile.mkdtemp(prefix="nnofi-")
                path = os.path.join(self._short_tmp, f"s{n}.ipc")
            return f"ipc://{path}"
        if self.transport == "ofi+tcp":  # libfabric's tcp provider (tests/asyncio)
            return "ofi://127.0.0.1:0@tcp"
        return "tcp://127.0.0.1:0"

    def cleanup(self) -> None:
        if self._short_tmp is not None:
            for name in os.listdir(self._short_tmp):
                try:
                    os.unlink(os.path.join(self._short_tmp, name))
                except OSError:
                    pass
            try:
                os.rmdir(self._short_tmp)
            except OSError:
                pass


def wait_for(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll predicate() until it is true; fail the test after timeout s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def wait_pipes(sock, n: int, timeout: float = 5.0) -> None:
    """Wait until sock has opened at least n pipes (connections)."""
    wait_for(
        lambda: sock.stats["pipes_opened"] >= n,
        timeout,
        f"{n} pipe(s) on {sock!r} (stats {sock.stats})",
    )


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class Worker(threading.Thread):
    """A daemon thread that keeps its target's result or the exception it raised."""

    def __init__(self, target, *args, name=None):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._target_args = args
        self.error = None
        self.result = None

    def run(self):
        try:
            self.result = self._target_fn(*self._target_args)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


def finish(workers, timeout: float = 15.0) -> None:
    """Join workers; fail if one is still running, re-raise the first error."""
    deadline = time.monotonic() + timeout
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    alive = [w.name for w in workers if w.is_alive()]
    assert not alive, f"threads still running after {timeout}s: {alive}"
    for w in workers:
        if w.error is not None:
            raise w.error


# -- PUB/SUB: subscribers get only what is published after they joined ---------

# Probe topic used to learn that a subscriber is connected (see sync_subs).
SYNC = b"\x00sync"


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
