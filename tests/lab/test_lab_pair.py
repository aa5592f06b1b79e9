"""PAIR across two nodes: small and large (rendezvous) messages both ways,
over tcp and every provider the nodes share."""
from labhelpers import pair_client, pair_echo

SIZES = [8, 100, 4096, 65536, 200_000, 2 * 1024 * 1024]


def test_pair_across_nodes(node_a, node_b, lab_url):
    url = lab_url(node_a)
    echo = node_a.spawn(pair_echo, url, len(SIZES))
    assert echo.recv() == "bound"
    assert node_b.run(pair_client, url, SIZES) == len(SIZES)
    echo.send("done")
    assert echo.result() == SIZES
