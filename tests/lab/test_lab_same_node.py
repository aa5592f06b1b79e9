"""Two processes of one node: every provider the node has, shm included."""
import pytest

from labhelpers import pair_client, pair_echo, rep_server, req_client

SIZES = [8, 4096, 300_000]


@pytest.mark.same_node
def test_pair_between_processes_of_one_node(node_a, lab_url):
    url = lab_url(node_a)
    echo = node_a.spawn(pair_echo, url, len(SIZES))
    assert echo.recv() == "bound"
    assert node_a.process(1).run(pair_client, url, SIZES) == len(SIZES)
    echo.send("done")
    assert echo.result() == SIZES


@pytest.mark.same_node
def test_reqrep_between_processes_of_one_node(node_b, lab_url):
    url = lab_url(node_b)
    rep = node_b.spawn(rep_server, url, 20)
    assert rep.recv() == "bound"
    assert node_b.process(1).run(req_client, url, "p1", 20) == 20
    rep.send("done")
    assert len(rep.result()) == 20
