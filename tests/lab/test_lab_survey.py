"""A SURVEYOR with a RESPONDENT on every node (its own too): every survey
gets one answer from each."""
from labhelpers import respondent, surveyor

ROUNDS = 5


def test_survey_reaches_every_node(nodes, lab_url):
    url = lab_url(nodes[0])
    sv = nodes[0].spawn(surveyor, url, len(nodes), ROUNDS)
    rs = [n.spawn(respondent, url, n.name, ROUNDS) for n in nodes]
    answers = sv.result()
    assert [r.result() for r in rs] == [ROUNDS] * len(nodes)
    for i, got in enumerate(answers):
        assert got == sorted(b"%s:q%d" % (n.name.encode(), i) for n in nodes)
