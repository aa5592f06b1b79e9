"""BUS: a full mesh over every node; each message reaches every other
member once, and not its sender."""
from labhelpers import bus_member


def test_bus_mesh(nodes, lab_url):
    urls = [lab_url(n) for n in nodes]
    members = [n.spawn(bus_member, n.name, urls[i], urls[:i], len(nodes) - 1) for i, n in enumerate(nodes)]
    for m in members:
        assert m.recv() == "meshed"
    for m in members:
        m.send("go")
    for m in members:
        assert m.recv() == "received"
    for m in members:
        m.send("done")
    for i, m in enumerate(members):
        assert m.result() == sorted(b"from " + n.name.encode() for j, n in enumerate(nodes) if j != i)
