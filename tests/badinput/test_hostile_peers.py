"""A listener survives hostile and broken peers: raw TCP and Unix sockets
send garbage, lies and stalls at nnofi listeners while a well-behaved
nnofi peer on the same socket keeps sending. Each bad connection is
closed alone, with its reason counted in the statistics, and the good
peer's messages all arrive, in order, intact."""
import os
import socket
import struct
import threading
import time

import pytest

import nnofi
from rawsock import connect as raw_connect

PROTO = {"pair": 16, "pub": 32, "sub": 33, "req": 48, "rep": 49, "push": 80, "pull": 81}


def sp_header(proto_id):
    return b"\x00SP\x00" + struct.pack(">H", proto_id) + b"\x00\x00"


def frame(payload, ipc):
    return (b"\x01" if ipc else b"") + struct.pack(">Q", len(payload)) + payload


@pytest.fixture(params=["tcp", "ipc"])
def transport(request, tmp_path):
    return request.param, (f"ipc://{tmp_path}/bad.ipc" if request.param == "ipc" else "tcp://127.0.0.1:0")


def closed_by_peer(s, timeout=5.0):
    """True once the listener has closed this connection. A receiving
    socket reads (and judges) its connections when the application
    receives, so callers receive first."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def wait_stat(sock, name, at_least=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.stats[name] >= at_least:
            return sock.stats[name]
        time.sleep(0.01)
    raise AssertionError(f"{name} stayed {sock.stats[name]} < {at_least}: {sock.stats}")


def drain(sock):
    """One non-blocking look at every connection of a receiving socket."""
    with pytest.raises(nnofi.Again):
        sock.recv(block=False)


class GoodPusher:
    """A well-behaved nnofi PUSH sending numbered messages meanwhile."""

    def __init__(self, url, count=300):
        self.count = count
        self.sock = nnofi.Push(connect=url, send_timeout=10000)
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        for i in range(self.count):
            self.sock.send(b"good %d " % i + b"x" * (i % 200))
            if i % 50 == 0:
                time.sleep(0.01)

    def expect_all(self, pull):
        got = [pull.recv() for _ in range(self.count)]
        self.thread.join(10)
        self.sock.close()
        assert got == [b"good %d " % i + b"x" * (i % 200) for i in range(self.count)]


@pytest.fixture
def pull(transport):
    kind, url = transport
    with nnofi.Pull(recv_timeout=10000) as sock:
        ep = sock.bind(url)
        yield kind == "ipc", ep.url, sock


def test_garbage_instead_of_sp_header(pull):
    ipc, url, sock = pull
    good = GoodPusher(url)
    bad = raw_connect(url)
    bad.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    good.expect_all(sock)
    assert closed_by_peer(bad)
    wait_stat(sock, "handshakes_rejected")
    bad.close()


@pytest.mark.parametrize("proto_id", [0x1234, PROTO["pub"], PROTO["pull"], PROTO["req"]])
def test_wrong_or_incompatible_protocol(pull, proto_id):
    ipc, url, sock = pull
    good = GoodPusher(url)
    bad = raw_connect(url)
    bad.sendall(sp_header(proto_id))
    good.expect_all(sock)
    assert closed_by_peer(bad)
    wait_stat(sock, "handshakes_rejected")
    bad.close()


def test_length_over_recv_max_size(pull):
    ipc, url, sock = pull
    sock.recv_max_size = 4096
    good = GoodPusher(url)
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["push"]))
    assert bad.recv(8) == sp_header(PROTO["pull"])
    bad.sendall((b"\x01" if ipc else b"") + struct.pack(">Q", 1 << 40))
    good.expect_all(sock)
    drain(sock)
    assert closed_by_peer(bad)
    assert wait_stat(sock, "frames_oversize") == 1
    bad.close()


def test_huge_length_with_unlimited_recv_max_size(pull):
    """recv_max_size=-1 and a 2**63 length: no crash, no giant allocation."""
    ipc, url, sock = pull
    sock.recv_max_size = -1
    good = GoodPusher(url)
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["push"]))
    bad.sendall((b"\x01" if ipc else b"") + struct.pack(">Q", (1 << 63) + 5) + b"abc")
    good.expect_all(sock)
    drain(sock)
    assert closed_by_peer(bad)
    assert wait_stat(sock, "frames_oversize") == 1
    bad.close()


def test_length_lies_then_peer_leaves(pull):
    ipc, url, sock = pull
    good = GoodPusher(url)
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["push"]))
    bad.sendall((b"\x01" if ipc else b"") + struct.pack(">Q", 1000) + b"only ten b")
    time.sleep(0.05)
    bad.close()
    good.expect_all(sock)
    with pytest.raises(nnofi.Again):
        sock.recv(block=False)  # the half frame never became a message


def test_peer_stalls_mid_frame(pull):
    ipc, url, sock = pull
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["push"]))
    bad.sendall((b"\x01" if ipc else b"") + struct.pack(">Q", 100000) + b"x" * 5000)
    good = GoodPusher(url)  # the stalled pipe must not hold up this one
    good.expect_all(sock)
    bad.close()


def test_peer_stalls_in_handshake(pull):
    ipc, url, sock = pull
    stalled = [raw_connect(url) for _ in range(20)]
    good = GoodPusher(url)
    good.expect_all(sock)
    for s in stalled:
        s.close()


def test_bad_ipc_frame_type(pull):
    ipc, url, sock = pull
    if not ipc:
        pytest.skip("the frame type byte exists only over ipc")
    good = GoodPusher(url)
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["push"]))
    bad.sendall(b"\x07" + struct.pack(">Q", 3) + b"abc")
    good.expect_all(sock)
    drain(sock)
    assert closed_by_peer(bad)
    assert wait_stat(sock, "frames_malformed") == 1
    bad.close()


def test_valid_frames_from_a_raw_peer_arrive_intact(pull):
    """The wire format really is the SP one: a hand-made frame gets in."""
    ipc, url, sock = pull
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["push"]) + frame(b"hand made", ipc) + frame(b"", ipc))
    assert sock.recv() == b"hand made"
    assert sock.recv() == b""
    bad.close()


def test_connect_close_storm(pull):
    ipc, url, sock = pull
    fds_before = len(os.listdir("/proc/self/fd"))
    good = GoodPusher(url, count=500)
    for i in range(1500):
        s = raw_connect(url)
        if i % 3 == 0:
            s.sendall(sp_header(PROTO["push"]))
        s.close()
    good.expect_all(sock)
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/self/fd")) > fds_before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2


def test_push_peer_sending_to_push_is_dropped(transport):
    """A PULL never sends; a 'PULL' that does is cut off."""
    kind, url = transport
    ipc = kind == "ipc"
    with nnofi.Push(send_timeout=5000) as push, nnofi.Pull(recv_timeout=5000) as good:
        ep = push.bind(url)
        good.connect(ep.url)
        bad = raw_connect(ep.url)
        bad.sendall(sp_header(PROTO["pull"]))
        assert bad.recv(8) == sp_header(PROTO["push"])
        bad.sendall(frame(b"I am not supposed to talk", ipc))
        wait_stat(push, "unexpected_msgs")
        assert closed_by_peer(bad)
        for i in range(50):
            push.send(b"%d" % i)
        got = sorted(int(good.recv()) for _ in range(50))
        assert got == list(range(50))
        bad.close()


@pytest.fixture
def rep(transport):
    kind, url = transport
    with nnofi.Rep(recv_timeout=5000, send_timeout=5000) as sock:
        ep = sock.bind(url)
        yield kind == "ipc", ep.url, sock


@pytest.mark.parametrize(
    "payload",
    [
        b"".join(struct.pack(">I", 5) for _ in range(9)) + struct.pack(">I", 0x80000001) + b"evil",
        b"".join(struct.pack(">I", i) for i in range(8)),  # no request id (top bit) at all
        b"\x80\x00",  # shorter than one word
    ],
    ids=["too-many-hops", "no-request-id", "truncated"],
)
def test_rep_survives_bad_backtraces(rep, payload):
    ipc, url, sock = rep
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["req"]))
    assert bad.recv(8) == sp_header(PROTO["rep"])
    bad.sendall(frame(payload, ipc))
    with nnofi.Req(connect=url, recv_timeout=5000) as good:
        for i in range(20):
            good.send(b"q%d" % i)
            assert sock.recv() == b"q%d" % i
            sock.send(b"a%d" % i)
            assert good.recv() == b"a%d" % i
    assert sock.stats["headers_malformed"] == 1
    bad.close()


def test_rep_answers_a_raw_requester_with_its_backtrace(rep):
    """Eight hops is the most nanomsg allows, and still accepted."""
    ipc, url, sock = rep
    bad = raw_connect(url)
    bad.sendall(sp_header(PROTO["req"]))
    assert bad.recv(8) == sp_header(PROTO["rep"])
    trace = b"".join(struct.pack(">I", i + 1) for i in range(7)) + struct.pack(">I", 0x80000042)
    bad.sendall(frame(trace + b"deep", ipc))
    assert sock.recv() == b"deep"
    sock.send(b"answer")
    want = frame(trace + b"answer", ipc)
    got = b""
    while len(got) < len(want):
        got += bad.recv(len(want) - len(got))
    assert got == want
    bad.close()


def _vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def test_claimed_big_frames_cost_only_what_arrives(pull):
    """20 peers each announce a 256 MiB frame and send 1 KiB of it: the
    listener's memory grows with what arrived, not with what was claimed."""
    ipc, url, sock = pull
    sock.recv_max_size = -1
    before = _vm_size()
    liars = []
    for _ in range(20):
        s = raw_connect(url)
        s.sendall(sp_header(PROTO["push"]))
        s.sendall((b"\x01" if ipc else b"") + struct.pack(">Q", 256 << 20) + b"z" * 1024)
        liars.append(s)
    good = GoodPusher(url)
    good.expect_all(sock)
    drain(sock)
    grown = _vm_size() - before
    # (threads and malloc arenas reserve address space too: judge in GiB)
    assert grown < 1 << 30, f"address space grew {grown >> 20} MiB for 5 GiB of claims"
    for s in liars:
        s.close()
