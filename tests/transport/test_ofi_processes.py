"""Every socket type over ofi:// with its peer in another process, on
every provider under test: the only way to test shm (see test_ofi.py),
and the way applications use the others."""
import multiprocessing as mp
import time

import pytest

import nnofi

from ofi_providers import url_for

TIMEOUT_MS = 10000
N = 50


def _peer(kind, url, n, conn):
    """The other side, in a child process: connects to url and plays
    `kind`; reports what it saw on conn."""
    opts = dict(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS, recv_max_size=-1)
    try:
        if kind == "pair":
            with nnofi.Pair(connect=url, **opts) as s:
                for _ in range(n):
                    s.send(s.recv() + b"!")
                conn.send("done")
        elif kind == "rep":
            with nnofi.Rep(connect=url, **opts) as s:
                for _ in range(n):
                    s.send(b"re:" + s.recv())
                conn.send("done")
        elif kind == "pull":
            with nnofi.Pull(connect=url, **opts) as s:
                conn.send([s.recv() for _ in range(n)])
        elif kind == "stalled-pull":
            with nnofi.Pull(connect=url, **opts) as s:
                wait_connected(s)
                conn.send("connected")
                conn.poll(30)  # takes nothing until the test is done
        elif kind == "sub":
            with nnofi.Sub(connect=url, topics=b"", **opts) as s:
                got = []
                while len(got) < n:
                    m = s.recv()
                    if m != b"sync":
                        got.append(m)
                conn.send(got)
        elif kind == "respondent":
            with nnofi.Respondent(connect=url, **opts) as s:
                for _ in range(n):
                    s.send(b"ans:" + s.recv())
                conn.send("done")
        elif kind == "bus":
            with nnofi.Bus(connect=url, **opts) as s:
                got = [s.recv() for _ in range(n)]
                for m in got:
                    s.send(b"back:" + m)
                conn.send(got)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        conn.send(f"{type(e).__name__}: {e}")


class Peer:
    """A child process running _peer; joins it, bounded, on exit."""

    def __init__(self, kind, url, n=N):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_peer, args=(kind, url, n, child), daemon=True)
        self.proc.start()

    def result(self, timeout=30):
        assert self.conn.poll(timeout), "the peer process reported nothing"
        return self.conn.recv()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.join(20)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def wait_connected(s, timeout=20.0):
    deadline = time.monotonic() + timeout
    while s.stats["pipes_opened"] < 1:
        assert time.monotonic() < deadline, "the peer process never connected"
        time.sleep(0.005)


def sock(cls, provider, **kw):
    s = cls(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS, recv_max_size=-1, **kw)
    return s, s.bind(url_for(provider)).url


def test_pair(any_provider):
    provider = any_provider
    s, url = sock(nnofi.Pair, provider)
    with s, Peer("pair", url) as peer:
        for i in range(N):
            s.send(b"m%d" % i + b"." * (i * 997))  # up to ~48 KiB
            assert s.recv() == b"m%d" % i + b"." * (i * 997) + b"!"
        assert peer.result() == "done"


def test_req_rep(any_provider):
    provider = any_provider
    s, url = sock(nnofi.Req, provider)
    with s, Peer("rep", url) as peer:
        for i in range(N):
            s.send(b"q%d" % i)
            assert s.recv() == b"re:q%d" % i
        assert peer.result() == "done"


def test_push_pull_with_a_big_message(any_provider):
    provider = any_provider
    s, url = sock(nnofi.Push, provider)
    big = bytes(range(256)) * (3 << 12)  # 3 MiB: rendezvous where there is RMA
    sent = [b"p%d" % i for i in range(N - 1)] + [big]
    with s, Peer("pull", url) as peer:
        for m in sent:
            s.send(m)
        assert peer.result() == sent


def test_pub_sub(any_provider):
    provider = any_provider
    s, url = sock(nnofi.Pub, provider)
    with s, Peer("sub", url) as peer:
        # a subscriber gets what is published once the connection is up:
        # the stream carries it after the SP headers
        wait_connected(s)
        sent = [b"news%d" % i for i in range(N)]
        for m in sent:
            s.send(m)
        got = peer.result()
        assert got == sent, got


def test_surveyor_respondent(any_provider):
    provider = any_provider
    s, url = sock(nnofi.Surveyor, provider, survey_time=5000)
    with s, Peer("respondent", url, n=10) as peer:
        wait_connected(s)
        for i in range(10):
            s.send(b"s%d" % i)
            assert s.recv() == b"ans:s%d" % i
        assert peer.result() == "done"


def test_bus(any_provider):
    provider = any_provider
    s, url = sock(nnofi.Bus, provider)
    with s, Peer("bus", url, n=20) as peer:
        wait_connected(s)
        sent = [b"b%d" % i for i in range(20)]
        for m in sent:
            s.send(m)
        assert sorted(s.recv() for _ in sent) == sorted(b"back:" + m for m in sent)
        assert peer.result() == sent


# Providers whose receiving side reads on past its socket's receive
# buffer: its background poll (RDM) or the provider (sockets) takes every
# message, so a sender is never stopped. A known gap: stopping them needs
# flow control of nnofi's own over those connections (credits).
READS_WITHOUT_BOUND = {"shm", "udp;ofi_rxd", "sockets"}


def test_a_receiver_that_takes_nothing_stops_its_sender(any_provider, request):
    """Flow control: a PUSH into a PULL that takes nothing blocks once the
    buffers between them are full (both sockets' buffers, the posted
    receive buffers, what the provider and the kernel hold) and its send
    times out, rather than taking messages without end. libfabric 1.17's
    tcp queued injected sends without bound (2.9 million in 3 s), so tcp
    does not inject (ofi_conn.c)."""
    if any_provider in READS_WITHOUT_BOUND:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{any_provider}: the receiver reads without bound (READS_WITHOUT_BOUND)"))
    s, url = sock(nnofi.Push, any_provider)
    s.send_timeout = 300
    size, bound = 1000, 32 << 20  # bytes: far above every buffer on the way
    with s, Peer("stalled-pull", url) as peer:
        assert peer.result() == "connected"
        sent, t0 = 0, time.monotonic()
        try:
            while sent * size < bound and time.monotonic() - t0 < 30:
                s.send(b"x" * size)
                sent += 1
        except nnofi.Timeout:
            pass
        else:
            raise AssertionError(f"{sent} sends of {size} B went into a receiver that takes nothing, none timed out")
        finally:
            peer.conn.send("done")
