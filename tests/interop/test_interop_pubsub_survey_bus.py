"""PUB/SUB, SURVEYOR/RESPONDENT and BUS between nnofi and the real
libraries: Debian's libnanomsg (through ctypes, see _nn.py) and nng
(through pynng), over tcp and ipc, with nnofi in either role and either
side binding.

Each peer library is wrapped in a small adapter (Side) so one test body
serves every combination. Every blocking call is bounded (nnofi
recv/send_timeout, nanomsg NN_RCVTIMEO/NN_SNDTIMEO, pynng recv/send_timeout)
and a peer's first messages are retried with a deadline, not slept for.
"""
import time

import pytest

from _sides import END, PROBE, ROLE_PARAMS, SURVEY_MS, _join, _probe, _require, _roles

# -- PUB/SUB --------------------------------------------------------------------


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_pubsub(peer, transport, new_url, sides, nnofi_is, binder):
    """nnofi_is=first: nnofi publishes to the peer's SUB; second: the peer
    publishes to nnofi's SUB."""
    (pk, sk), bind_idx = _roles(peer, nnofi_is, binder)
    pub = sides(pk, "pub")
    sub = sides(sk, "sub", topics=[b"a", b"#"])
    socks = (pub, sub)
    _join(socks[bind_idx], socks[1 - bind_idx], new_url)
    _probe(pub, sub)

    big = b"a-big:" + bytes(range(256)) * 400
    sent = [b"a1", b"b1", b"a2", b"", b"ab", b"ba", big, b"a3"]
    for m in sent:
        pub.send(m)
    pub.send(END)
    got = []
    while (m := sub.recv()) != END:
        if m != PROBE:
            got.append(m)
    assert got == [m for m in sent if m.startswith(b"a")]


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_pub_to_two_subs(peer, transport, new_url, sides, nnofi_is, binder):
    """One PUB, two SUBs (one of each library) with different topics."""
    (pk, other), bind_idx = _roles(peer, nnofi_is, binder)
    pub = sides(pk, "pub")
    subs = [sides("nnofi", "sub", topics=[b"x", b"#"]), sides(peer, "sub", topics=[b"y", b"#"])]
    if bind_idx == 0:  # the PUB binds
        url = pub.bind(new_url())
        for s in subs:
            s.connect(url)
    else:  # each SUB binds, the PUB connects to both
        for s in subs:
            pub.connect(s.bind(new_url()))
    for s in subs:
        _probe(pub, s)
    for i in range(20):
        pub.send(b"x%d" % i)
        pub.send(b"y%d" % i)
    pub.send(END)
    for s, t in zip(subs, (b"x", b"y")):
        got = []
        while (m := s.recv()) != END:
            if m != PROBE:
                got.append(m)
        assert got == [t + b"%d" % i for i in range(20)], s


# -- SURVEYOR/RESPONDENT -----------------------------------------------------


def _survey_ready(surveyor, respondent, timeout=5.0):
    """Survey until the respondent answers (its connection is up)."""
    deadline = time.monotonic() + timeout
    k = 0
    while time.monotonic() < deadline:
        k += 1
        q = b"#ready %d" % k
        surveyor.send(q)
        try:
            while True:
                got = respondent.recv(200)
                if got == q:
                    break
            respondent.send(b"re " + q)
            while True:
                if surveyor.recv(SURVEY_MS * 2) == b"re " + q:
                    return
        except TimeoutError:
            continue
    pytest.fail(f"{surveyor!r} got no answer from {respondent!r} within {timeout}s")


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_survey(peer, transport, new_url, sides, nnofi_is, binder):
    """nnofi_is=first: nnofi surveys the peer's RESPONDENT; second: the
    peer surveys nnofi's RESPONDENT."""
    (sk, rk), bind_idx = _roles(peer, nnofi_is, binder)
    surveyor = sides(sk, "surveyor")
    respondent = sides(rk, "respondent")
    socks = (surveyor, respondent)
    _join(socks[bind_idx], socks[1 - bind_idx], new_url)
    _survey_ready(surveyor, respondent)

    for rnd in range(3):
        q = b"question %d" % rnd + b"?" * (rnd * 1000)
        surveyor.send(q)
        assert respondent.recv() == q
        respondent.send(b"answer to " + q)
        assert surveyor.recv() == b"answer to " + q
    # the last survey ends at its deadline
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        surveyor.recv()
    assert time.monotonic() - t0 < SURVEY_MS / 1000 + 1.5


@pytest.mark.parametrize("binder", ["nnofi", "peer"])
def test_survey_stale_answer_from_peer_dropped(peer, transport, new_url, sides, binder):
    """nnofi's SURVEYOR drops an answer to a survey it has replaced, by the
    survey id in the peer's backtrace."""
    surveyor = sides("nnofi", "surveyor", survey_ms=1000)
    respondent = sides(peer, "respondent")
    if binder == "nnofi":
        respondent.connect(surveyor.bind(new_url()))
    else:
        surveyor.connect(respondent.bind(new_url()))
    _survey_ready(surveyor, respondent)
    surveyor.send(b"old")
    assert respondent.recv() == b"old"
    surveyor.send(b"new")
    respondent.send(b"answer to old")
    assert respondent.recv() == b"new"
    respondent.send(b"answer to new")
    assert surveyor.recv() == b"answer to new"
    with pytest.raises(TimeoutError):
        surveyor.recv()


def test_survey_mixed_respondents(peer, transport, new_url, sides):
    """An nnofi SURVEYOR with an nnofi, a nanomsg or nng, and another nnofi
    RESPONDENT: every answer comes back within the one survey."""
    surveyor = sides("nnofi", "surveyor", survey_ms=1000)
    url = surveyor.bind(new_url())
    resps = [sides("nnofi", "respondent"), sides(peer, "respondent"), sides("nnofi", "respondent")]
    for r in resps:
        r.connect(url)
    for r in resps:
        _survey_ready(surveyor, r)
    for r in resps:  # the surveys that readied the others
        r.recv_until_quiet(100)
    surveyor.send(b"roll call")
    for i, r in enumerate(resps):
        assert r.recv() == b"roll call"
        r.send(b"here %d" % i)
    got = []
    with pytest.raises(TimeoutError):
        while True:
            got.append(surveyor.recv())
    assert sorted(got) == [b"here 0", b"here 1", b"here 2"]


# -- BUS ------------------------------------------------------------------------


@pytest.mark.parametrize("binder", ["nnofi", "peer"])
def test_bus(peer, transport, new_url, sides, binder):
    a = sides("nnofi", "bus")
    b = sides(peer, "bus")
    if binder == "nnofi":
        b.connect(a.bind(new_url()))
    else:
        a.connect(b.bind(new_url()))
    _probe(a, b)
    _probe(b, a)
    for i in range(20):
        a.send(b"a%d" % i)
        b.send(b"b%d" % i)
    assert [b.recv() for _ in range(20)] == [b"a%d" % i for i in range(20)]
    assert [a.recv() for _ in range(20)] == [b"b%d" % i for i in range(20)]
    big = bytes(range(256)) * 1000
    a.send(big)
    assert b.recv() == big
    b.send(big[::-1])
    assert a.recv() == big[::-1]
    # nothing echoed back to a sender
    assert a.recv_until_quiet(200) == []
    assert b.recv_until_quiet(200) == []


def test_bus_mesh_nnofi_nanomsg_nng(transport, new_url, sides):
    """A full mesh of three bus nodes, one per library: each gets each
    other's message once."""
    _require("nanomsg")
    _require("nng")
    nodes = {k: sides(k, "bus") for k in ("nnofi", "nanomsg", "nng")}
    urls = {k: n.bind(new_url()) for k, n in nodes.items()}
    nodes["nanomsg"].connect(urls["nnofi"])
    nodes["nng"].connect(urls["nnofi"])
    nodes["nng"].connect(urls["nanomsg"])
    for x in nodes.values():
        for y in nodes.values():
            if x is not y:
                _probe(x, y)
    for n in nodes.values():
        n.recv_until_quiet(100)
    for k, n in nodes.items():
        n.send(b"from " + k.encode())
    for k, n in nodes.items():
        got = n.recv_until_quiet(300)
        assert sorted(got) == sorted(b"from " + o.encode() for o in nodes if o != k), k


@pytest.mark.parametrize("binder", ["nnofi", "peer"])
def test_bus_nnofi_does_not_forward_between_peers(peer, transport, new_url, sides, binder):
    """peer1 - nnofi - peer2 in a line: nnofi hears both, they never hear
    each other through it."""
    mid = sides("nnofi", "bus")
    ends = [sides(peer, "bus"), sides(peer, "bus")]
    if binder == "nnofi":
        url = mid.bind(new_url())
        for e in ends:
            e.connect(url)
    else:
        for e in ends:
            mid.connect(e.bind(new_url()))
    for e in ends:
        _probe(mid, e)
        _probe(e, mid)
    ends[0].send(b"from end 0")
    ends[1].send(b"from end 1")
    assert sorted(mid.recv_until_quiet(300)) == [b"from end 0", b"from end 1"]
    assert ends[0].recv_until_quiet(200) == []
    assert ends[1].recv_until_quiet(200) == []
