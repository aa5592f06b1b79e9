"""REQ on two nodes to a REP on a third: each request gets its own answer."""
from labhelpers import rep_server, req_client

COUNT = 50


def test_reqs_on_two_nodes_one_rep(node_a, node_b, node_c, lab_url):
    url = lab_url(node_c)
    rep = node_c.spawn(rep_server, url, 2 * COUNT)
    assert rep.recv() == "bound"
    reqs = [n.spawn(req_client, url, n.name, COUNT) for n in (node_a, node_b)]
    assert [r.result() for r in reqs] == [COUNT, COUNT]
    rep.send("done")
    seen = rep.result()
    for n in (node_a, node_b):
        assert [m for m in seen if m.startswith(n.name.encode() + b"-")] == \
            [b"%s-%d" % (n.name.encode(), i) for i in range(COUNT)]
