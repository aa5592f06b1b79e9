"""What the interop tests share: one adapter (Side) per library (nnofi,
Debian's libnanomsg through ctypes, nng through pynng) with a common API,
and fixtures for transports, fresh addresses and who binds.
Every blocking call is bounded and a peer's first messages are retried
with a deadline, not slept for.
"""
import os
import sys
import tempfile
import time

import pytest

import nnofi

sys.path.insert(0, os.path.dirname(__file__))
import _nn  # noqa: E402

try:
    import pynng
except ImportError:  # pragma: no cover - pynng is in the [test] extra
    pynng = None

TIMEOUT_MS = 5000
SURVEY_MS = 500
# Probes and end markers start with "#": tests subscribe to it. (Not NUL:
# libnanomsg's SUB delivers an empty message to a subscription to b"\x00".)
PROBE = b"#probe"
END = b"#end"


# -- one adapter per library ---------------------------------------------------

_NNOFI = {
    "pair": nnofi.Pair,
    "push": nnofi.Push,
    "pull": nnofi.Pull,
    "req": nnofi.Req,
    "rep": nnofi.Rep,
    "pub": nnofi.Pub,
    "sub": nnofi.Sub,
    "surveyor": nnofi.Surveyor,
    "respondent": nnofi.Respondent,
    "bus": nnofi.Bus,
}
_NN = {
    "pair": _nn.NN_PAIR,
    "push": _nn.NN_PUSH,
    "pull": _nn.NN_PULL,
    "req": _nn.NN_REQ,
    "rep": _nn.NN_REP,
    "pub": _nn.NN_PUB,
    "sub": _nn.NN_SUB,
    "surveyor": _nn.NN_SURVEYOR,
    "respondent": _nn.NN_RESPONDENT,
    "bus": _nn.NN_BUS,
}
_NNG = {
    "pair": "Pair0",
    "push": "Push0",
    "pull": "Pull0",
    "req": "Req0",
    "rep": "Rep0",
    "pub": "Pub0",
    "sub": "Sub0",
    "surveyor": "Surveyor0",
    "respondent": "Respondent0",
    "bus": "Bus0",
}


class Side:
    """A socket of one library (kind: nnofi, nanomsg or nng) with a common
    API: bind(url) -> real url, connect(url), send(b), recv(timeout_ms)
    (raises TimeoutError), close()."""

    def __init__(self, kind, proto, topics=(), survey_ms=SURVEY_MS):
        self.kind = kind
        self.proto = proto
        if kind == "nnofi":
            kw = dict(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)
            if proto == "surveyor":
                kw["survey_time"] = survey_ms
            if proto == "sub":
                kw["topics"] = list(topics)
            self.sock = _NNOFI[proto](**kw)
        elif kind == "nanomsg":
            self.sock = _nn.NNSocket(_NN[proto], timeout_ms=TIMEOUT_MS)
            for t in topics:
                self.sock.subscribe(t)
            if proto == "surveyor":
                self.sock.set_deadline(survey_ms)
        elif kind == "nng":
            kw = dict(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)
            if proto == "sub":
                kw["topics"] = list(topics)
            self.sock = getattr(pynng, _NNG[proto])(**kw)
            # nng queues 16 messages per pipe and drops the rest of a burst
            # (nng to nng too): give it room for the tests' bursts.
            self.sock.send_buffer_size = 1024
            self.sock.recv_buffer_size = 1024
            if proto == "surveyor":
                self.sock.survey_time = survey_ms
        else:
            raise ValueError(kind)

    def __repr__(self):
        return f"<{self.kind} {self.proto}>"

    def bind(self, url):
        if self.kind == "nnofi":
            return self.sock.bind(url).url
        if self.kind == "nanomsg":
            return self.sock.bind(url)
        listener = self.sock.listen(url)
        if url.startswith("tcp://") and url.endswith(":0"):
            # str(local_address) is "HOST:PORT" (its .port is in network order)
            return "tcp://" + str(listener.local_address)
        return url

    def connect(self, url):
        if self.kind == "nng":
            self.sock.dial(url, block=False)
        else:
            self.sock.connect(url)

    def send(self, data):
        self.sock.send(data)

    def recv(self, timeout_ms=TIMEOUT_MS):
        self.sock.recv_timeout = timeout_ms
        try:
            return self.sock.recv()
        except TimeoutError:
            raise
        except Exception as e:
            if pynng is not None and isinstance(e, pynng.Timeout):
                raise TimeoutError(str(e)) from e
            raise

    def recv_until_quiet(self, quiet_ms=200, skip=b"#"):
        """Everything that arrives until quiet_ms pass without a message,
        leaving out messages starting with skip (probes)."""
        out = []
        while True:
            try:
                m = self.recv(quiet_ms)
            except TimeoutError:
                return out
            if not (skip and m.startswith(skip)):
                out.append(m)

    def close(self):
        self.sock.close()


def _require(kind):
    if kind == "nanomsg" and not _nn.AVAILABLE:
        pytest.skip("libnanomsg.so.5 not installed (apt-get install libnanomsg5)")
    if kind == "nng" and pynng is None:
        pytest.skip("pynng not installed")


# -- fixtures -------------------------------------------------------------------


@pytest.fixture(params=["tcp", "ipc"])
def transport(request):
    return request.param


@pytest.fixture
def new_url(transport, tmp_path):
    """Factory of fresh addresses; tcp: port 0, use what bind() returns."""
    count = [0]
    short = []

    def make():
        count[0] += 1
        if transport == "tcp":
            return "tcp://127.0.0.1:0"
        path = os.path.join(str(tmp_path), f"i{count[0]}.ipc")
        if len(path) > 100:  # sun_path is 108 bytes
            if not short:
                short.append(tempfile.mkdtemp(prefix="nnofi-"))
            path = os.path.join(short[0], f"i{count[0]}.ipc")
        return f"ipc://{path}"

    yield make
    for d in short:
        for name in os.listdir(d):
            try:
                os.unlink(os.path.join(d, name))
            except OSError:
                pass
        try:
            os.rmdir(d)
        except OSError:
            pass


@pytest.fixture(params=["nanomsg", "nng"])
def peer(request):
    _require(request.param)
    return request.param


@pytest.fixture
def sides():
    """Sides made with sides(kind, proto, ...) are closed after the test."""
    made = []

    def make(kind, proto, **kw):
        s = Side(kind, proto, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _join(binder, connector, new_url):
    connector.connect(binder.bind(new_url()))


def _roles(peer, nnofi_is, binder):
    """(kinds of the first and second role, who binds: 0 or 1)."""
    kinds = ("nnofi", peer) if nnofi_is == "first" else (peer, "nnofi")
    bind_idx = kinds.index("nnofi") if binder == "nnofi" else kinds.index(peer)
    return kinds, bind_idx


def _probe(sender, receiver, timeout=5.0):
    """Send PROBE until receiver gets one (its connection is up), then
    drain the probes still in flight."""
    deadline = time.monotonic() + timeout
    while True:
        sender.send(PROBE)
        try:
            while True:
                m = receiver.recv(50)
                if m == PROBE:
                    receiver.recv_until_quiet(100)
                    return
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{receiver!r} got nothing from {sender!r} within {timeout}s")


ROLE_PARAMS = [
    pytest.param(n, b, id=f"nnofi-{n}-{b}-binds")
    for n in ("first", "second")
    for b in ("nnofi", "peer")
]


