"""PUB/SUB, SURVEYOR/RESPONDENT and BUS between nnofi and the real
libraries: Debian's libnanomsg (through ctypes, see _nn.py) and nng
(through pynng), over tcp and ipc, with nnofi in either role and either
side binding.

Each peer library is wrapped in a small adapter (Side) so one test body
serves every combination. Every blocking call is bounded (nnofi
recv/send_timeout, nanomsg NN_RCVTIMEO/NN_SNDTIMEO, pynng recv/send_timeout)
and a peer's first messages are retried with a deadline, not slept for.
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
    "pub": nnofi.Pub,
    "sub": nnofi.Sub,
    "surveyor": nnofi.Surveyor,
    "respondent": nnofi.Respondent,
    "bus": nnofi.Bus,
}
_NN = {
    "pub": _nn.NN_PUB,
    "sub": _nn.NN_SUB,
    "surveyor": _nn.NN_SURVEYOR,
    "respondent": _nn.NN_RESPONDENT,
    "bus": _nn.NN_BUS,
}
_NNG = {
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


# -- PUB/SUB --------------------------------------------------------------------


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_pubsub(peer, transport, new_url, sides, nnofi_is, binder):
    """nnofi_is=first: nnofi publishes to the peer's SUB; second: the peer
    publishes to nnofi's SUB."""
    (pk, sk), bind_idx = _roles(peer, nnofi_is, binder)
    pub = sides(pk, "pub")
    sub = sides(sk, "sub", topics=[b"a", b"#"])
    socks = (pub, sub)
    _join(socks[bind_idx], socks[1 - bind_idx], new_url)
    _probe(pub, sub)

    big = b"a-big:" + bytes(range(256)) * 400
    sent = [b"a1", b"b1", b"a2", b"", b"ab", b"ba", big, b"a3"]
    for m in sent:
        pub.send(m)
    pub.send(END)
    got = []
    while (m := sub.recv()) != END:
        if m != PROBE:
            got.append(m)
    assert got == [m for m in sent if m.startswith(b"a")]


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_pub_to_two_subs(peer, transport, new_url, sides, nnofi_is, binder):
    """One PUB, two SUBs (one of each library) with different topics."""
    (pk, other), bind_idx = _roles(peer, nnofi_is, binder)
    pub = sides(pk, "pub")
    subs = [sides("nnofi", "sub", topics=[b"x", b"#"]), sides(peer, "sub", topics=[b"y", b"#"])]
    if bind_idx == 0:  # the PUB binds
        url = pub.bind(new_url())
        for s in subs:
            s.connect(url)
    else:  # each SUB binds, the PUB connects to both
        for s in subs:
            pub.connect(s.bind(new_url()))
    for s in subs:
        _probe(pub, s)
    for i in range(20):
        pub.send(b"x%d" % i)
        pub.send(b"y%d" % i)
    pub.send(END)
    for s, t in zip(subs, (b"x", b"y")):
        got = []
        while (m := s.recv()) != END:
            if m != PROBE:
                got.append(m)
        assert got == [t + b"%d" % i for i in range(20)], s


# -- SURVEYOR/RESPONDENT -----------------------------------------------------


def _survey_ready(surveyor, respondent, timeout=5.0):
    """Survey until the respondent answers (its connection is up)."""
    deadline = time.monotonic() + timeout
    k = 0
    while time.monotonic() < deadline:
        k += 1
        q = b"#ready %d" % k
        surveyor.send(q)
        try:
            while True:
                got = respondent.recv(200)
                if got == q:
                    break
            respondent.send(b"re " + q)
            while True:
                if surveyor.recv(SURVEY_MS * 2) == b"re " + q:
                    return
        except TimeoutError:
            continue
    pytest.fail(f"{surveyor!r} got no answer from {respondent!r} within {timeout}s")


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_survey(peer, transport, new_url, sides, nnofi_is, binder):
    """nnofi_is=first: nnofi surveys the peer's RESPONDENT; second: the
    peer surveys nnofi's RESPONDENT."""
    (sk, rk), bind_idx = _roles(peer, nnofi_is, binder)
    surveyor = sides(sk, "surveyor")
    respondent = sides(rk, "respondent")
    socks = (surveyor, respondent)
    _join(socks[bind_idx], socks[1 - bind_idx], new_url)
    _survey_ready(surveyor, respondent)

    for rnd in range(3):
        q = b"question %d" % rnd + b"?" * (rnd * 1000)
        surveyor.send(q)
        assert respondent.recv() == q
        respondent.send(b"answer to " + q)
        assert surveyor.recv() == b"answer to " + q
    # the last survey ends at its deadline
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        surveyor.recv()
    assert time.monotonic() - t0 < SURVEY_MS / 1000 + 1.5


@pytest.mark.parametrize("binder", ["nnofi", "peer"])
def test_survey_stale_answer_from_peer_dropped(peer, transport, new_url, sides, binder):
    """nnofi's SURVEYOR drops an answer to a survey it has replaced, by the
    survey id in the peer's backtrace."""
    surveyor = sides("nnofi", "surveyor", survey_ms=1000)
    respondent = sides(peer, "respondent")
    if binder == "nnofi":
        respondent.connect(surveyor.bind(new_url()))
    else:
        surveyor.connect(respondent.bind(new_url()))
    _survey_ready(surveyor, respondent)
    surveyor.send(b"old")
    assert respondent.recv() == b"old"
    surveyor.send(b"new")
    respondent.send(b"answer to old")
    assert respondent.recv() == b"new"
    respondent.send(b"answer to new")
    assert surveyor.recv() == b"answer to new"
    with pytest.raises(TimeoutError):
        surveyor.recv()


def test_survey_mixed_respondents(peer, transport, new_url, sides):
    """An nnofi SURVEYOR with an nnofi, a nanomsg or nng, and another nnofi
    RESPONDENT: every answer comes back within the one survey."""
    surveyor = sides("nnofi", "surveyor", survey_ms=1000)
    url = surveyor.bind(new_url())
    resps = [sides("nnofi", "respondent"), sides(peer, "respondent"), sides("nnofi", "respondent")]
    for r in resps:
        r.connect(url)
    for r in resps:
        _survey_ready(surveyor, r)
    for r in resps:  # the surveys that readied the others
        r.recv_until_quiet(100)
    surveyor.send(b"roll call")
    for i, r in enumerate(resps):
        assert r.recv() == b"roll call"
        r.send(b"here %d" % i)
    got = []
    with pytest.raises(TimeoutError):
        while True:
            got.append(surveyor.recv())
    assert sorted(got) == [b"here 0", b"here 1", b"here 2"]


# -- BUS ------------------------------------------------------------------------


@pytest.mark.parametrize("binder", ["nnofi", "peer"])
def test_bus(peer, transport, new_url, sides, binder):
    a = sides("nnofi", "bus")
    b = sides(peer, "bus")
    if binder == "nnofi":
        b.connect(a.bind(new_url()))
    else:
        a.connect(b.bind(new_url()))
    _probe(a, b)
    _probe(b, a)
    for i in range(20):
        a.send(b"a%d" % i)
        b.send(b"b%d" % i)
    assert [b.recv() for _ in range(20)] == [b"a%d" % i for i in range(20)]
    assert [a.recv() for _ in range(20)] == [b"b%d" % i for i in range(20)]
    big = bytes(range(256)) * 1000
    a.send(big)
    assert b.recv() == big
    b.send(big[::-1])
    assert a.recv() == big[::-1]
    # nothing echoed back to a sender
    assert a.recv_until_quiet(200) == []
    assert b.recv_until_quiet(200) == []


def test_bus_mesh_nnofi_nanomsg_nng(transport, new_url, sides):
    """A full mesh of three bus nodes, one per library: each gets each
    other's message once."""
    _require("nanomsg")
    _require("nng")
    nodes = {k: sides(k, "bus") for k in ("nnofi", "nanomsg", "nng")}
    urls = {k: n.bind(new_url()) for k, n in nodes.items()}
    nodes["nanomsg"].connect(urls["nnofi"])
    nodes["nng"].connect(urls["nnofi"])
    nodes["nng"].connect(urls["nanomsg"])
    for x in nodes.values():
        for y in nodes.values():
            if x is not y:
                _probe(x, y)
    for n in nodes.values():
        n.recv_until_quiet(100)
    for k, n in nodes.items():
        n.send(b"from " + k.encode())
    for k, n in nodes.items():
        got = n.recv_until_quiet(300)
        assert sorted(got) == sorted(b"from " + o.encode() for o in nodes if o != k), k


@pytest.mark.parametrize("binder", ["nnofi", "peer"])
def test_bus_nnofi_does_not_forward_between_peers(peer, transport, new_url, sides, binder):
    """peer1 - nnofi - peer2 in a line: nnofi hears both, they never hear
    each other through it."""
    mid = sides("nnofi", "bus")
    ends = [sides(peer, "bus"), sides(peer, "bus")]
    if binder == "nnofi":
        url = mid.bind(new_url())
        for e in ends:
            e.connect(url)
    else:
        for e in ends:
            mid.connect(e.bind(new_url()))
    for e in ends:
        _probe(mid, e)
        _probe(e, mid)
    ends[0].send(b"from end 0")
    ends[1].send(b"from end 1")
    assert sorted(mid.recv_until_quiet(300)) == [b"from end 0", b"from end 1"]
    assert ends[0].recv_until_quiet(200) == []
    assert ends[1].recv_until_quiet(200) == []
