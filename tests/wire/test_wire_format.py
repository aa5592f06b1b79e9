"""The exact bytes nnofi puts on the wire and accepts, checked with plain
Python sockets standing in for the peer: the 8-byte SP header with each
socket type's protocol id, tcp framing (64-bit big-endian length), ipc
framing (type byte 0x01, then the length), the REQ request id and the REP
echo of the backtrace, and rejection of a peer with the wrong protocol."""
import os
import shutil
import socket
import struct
import tempfile
import threading
import time

import pytest

import nnofi
import rawsock

PROTO = {"pair": 16, "req": 48, "rep": 49, "push": 80, "pull": 81}
PEER = {"pair": "pair", "req": "rep", "rep": "req", "push": "pull", "pull": "push"}
CLASS = {"pair": nnofi.Pair, "req": nnofi.Req, "rep": nnofi.Rep, "push": nnofi.Push, "pull": nnofi.Pull}
TIMEOUT_MS = 5000


def sp_header(proto_id):
    return b"\x00SP\x00" + struct.pack(">H", proto_id) + b"\x00\x00"


def frame(payload, ipc):
    return (b"\x01" if ipc else b"") + struct.pack(">Q", len(payload)) + payload


def recv_exact(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            raise AssertionError(f"peer closed after {len(got)} of {n} bytes: {got[:64]!r}")
        got += chunk
    return got


def recv_frame(s, ipc):
    """One frame as nnofi framed it; checks the ipc type byte on the way."""
    if ipc:
        assert recv_exact(s, 1) == b"\x01", "ipc frames start with type byte 0x01"
    (length,) = struct.unpack(">Q", recv_exact(s, 8))
    return recv_exact(s, length)


def poke(sock):
    """One non-blocking look by the application: a receiving socket may
    read (and judge) its connections only when the application receives,
    a sending one when it sends. Nothing may come out of it here."""
    if isinstance(sock, nnofi.Req):
        return  # its send would queue a request, its recv is a state error
    if isinstance(sock, (nnofi.Pull, nnofi.Pair, nnofi.Rep)):
        with pytest.raises(nnofi.Again):
            sock.recv(block=False)
    else:
        with pytest.raises(nnofi.Again):
            sock.send(b"must not reach the bad peer", block=False)


def closed_by_peer(s, sock=None, timeout=5.0):
    """(closed, bytes seen before the close); pokes `sock` meanwhile."""
    seen = b""
    end = time.monotonic() + timeout
    s.settimeout(0.05)
    while time.monotonic() < end:
        if sock is not None:
            poke(sock)
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True, seen
        if not data:
            return True, seen
        seen += data
    return False, seen


@pytest.fixture
def shortdir():
    """Unix socket paths must stay under 108 bytes, so not tmp_path."""
    d = tempfile.mkdtemp(prefix="nnw", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["tcp", "ipc"])
def transport(request):
    return request.param


@pytest.fixture
def stack():
    """Everything opened in a test, closed at its end."""
    things = []
    yield things
    for t in reversed(things):
        try:
            t.close()
        except Exception:
            pass


def nn_sock(kind, stack, **kw):
    s = CLASS[kind](recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS, linger=0, **kw)
    stack.append(s)
    return s


def raw_listener(transport, shortdir, stack):
    """A raw listening socket; returns (listener, url for nnofi.connect)."""
    if transport == "ipc":
        path = os.path.join(shortdir, "w.ipc")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        url = "ipc://" + path
    else:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        url = "tcp://127.0.0.1:%d" % ls.getsockname()[1]
    ls.listen(4)
    ls.settimeout(5)
    stack.append(ls)
    return ls, url


def raw_connect(url, stack):
    s = rawsock.connect(url)
    stack.append(s)
    return s


def nnofi_bind_url(transport, shortdir):
    return "ipc://" + os.path.join(shortdir, "n.ipc") if transport == "ipc" else "tcp://127.0.0.1:0"


def raw_link(sock, transport, how, shortdir, stack):
    """A raw socket connected to the nnofi socket (nnofi binding or
    connecting, per `how`), before any bytes are exchanged."""
    if how == "nnofi-binds":
        ep = sock.bind(nnofi_bind_url(transport, shortdir))
        raw = raw_connect(ep.url, stack)
    else:
        ls, url = raw_listener(transport, shortdir, stack)
        sock.connect(url)
        raw, _ = ls.accept()
        raw.settimeout(5)
        stack.append(raw)
    return raw


def raw_peer(kind, transport, how, shortdir, stack, **kw):
    """An nnofi socket of `kind` and a raw connection to it that has done
    the SP handshake as the matching peer. Returns (nnofi socket, raw
    socket, the header nnofi sent)."""
    sock = nn_sock(kind, stack, **kw)
    raw = raw_link(sock, transport, how, shortdir, stack)
    raw.sendall(sp_header(PROTO[PEER[kind]]))
    header = recv_exact(raw, 8)
    return sock, raw, header


HOW = ["nnofi-binds", "nnofi-connects"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("kind", sorted(PROTO))
def test_sp_header_has_the_protocol_id(kind, transport, how, shortdir, stack):
    _, _, header = raw_peer(kind, transport, how, shortdir, stack)
    assert header == b"\x00SP\x00" + struct.pack(">H", PROTO[kind]) + b"\x00\x00"
    assert header[4:6] == PROTO[kind].to_bytes(2, "big")


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("kind", sorted(PROTO))
def test_header_sent_before_the_peer_speaks(kind, transport, how, shortdir, stack):
    """nanomsg and nng both send their header at once; a peer that waits
    for ours before sending its own must not deadlock."""
    raw = raw_link(nn_sock(kind, stack), transport, how, shortdir, stack)
    assert recv_exact(raw, 8) == sp_header(PROTO[kind])


SIZES = [0, 1, 5, 255, 256, 65536, 300_000]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("kind", ["pair", "push"])
def test_sent_frames_are_exactly_length_prefixed(kind, transport, how, shortdir, stack):
    ipc = transport == "ipc"
    sock, raw, _ = raw_peer(kind, transport, how, shortdir, stack)
    for n in SIZES:
        body = bytes(i % 251 for i in range(n))
        sock.send(body)
        want = frame(body, ipc)
        got = recv_exact(raw, len(want))
        assert got[: 9 if ipc else 8] == want[: 9 if ipc else 8], f"frame prefix for {n} bytes"
        assert got == want


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("kind", ["pair", "pull"])
def test_accepts_frames_from_a_raw_peer(kind, transport, how, shortdir, stack):
    ipc = transport == "ipc"
    sock, raw, _ = raw_peer(kind, transport, how, shortdir, stack)
    bodies = [bytes(i % 251 for i in range(n)) for n in SIZES]
    # all in one write: nnofi must split them on the length fields. A
    # thread writes, since more than the kernel buffers hold is on the way.
    writer = threading.Thread(target=raw.sendall, args=(b"".join(frame(b, ipc) for b in bodies),))
    writer.start()
    try:
        for b in bodies:
            assert sock.recv() == b
    finally:
        writer.join(10)


@pytest.mark.parametrize("kind", ["pair", "pull"])
def test_accepts_a_frame_dribbled_byte_by_byte(kind, transport, shortdir, stack):
    ipc = transport == "ipc"
    sock, raw, _ = raw_peer(kind, transport, "nnofi-binds", shortdir, stack)
    if not ipc:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = frame(b"slowly but surely", ipc) + frame(b"", ipc) + frame(b"next", ipc)
    for i in range(len(data)):
        raw.sendall(data[i : i + 1])
    assert sock.recv() == b"slowly but surely"
    assert sock.recv() == b""
    assert sock.recv() == b"next"


@pytest.mark.parametrize("how", HOW)
def test_pair_to_raw_pair_both_ways(transport, how, shortdir, stack):
    ipc = transport == "ipc"
    sock, raw, _ = raw_peer("pair", transport, how, shortdir, stack)
    for i in range(5):
        sock.send(b"out %d" % i)
        assert recv_frame(raw, ipc) == b"out %d" % i
        raw.sendall(frame(b"in %d" % i, ipc))
        assert sock.recv() == b"in %d" % i


@pytest.mark.parametrize("how", HOW)
def test_req_request_carries_request_id(transport, how, shortdir, stack):
    """Each request is a 4-byte big-endian id, top bit set, then the body;
    the reply echoing that id is delivered, a reply with another id is not."""
    ipc = transport == "ipc"
    req, raw, _ = raw_peer("req", transport, how, shortdir, stack)
    ids = []
    for i in range(5):
        body = b"question %d" % i
        req.send(body)
        payload = recv_frame(raw, ipc)
        assert len(payload) == 4 + len(body)
        (rid,) = struct.unpack(">I", payload[:4])
        assert rid & 0x80000000, f"request id {rid:#x} lacks the top bit"
        assert payload[4:] == body
        ids.append(rid)
        raw.sendall(frame(payload[:4] + b"answer %d" % i, ipc))
        assert req.recv() == b"answer %d" % i
    assert len(set(ids)) == len(ids), f"request ids repeat: {[hex(i) for i in ids]}"

    # a stale or foreign id is dropped, the right one still gets through
    req.send(b"last")
    payload = recv_frame(raw, ipc)
    rid = payload[:4]
    wrong = struct.pack(">I", (struct.unpack(">I", rid)[0] ^ 0x1234) | 0x80000000)
    raw.sendall(frame(wrong + b"not yours", ipc))
    raw.sendall(frame(struct.pack(">I", ids[0]) + b"old answer", ipc))
    raw.sendall(frame(rid + b"yours", ipc))
    assert req.recv() == b"yours"


@pytest.mark.parametrize("how", HOW)
def test_rep_echoes_request_id(transport, how, shortdir, stack):
    ipc = transport == "ipc"
    rep, raw, _ = raw_peer("rep", transport, how, shortdir, stack)
    for i, rid in enumerate([0x80000001, 0x80000123, 0xFFFFFFFF, 0x8ABCDEF0]):
        head = struct.pack(">I", rid)
        raw.sendall(frame(head + b"q%d" % i, ipc))
        assert rep.recv() == b"q%d" % i
        rep.send(b"a%d" % i)
        assert recv_frame(raw, ipc) == head + b"a%d" % i


def test_rep_keeps_a_multi_hop_backtrace(transport, shortdir, stack):
    """A request that went through a device carries pipe ids (top bit
    clear) before the request id; the reply carries the same words."""
    ipc = transport == "ipc"
    rep, raw, _ = raw_peer("rep", transport, "nnofi-binds", shortdir, stack)
    trace = struct.pack(">III", 7, 0x12345, 0x80000009)
    raw.sendall(frame(trace + b"via device", ipc))
    assert rep.recv() == b"via device"
    rep.send(b"back")
    assert recv_frame(raw, ipc) == trace + b"back"


def test_two_raw_requesters_get_their_own_replies(transport, shortdir, stack):
    ipc = transport == "ipc"
    rep = nn_sock("rep", stack)
    url = rep.bind(nnofi_bind_url(transport, shortdir)).url
    raws = []
    for _ in range(2):
        r = raw_connect(url, stack)
        r.sendall(sp_header(PROTO["req"]))
        assert recv_exact(r, 8) == sp_header(PROTO["rep"])
        raws.append(r)
    for n, r in enumerate(raws):
        r.sendall(frame(struct.pack(">I", 0x80000000 | (n + 1)) + b"from %d" % n, ipc))
    for _ in raws:
        q = rep.recv()
        rep.send(b"re " + q)
    for n, r in enumerate(raws):
        assert recv_frame(r, ipc) == struct.pack(">I", 0x80000000 | (n + 1)) + b"re from %d" % n


WRONG = {"pair": [81, 48, 32, 0], "push": [80, 16, 49], "pull": [81, 48], "req": [48, 16, 80], "rep": [49, 81]}


@pytest.mark.parametrize(
    "kind, peer_id", [(k, p) for k in sorted(WRONG) for p in WRONG[k]], ids=lambda v: str(v)
)
def test_wrong_protocol_id_is_rejected(kind, peer_id, transport, shortdir, stack):
    """A peer announcing a protocol that does not pair with ours gets its
    connection closed, without any message frame from us."""
    sock = nn_sock(kind, stack)
    url = sock.bind(nnofi_bind_url(transport, shortdir)).url
    raw = raw_connect(url, stack)
    raw.sendall(sp_header(peer_id))
    closed, seen = closed_by_peer(raw, sock)
    assert closed, f"nnofi kept a connection from a peer with protocol id {peer_id}"
    assert seen in (b"", sp_header(PROTO[kind])), f"unexpected bytes before close: {seen!r}"


@pytest.mark.parametrize(
    "bad",
    [b"\x00SQ\x00\x00\x51\x00\x00", b"\x01SP\x00\x00\x51\x00\x00", b"\x00SP\x00\x00\x51\x00\x01", b"GET / HTTP/1.1\r\n"],
    ids=["magic", "first-byte", "reserved", "http"],
)
def test_malformed_header_is_rejected(bad, transport, shortdir, stack):
    sock = nn_sock("push", stack)
    url = sock.bind(nnofi_bind_url(transport, shortdir)).url
    raw = raw_connect(url, stack)
    raw.sendall(bad)
    closed, seen = closed_by_peer(raw, sock)
    assert closed, f"nnofi kept a connection after header {bad!r}"
    assert seen in (b"", sp_header(PROTO["push"]))


def test_good_peer_after_a_rejected_one(transport, shortdir, stack):
    """Rejecting one connection leaves the listener serving the next."""
    ipc = transport == "ipc"
    pull = nn_sock("pull", stack)
    url = pull.bind(nnofi_bind_url(transport, shortdir)).url
    bad = raw_connect(url, stack)
    bad.sendall(sp_header(PROTO["pull"]))
    assert closed_by_peer(bad, pull)[0]
    good = raw_connect(url, stack)
    good.sendall(sp_header(PROTO["push"]) + frame(b"fine", ipc))
    assert recv_exact(good, 8) == sp_header(PROTO["pull"])
    assert pull.recv() == b"fine"


def test_ipc_frame_with_wrong_type_byte_is_rejected(shortdir, stack):
    pull = nn_sock("pull", stack)
    url = pull.bind(nnofi_bind_url("ipc", shortdir)).url
    raw = raw_connect(url, stack)
    raw.sendall(sp_header(PROTO["push"]))
    assert recv_exact(raw, 8) == sp_header(PROTO["pull"])
    raw.sendall(b"\x07" + struct.pack(">Q", 3) + b"abc")
    assert closed_by_peer(raw, pull)[0]
