"""Functions the lab tests run on nodes (shipped by nnofi_lab: each needs
only what it imports, nnofi and the standard library, and the constants
here). Every socket has send and receive timeouts and every loop a
deadline, so a broken peer fails a test instead of hanging a node."""
import time

import nnofi

TIMEOUT_MS = 10000
OPTS = {"recv_timeout": TIMEOUT_MS, "send_timeout": TIMEOUT_MS}
SYNC = b"\x00sync"
DEADLINE_S = 30.0


def wait_pipes(sock, n, what="peers"):
    """Wait until sock has opened n pipes (connections)."""
    deadline = time.monotonic() + DEADLINE_S
    while sock.stats["pipes_opened"] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} {what} not connected after {DEADLINE_S}s: {sock.stats}")
        time.sleep(0.005)


# -- PAIR -----------------------------------------------------------------------
def pair_echo(ctl, url, count):
    """Bind a Pair, send back each message reversed; wait for the test's
    word before closing (so the replies are read)."""
    with nnofi.Pair(recv_max_size=-1, **OPTS) as s:
        s.bind(url)
        ctl.send("bound")
        sizes = []
        for _ in range(count):
            m = s.recv()
            sizes.append(len(m))
            s.send(m[::-1])
        ctl.recv()
        return sizes


def pair_client(url, sizes):
    with nnofi.Pair(recv_max_size=-1, **OPTS) as s:
        s.connect(url)
        for i, n in enumerate(sizes):
            m = (b"%06d:" % i + bytes(range(256)) * (n // 256 + 1))[:n]
            s.send(m)
            r = s.recv()
            assert r == m[::-1], f"message {i} ({n} B) came back wrong: {r[:40]!r}..."
        return len(sizes)


# -- PUB/SUB --------------------------------------------------------------------
def publisher(ctl, url, count):
    """Bind a Pub; publish SYNC probes until the test says every subscriber
    saw one, then `count` messages on topic a/, noise on b/, and an end mark."""
    with nnofi.Pub(**OPTS) as pub:
        pub.bind(url)
        ctl.send("bound")
        deadline = time.monotonic() + DEADLINE_S
        while ctl.recv(timeout=0.02, default=None) != "go":
            assert time.monotonic() < deadline, "subscribers never synced"
            pub.send(SYNC)
        for i in range(count):
            pub.send(b"a/%d" % i)
            pub.send(b"b/%d" % i)
        pub.send(b"end")
        ctl.recv()
        return pub.stats["pipes_opened"]


def subscriber(ctl, url):
    with nnofi.Sub(topics=[b"a/", b"end", SYNC], **OPTS) as sub:
        sub.connect(url)
        while sub.recv() != SYNC:
            pass
        ctl.send("synced")
        got = []
        while True:
            m = sub.recv()
            if m == b"end":
                return got
            if m != SYNC:
                got.append(m)


# -- REQ/REP --------------------------------------------------------------------
def rep_server(ctl, url, total):
    with nnofi.Rep(**OPTS) as rep:
        rep.bind(url)
        ctl.send("bound")
        seen = []
        for _ in range(total):
            m = rep.recv()
            seen.append(m)
            rep.send(b"re:" + m)
        ctl.recv()
        return seen


def req_client(url, who, count):
    with nnofi.Req(**OPTS) as req:
        req.connect(url)
        for i in range(count):
            m = b"%s-%d" % (who.encode(), i)
            req.send(m)
            r = req.recv()
            assert r == b"re:" + m, f"asked {m!r}, answered {r!r}"
        return count


# -- PUSH/PULL ------------------------------------------------------------------
def pusher(url, bind, pulls, count, tag, report=False):
    """Send count messages, then close (lingering, as applications do).
    report: (count, seconds the close took, the socket's stats at its
    close), to tell a lost tail's cause (a linger run out, a pipe broken)."""
    push = nnofi.Push(**OPTS)
    try:
        (push.bind if bind else push.connect)(url)
        wait_pipes(push, pulls, "pullers")
        for i in range(count):
            push.send(b"%s-%d" % (tag.encode(), i))
    finally:
        stats = push.stats
        t0 = time.monotonic()
        push.close()
        took = time.monotonic() - t0
    return (count, round(took, 3), stats) if report else count


def puller(ctl, url, bind, pushes=1):
    """Receive until the test says stop and nothing came for 2 s (a
    delivery test: over ofi+tcp across namespaces the last messages have
    been seen to trail the senders' close by more than 200 ms)."""
    with nnofi.Pull(**OPTS) as pull:
        (pull.bind if bind else pull.connect)(url)
        if bind:
            ctl.send("bound")
            wait_pipes(pull, pushes, "pushers")
        got = []
        pull.recv_timeout = 2000
        stop = False
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                got.append(pull.recv())
            except nnofi.Timeout:
                if stop:
                    return got
                stop = ctl.recv(timeout=0, default=None) == "stop"
        raise TimeoutError(f"no stop from the test within {DEADLINE_S}s ({len(got)} messages)")


# -- SURVEYOR/RESPONDENT ----------------------------------------------------------
def surveyor(url, respondents, rounds):
    with nnofi.Surveyor(survey_time=3000, **OPTS) as sv:
        sv.bind(url)
        wait_pipes(sv, respondents, "respondents")
        answers = []
        for r in range(rounds):
            sv.send(b"q%d" % r)
            got = []
            while True:
                try:
                    got.append(sv.recv())
                except nnofi.Timeout:
                    break
                if len(got) == respondents:
                    break
            answers.append(sorted(got))
        return answers


def respondent(url, name, rounds):
    with nnofi.Respondent(**OPTS) as r:
        r.connect(url)
        for _ in range(rounds):
            q = r.recv()
            r.send(name.encode() + b":" + q)
        return rounds


# -- BUS ------------------------------------------------------------------------
def bus_member(ctl, name, own_url, peer_urls, expect):
    """One member of a full mesh: bind own_url, dial peer_urls, say
    "meshed" once all expect pipes are up, send one message on "go", and
    return what the others sent."""
    with nnofi.Bus(**OPTS) as bus:
        bus.bind(own_url)
        for u in peer_urls:
            bus.connect(u)
        wait_pipes(bus, expect, "bus peers")
        ctl.send("meshed")
        assert ctl.recv() == "go"
        bus.send(b"from " + name.encode())
        got = sorted(bus.recv() for _ in range(expect))
        bus.recv_timeout = 300
        try:
            extra = bus.recv()
            raise AssertionError(f"{name} got a message twice or its own: {extra!r}")
        except nnofi.Timeout:
            pass
        ctl.send("received")
        ctl.recv()  # everyone has theirs: closing now loses nothing
        return got
