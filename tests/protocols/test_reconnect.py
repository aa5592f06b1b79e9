"""Reconnection: the bound peer goes away, a new socket binds the same
address, and the connected side redials by itself."""
import time

import pytest

import nnofi
from protohelpers import OPTS, wait_pipes


def _bind_again(cls, real_url, **kw):
    """Bind a new socket to real_url; retry briefly in case the old
    listener's teardown is still in flight in the background."""
    deadline = time.monotonic() + 2.0
    while True:
        s = cls(**kw)
        try:
            s.bind(real_url)
            return s
        except nnofi.AddressInUse:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except BaseException:
            s.close()
            raise


def _pair_until_through(sender, receiver, payload, deadline_s=5.0):
    """Send payload until the receiver gets it (a message sent into the
    dying connection may be lost; that is allowed)."""
    receiver.recv_timeout = 200
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            sender.send(payload)
        except nnofi.Timeout:
            pass
        try:
            got = receiver.recv()
        except nnofi.Timeout:
            assert time.monotonic() < deadline, "traffic did not resume after reconnect"
            continue
        if got == payload:
            receiver.recv_timeout = OPTS["recv_timeout"]
            return


def test_pair_reconnects_to_rebound_address(url):
    with nnofi.Pair(reconnect_ivl=50, send_timeout=500, recv_timeout=5000) as client:
        server = nnofi.Pair(**OPTS)
        try:
            real = server.bind(url).url
            client.connect(real)
            client.send(b"one")
            assert server.recv() == b"one"
            server.send(b"one back")
            assert client.recv() == b"one back"
        finally:
            server.close()

        with _bind_again(nnofi.Pair, real, **OPTS) as server2:
            _pair_until_through(client, server2, b"two")
            server2.send(b"two back")
            assert client.recv() == b"two back"
            assert client.stats["pipes_opened"] >= 2


def test_reqrep_reconnects_and_request_is_answered(url):
    """REQ keeps its request across the REP's restart and gets it answered by
    the new REP (resent on the new connection)."""
    with nnofi.Req(reconnect_ivl=50, req_resend_ivl=500, **OPTS) as req:
        rep = nnofi.Rep(**OPTS)
        try:
            real = rep.bind(url).url
            req.connect(real)
            req.send(b"q1")
            assert rep.recv() == b"q1"
            rep.send(b"a1")
            assert req.recv() == b"a1"
            req.send(b"q2")
            assert rep.recv() == b"q2"  # received, then the REP dies unanswered
        finally:
            rep.close()

        with _bind_again(nnofi.Rep, real, **OPTS) as rep2:
            assert rep2.recv() == b"q2"
            rep2.send(b"a2")
            assert req.recv() == b"a2"


def test_push_reconnects_after_pull_restart(url):
    with nnofi.Push(reconnect_ivl=50, **OPTS) as push:
        pull = nnofi.Pull(**OPTS)
        try:
            real = pull.bind(url).url
            push.connect(real)
            push.send(b"before")
            assert pull.recv() == b"before"
        finally:
            pull.close()
        with _bind_again(nnofi.Pull, real, **OPTS) as pull2:
            wait_pipes(push, 2)
            for i in range(100):
                push.send(b"%d" % i)
            assert [pull2.recv() for _ in range(100)] == [b"%d" % i for i in range(100)]


def test_several_restarts(stream_addrs):
    """The bound side restarts five times; the dialer follows every time."""
    url = stream_addrs.new()
    with nnofi.Pair(reconnect_ivl=20, reconnect_ivl_max=200, send_timeout=300, recv_timeout=5000) as client:
        first = nnofi.Pair(**OPTS)
        real = first.bind(url).url
        client.connect(real)
        client.send(b"hello 0")
        assert first.recv() == b"hello 0"
        first.close()
        for i in range(1, 6):
            with _bind_again(nnofi.Pair, real, **OPTS) as server:
                _pair_until_through(client, server, b"hello %d" % i)
                server.send(b"ack %d" % i)
                assert client.recv() == b"ack %d" % i


def test_connected_side_restarts(url):
    """The dialer goes away and a new one comes: the bound side serves it."""
    with nnofi.Pair(**OPTS) as server:
        real = server.bind(url).url
        for i in range(3):
            with nnofi.Pair(**OPTS) as client:
                client.connect(real)
                client.send(b"client %d" % i)
                assert server.recv() == b"client %d" % i
                server.send(b"reply %d" % i)
                assert client.recv() == b"reply %d" % i


@pytest.mark.parametrize("transport", ["ipc"])
def test_ipc_stale_socket_file_is_replaced(url):
    """A socket file left behind by a dead process does not block bind."""
    import socket as pysocket

    path = url[len("ipc://"):]
    s = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays, nobody listens
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        a.bind(url)
        b.connect(url)
        b.send(b"fresh")
        assert a.recv() == b"fresh"
