"""PUSH/PULL across nodes: one PUSH spreads over PULLs on two nodes (each
message once, both get some), and PUSHes on two nodes feed one PULL."""
from labhelpers import puller, pusher

COUNT = 300


def test_push_fans_out_to_pulls_on_two_nodes(node_a, node_b, node_c, lab_url):
    url = lab_url(node_a)
    pulls = [n.spawn(puller, url, False) for n in (node_b, node_c)]
    assert node_a.run(pusher, url, True, 2, COUNT, "m") == COUNT
    for p in pulls:
        p.send("stop")
    got = [p.result() for p in pulls]
    assert sorted(got[0] + got[1]) == sorted(b"m-%d" % i for i in range(COUNT))
    assert got[0] and got[1], f"round robin left a puller out: {len(got[0])} / {len(got[1])}"
    for g in got:  # each puller sees its share in the order sent
        assert g == sorted(g, key=lambda m: int(m.split(b"-")[1]))


def test_pushes_on_two_nodes_fan_in(node_a, node_b, node_c, lab_url):
    url = lab_url(node_a)
    pull = node_a.spawn(puller, url, True, 2)
    assert pull.recv() == "bound"
    pushes = [n.spawn(pusher, url, False, 1, COUNT, n.name, True) for n in (node_b, node_c)]
    reports = [p.result() for p in pushes]
    assert [r[0] for r in reports] == [COUNT, COUNT]
    pull.send("stop")
    got = pull.result()
    for n, (_, close_s, stats) in zip((node_b, node_c), reports):
        mine = [m for m in got if m.startswith(n.name.encode() + b"-")]
        assert mine == [b"%s-%d" % (n.name.encode(), i) for i in range(COUNT)], (
            f"{n.name}: {len(mine)} of {COUNT} arrived; its close took {close_s} s (linger 1 s); "
            f"pipes opened {stats['pipes_opened']}, closed {stats['pipes_closed']}, broken {stats['pipes_broken']}")
