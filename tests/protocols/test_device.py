"""nnofi.device: forwarding between two raw sockets (brokers), and the
one-socket reflector for PAIR and BUS."""
import time

import pytest

import nnofi
from protohelpers import OPTS, Worker, finish, recv_all, wait_pipes


# Time given to a freshly started device before the first message is sent,
# so that it is waiting when messages arrive. The two
# test_*_forwards_message_queued_before_it_starts tests check that a device
# also forwards what was queued before it started; the other tests leave
# that case out, so that each checks one thing.
SETTLE = 0.2


def _run_device(a, b=None, settle=SETTLE):
    """Start nnofi.device(a, b) in a thread; returns the Worker."""
    w = Worker(nnofi.device, a, b, name="device")
    w.start()
    time.sleep(settle)
    return w


def _stop_device(dev, *socks, timeout=10.0):
    """Close socks (one is enough to end the device) and check that the
    device returned normally or with nnofi.Closed."""
    for s in socks:
        s.close()
    dev.join(timeout)
    assert not dev.is_alive(), f"device still running {timeout}s after its sockets were closed"
    if dev.error is not None and not isinstance(dev.error, nnofi.Closed):
        raise dev.error


def _serve(rep, tag):
    """A REP worker: answers every request until its socket is closed."""
    n = 0
    while True:
        try:
            req = rep.recv()
        except nnofi.Closed:
            return n
        rep.send(tag + b"|" + req)
        n += 1


def test_reqrep_device_several_requesters(new_url):
    n_clients, n_reqs = 4, 25
    front = nnofi.Rep(raw=True, **OPTS)
    back = nnofi.Req(raw=True, **OPTS)
    socks = [front, back]
    try:
        front_url = front.bind(new_url()).url
        back_url = back.bind(new_url()).url
        dev = _run_device(front, back)
        workers = [nnofi.Rep(connect=back_url, **OPTS) for _ in range(2)]
        socks += workers
        servers = [Worker(_serve, w, b"w%d" % i, name=f"rep{i}") for i, w in enumerate(workers)]
        for s in servers:
            s.start()
        clients = [nnofi.Req(connect=front_url, **OPTS) for _ in range(n_clients)]
        socks += clients
        wait_pipes(back, 2)
        wait_pipes(front, n_clients)

        def client(i):
            for k in range(n_reqs):
                req = b"c%d r%d" % (i, k)
                clients[i].send(req)
                reply = clients[i].recv()
                tag, _, echoed = reply.partition(b"|")
                assert echoed == req, f"client {i} asked {req!r}, got {reply!r}"
                assert tag in (b"w0", b"w1")

        threads = [Worker(client, i, name=f"req{i}") for i in range(n_clients)]
        for t in threads:
            t.start()
        finish(threads, timeout=30)

        _stop_device(dev, front, back)
        for w in workers:
            w.close()
        finish(servers)
        assert sum(s.result for s in servers) == n_clients * n_reqs
    finally:
        for s in socks:
            s.close()


def test_reqrep_device_raw_headers(new_url):
    """The raw REP in front of the device keeps the backtrace; the worker's
    reply finds its way back through it."""
    with nnofi.Rep(raw=True, **OPTS) as front, nnofi.Req(raw=True, **OPTS) as back, nnofi.Req(
        **OPTS
    ) as client, nnofi.Rep(**OPTS) as worker:
        client.connect(front.bind(new_url()).url)
        worker.connect(back.bind(new_url()).url)
        wait_pipes(front, 1)
        wait_pipes(back, 1)
        client.send(b"question")
        msg = front.recv_msg()
        assert bytes(msg) == b"question"
        hdr = msg.header
        # one hop: a pipe id (top bit clear), then the request id (top bit set)
        assert len(hdr) == 8, hdr
        assert hdr[0] & 0x80 == 0 and hdr[4] & 0x80 == 0x80, hdr
        back.send_msg(msg)
        assert worker.recv() == b"question"
        worker.send(b"answer")
        reply = back.recv_msg()
        assert bytes(reply) == b"answer" and reply.header == hdr
        front.send_msg(reply)
        assert client.recv() == b"answer"


def test_survey_through_device(new_url):
    n = 3
    front = nnofi.Respondent(raw=True, **OPTS)
    back = nnofi.Surveyor(raw=True, **OPTS)
    surveyor = nnofi.Surveyor(survey_time=1000, **OPTS)
    resps = []
    try:
        surveyor.connect(front.bind(new_url()).url)
        back_url = back.bind(new_url()).url
        resps = [nnofi.Respondent(connect=back_url, **OPTS) for _ in range(n)]
        dev = _run_device(front, back)
        wait_pipes(front, 1)
        wait_pipes(back, n)
        for rnd in range(3):
            q = b"survey %d" % rnd
            surveyor.send(q)
            for i, r in enumerate(resps):
                assert r.recv() == q
                r.send(b"r%d:" % i + q)
            got = []
            with pytest.raises(nnofi.Timeout):
                while True:
                    got.append(surveyor.recv())
            assert sorted(got) == sorted(b"r%d:" % i + q for i in range(n))
        _stop_device(dev, front, back)
    finally:
        for s in [front, back, surveyor] + resps:
            s.close()


def test_pair_reflector(url):
    with nnofi.Pair(raw=True, **OPTS) as mirror, nnofi.Pair(**OPTS) as peer:
        peer.connect(mirror.bind(url).url)
        dev = _run_device(mirror)
        try:
            wait_pipes(mirror, 1)
            for i in range(50):
                peer.send(b"echo %d" % i)
                assert peer.recv() == b"echo %d" % i
            burst = [b"burst %d" % i for i in range(200)]
            for m in burst:
                peer.send(m)
            assert [peer.recv() for _ in burst] == burst
        finally:
            _stop_device(dev, mirror)


def test_bus_reflector(url):
    """A raw BUS reflector joins its peers into one bus: each message reaches
    every other peer once, and not its sender."""
    n = 3
    with nnofi.Bus(raw=True, **OPTS) as hub:
        ep = hub.bind(url)
        leaves = [nnofi.Bus(connect=ep.url, **OPTS) for _ in range(n)]
        dev = _run_device(hub)
        try:
            wait_pipes(hub, n)
            for leaf in leaves:
                wait_pipes(leaf, 1)
            for i, leaf in enumerate(leaves):
                leaf.send(b"from %d" % i)
            for i, leaf in enumerate(leaves):
                got = recv_all(leaf, quiet_ms=300)
                assert sorted(got) == sorted(b"from %d" % j for j in range(n) if j != i), f"leaf {i}"
        finally:
            _stop_device(dev, hub)
            for leaf in leaves:
                leaf.close()


def test_reflector_forwards_message_queued_before_it_starts(url):
    """A message that reached the socket before device() was called is
    forwarded as soon as the device starts, not when a second one arrives."""
    with nnofi.Pair(raw=True, **OPTS) as mirror, nnofi.Pair(recv_timeout=1000, send_timeout=1000) as peer:
        peer.connect(mirror.bind(url).url)
        wait_pipes(mirror, 1)
        wait_pipes(peer, 1)
        peer.send(b"queued")
        time.sleep(0.2)  # it is in the mirror's queue now
        dev = _run_device(mirror, settle=0)
        try:
            try:
                got = peer.recv()
            except nnofi.Timeout:
                peer.send(b"second")
                late = recv_all(peer, quiet_ms=300)
                pytest.fail(
                    "the queued message was not echoed within 1 s of device() starting; "
                    f"after a second message was sent the reflector echoed {late!r}"
                )
            assert got == b"queued"
        finally:
            _stop_device(dev, mirror)


def test_device_forwards_message_queued_before_it_starts(new_url):
    """Same with two sockets: a message queued on either side before
    device(a, b) starts goes through when it starts."""
    with nnofi.Pair(raw=True, **OPTS) as a, nnofi.Pair(raw=True, **OPTS) as b, nnofi.Pair(
        recv_timeout=1000, send_timeout=1000
    ) as pa, nnofi.Pair(recv_timeout=1000, send_timeout=1000) as pb:
        pa.connect(a.bind(new_url()).url)
        pb.connect(b.bind(new_url()).url)
        for s in (a, b, pa, pb):
            wait_pipes(s, 1)
        pa.send(b"a to b")
        pb.send(b"b to a")
        time.sleep(0.2)
        dev = _run_device(a, b, settle=0)
        try:
            got = []
            for sock in (pb, pa):
                try:
                    got.append(sock.recv())
                except nnofi.Timeout:
                    got.append(None)
            assert got == [b"a to b", b"b to a"], "None: not forwarded within 1 s of device() starting"
        finally:
            _stop_device(dev, a, b)


@pytest.mark.parametrize("which", ["first", "second"])
def test_device_returns_when_a_socket_closes(new_url, which):
    front = nnofi.Rep(raw=True, **OPTS)
    back = nnofi.Req(raw=True, **OPTS)
    try:
        front.bind(new_url())
        back.bind(new_url())
        dev = _run_device(front, back)
        time.sleep(0.1)
        assert dev.is_alive(), f"device returned at once: {dev.result!r} {dev.error!r}"
        t0 = time.monotonic()
        _stop_device(dev, front if which == "first" else back)
        assert time.monotonic() - t0 < 2.0
    finally:
        front.close()
        back.close()


def test_reflector_returns_when_its_socket_closes(url):
    with nnofi.Pair(raw=True, **OPTS) as mirror:
        mirror.bind(url)
        dev = _run_device(mirror)
        time.sleep(0.1)
        assert dev.is_alive(), f"device returned at once: {dev.result!r} {dev.error!r}"
        _stop_device(dev, mirror)


def _expect_value_error(a, b=None):
    w = Worker(nnofi.device, a, b, name="device")
    w.start()
    w.join(5)
    alive = w.is_alive()
    a.close()
    if b is not None:
        b.close()
    w.join(5)
    assert not alive, "device() started forwarding instead of raising ValueError"
    assert isinstance(w.error, ValueError), f"expected ValueError, got {w.error!r} / {w.result!r}"


@pytest.mark.parametrize(
    "make",
    [
        lambda: (nnofi.Rep(**OPTS), nnofi.Req(raw=True, **OPTS)),
        lambda: (nnofi.Rep(raw=True, **OPTS), nnofi.Req(**OPTS)),
        lambda: (nnofi.Rep(**OPTS), nnofi.Req(**OPTS)),
        lambda: (nnofi.Pair(**OPTS), None),
        lambda: (nnofi.Bus(**OPTS), None),
    ],
    ids=["cooked-first", "cooked-second", "both-cooked", "cooked-pair-reflector", "cooked-bus-reflector"],
)
def test_device_with_cooked_sockets_raises_value_error(new_url, make):
    a, b = make()
    a.bind(new_url())
    if b is not None:
        b.bind(new_url())
    _expect_value_error(a, b)


def test_device_with_sockets_that_are_not_peers_raises_value_error(new_url):
    a, b = nnofi.Rep(raw=True, **OPTS), nnofi.Pub(raw=True, **OPTS)
    a.bind(new_url())
    b.bind(new_url())
    _expect_value_error(a, b)
