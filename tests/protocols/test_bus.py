"""BUS: every message goes to every directly connected peer, once; a node
does not forward, and does not hear itself."""
import pytest

import nnofi
from protohelpers import OPTS, recv_all, wait_pipes


def _mesh(new_url, n):
    """n bus nodes, each bound, each connected to every node bound before it."""
    nodes = [nnofi.Bus(**OPTS) for _ in range(n)]
    try:
        eps = [node.bind(new_url()) for node in nodes]
        for i, node in enumerate(nodes):
            for j in range(i):
                node.connect(eps[j].url)
        for node in nodes:
            wait_pipes(node, n - 1)
    except BaseException:
        for node in nodes:
            node.close()
        raise
    return nodes


def test_bus_mesh_of_three(new_url):
    nodes = _mesh(new_url, 3)
    try:
        for i, node in enumerate(nodes):
            node.send(b"from %d" % i)
        for i, node in enumerate(nodes):
            got = recv_all(node, quiet_ms=300)
            expected = sorted(b"from %d" % j for j in range(3) if j != i)
            assert sorted(got) == expected, f"node {i} got {got}"
    finally:
        for node in nodes:
            node.close()


def test_bus_mesh_streams_keep_order_per_sender(new_url):
    n_msgs = 200
    nodes = _mesh(new_url, 3)
    try:
        for k in range(n_msgs):
            for i, node in enumerate(nodes):
                node.send(b"%d:%d" % (i, k))
        for i, node in enumerate(nodes):
            got = [node.recv() for _ in range(2 * n_msgs)]
            for j in range(3):
                mine = [m for m in got if m.startswith(b"%d:" % j)]
                if j == i:
                    assert mine == [], f"node {i} heard itself"
                else:
                    assert mine == [b"%d:%d" % (j, k) for k in range(n_msgs)]
        for node in nodes:
            assert recv_all(node, quiet_ms=200) == []
    finally:
        for node in nodes:
            node.close()


def test_bus_node_does_not_forward(new_url):
    """a - b - c in a line: a's messages reach b, not c; c's reach b, not a."""
    with nnofi.Bus(**OPTS) as a, nnofi.Bus(**OPTS) as b, nnofi.Bus(**OPTS) as c:
        b.connect(a.bind(new_url()).url)
        c.connect(b.bind(new_url()).url)
        wait_pipes(a, 1)
        wait_pipes(b, 2)
        wait_pipes(c, 1)
        a.send(b"from a")
        c.send(b"from c")
        assert sorted(recv_all(b, quiet_ms=300)) == [b"from a", b"from c"]
        assert recv_all(a, quiet_ms=100) == []
        assert recv_all(c, quiet_ms=100) == []
        b.send(b"from b")
        assert a.recv() == b"from b"
        assert c.recv() == b"from b"


def test_bus_does_not_echo_to_sender(url):
    with nnofi.Bus(**OPTS) as a, nnofi.Bus(**OPTS) as b:
        b.connect(a.bind(url).url)
        wait_pipes(a, 1)
        wait_pipes(b, 1)
        a.send(b"ping")
        assert b.recv() == b"ping"
        b.send(b"pong")
        assert a.recv() == b"pong"
        a.recv_timeout = 200
        b.recv_timeout = 200
        with pytest.raises(nnofi.Timeout):
            a.recv()
        with pytest.raises(nnofi.Timeout):
            b.recv()


def test_bus_without_peers_does_not_block(url):
    with nnofi.Bus(send_timeout=1000, recv_timeout=200) as a:
        a.bind(url)
        for i in range(100):
            a.send(b"nobody %d" % i)
        with pytest.raises(nnofi.Timeout):
            a.recv()


def test_bus_star_hub_hears_all_leaves_hear_hub(new_url):
    """A hub with 4 leaves connected: the hub gets every leaf's message, each
    leaf gets the hub's, and no leaf gets another leaf's."""
    n = 4
    with nnofi.Bus(**OPTS) as hub:
        ep = hub.bind(new_url())
        leaves = [nnofi.Bus(connect=ep.url, **OPTS) for _ in range(n)]
        try:
            wait_pipes(hub, n)
            for leaf in leaves:
                wait_pipes(leaf, 1)
            for i, leaf in enumerate(leaves):
                leaf.send(b"leaf %d" % i)
            hub.send(b"hub")
            assert sorted(recv_all(hub, quiet_ms=300)) == sorted(b"leaf %d" % i for i in range(n))
            for leaf in leaves:
                assert recv_all(leaf, quiet_ms=100) == [b"hub"]
        finally:
            for leaf in leaves:
                leaf.close()
