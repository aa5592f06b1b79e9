"""PAIR: one peer, both directions."""
import time

import pytest

import nnofi
from protohelpers import OPTS, wait_pipes


def test_pair_both_directions(url):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        for i in range(50):
            a.send(b"a->b %d" % i)
            assert b.recv() == b"a->b %d" % i
            b.send(b"b->a %d" % i)
            assert a.recv() == b"b->a %d" % i


def test_pair_streams_both_ways_at_once(url):
    """Each side sends a burst before reading: both bursts arrive, in order."""
    n = 200
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        for i in range(n):
            a.send(b"A%d" % i)
            b.send(b"B%d" % i)
        assert [b.recv() for _ in range(n)] == [b"A%d" % i for i in range(n)]
        assert [a.recv() for _ in range(n)] == [b"B%d" % i for i in range(n)]


def test_pair_connect_side_binds_later(url, transport):
    """Connect is asynchronous: the dialer may come first."""
    if transport == "tcp":
        pytest.skip("tcp port 0 is only known after bind")
    with nnofi.Pair(**OPTS) as b:
        b.connect(url)
        with nnofi.Pair(**OPTS) as a:
            a.bind(url)
            b.send(b"early")
            assert a.recv() == b"early"
            a.send(b"back")
            assert b.recv() == b"back"


def test_pair_second_peer_is_refused(url):
    """A PAIR has one peer: a second one connecting is refused or ignored,
    its messages never reach the bound side, and the first pair keeps working."""
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b, nnofi.Pair(
        recv_timeout=300, send_timeout=300
    ) as c:
        ep = a.bind(url)
        b.connect(ep.url)
        b.send(b"first peer")
        assert a.recv() == b"first peer"

        c.connect(ep.url)
        time.sleep(0.2)  # give the second connection time to be made (and dropped)
        try:
            c.send(b"intruder")
        except nnofi.Timeout:
            pass  # refused: nowhere to send
        a.recv_timeout = 500
        with pytest.raises(nnofi.Timeout):
            got = a.recv()
            pytest.fail(f"bound PAIR received {got!r} from the second peer")

        # c gets nothing either, even when a talks.
        a.send(b"for b only")
        assert b.recv() == b"for b only"
        with pytest.raises(nnofi.Timeout):
            c.recv()

        b.send(b"still paired")
        assert a.recv() == b"still paired"


def test_pair_second_peer_takes_over_after_first_leaves(url, transport):
    """When the first peer goes away the slot is free again."""
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as c:
        ep = a.bind(url)
        with nnofi.Pair(**OPTS) as b:
            b.connect(ep.url)
            b.send(b"from b")
            assert a.recv() == b"from b"
        # b is closed; c connects and must be able to talk to a.
        c.connect(ep.url)
        c.send(b"from c")
        assert a.recv() == b"from c"
        a.send(b"to c")
        assert c.recv() == b"to c"


def test_pair_kwargs_bind_connect(url, transport):
    with nnofi.Pair(bind=url, **OPTS) as a:
        real = a.endpoints[0].url
        if transport == "tcp":
            assert not real.endswith(":0")
        with nnofi.Pair(connect=real, **OPTS) as b:
            b.send(b"hello")
            assert a.recv() == b"hello"
            wait_pipes(a, 1)
