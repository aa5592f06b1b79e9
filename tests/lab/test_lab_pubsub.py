"""PUB on one node, a SUB on each of two others: both get every message of
their topic, in order, and none of the others."""
from labhelpers import publisher, subscriber

COUNT = 200


def test_pub_to_subs_on_two_nodes(node_a, node_b, node_c, lab_url):
    url = lab_url(node_a)
    pub = node_a.spawn(publisher, url, COUNT)
    assert pub.recv() == "bound"
    subs = [n.spawn(subscriber, url) for n in (node_b, node_c)]
    for s in subs:
        assert s.recv() == "synced"
    pub.send("go")
    want = [b"a/%d" % i for i in range(COUNT)]
    for s in subs:
        assert s.result() == want
    pub.send("done")
    assert pub.result() >= 2
