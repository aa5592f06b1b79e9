"""REQ/REP: requests load-balanced, replies routed back to the asker,
stale replies dropped, unanswered requests resent."""
import threading
import time

import pytest

import nnofi
from protohelpers import OPTS, Worker, finish, wait_pipes


def test_reqrep_basic(url):
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"ping")
        assert rep.recv() == b"ping"
        rep.send(b"pong")
        assert req.recv() == b"pong"


def test_reqrep_recv_msg_and_empty_messages(url):
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"")
        msg = rep.recv_msg()
        assert len(msg) == 0 and bytes(msg) == b""
        rep.send(b"")
        assert req.recv() == b""


def test_several_req_to_one_rep(url):
    """Each REQ gets the answer to its own request, never another's."""
    n_req, per_req = 4, 50
    with nnofi.Rep(**OPTS) as rep:
        ep = rep.bind(url)

        def server():
            for _ in range(n_req * per_req):
                q = rep.recv()
                rep.send(b"answer to " + q)

        reqs = [nnofi.Req(**OPTS) for _ in range(n_req)]
        try:
            for r in reqs:
                r.connect(ep.url)

            def client(k):
                def run():
                    for i in range(per_req):
                        q = b"req %d #%d" % (k, i)
                        reqs[k].send(q)
                        a = reqs[k].recv()
                        assert a == b"answer to " + q, (q, a)

                return run

            workers = [Worker(server, name="rep")]
            workers += [Worker(client(k), name=f"req{k}") for k in range(n_req)]
            for w in workers:
                w.start()
            finish(workers, 30)
        finally:
            for r in reqs:
                r.close()


def test_one_req_to_several_reps(url):
    """Requests are spread over the REPs; every reply matches its request."""
    n_rep, total = 3, 30
    stop = threading.Event()
    with nnofi.Req(**OPTS) as req:
        ep = req.bind(url)
        reps = [nnofi.Rep(recv_timeout=100, send_timeout=5000) for _ in range(n_rep)]
        try:
            for r in reps:
                r.connect(ep.url)
            wait_pipes(req, n_rep)

            def server(k):
                def run():
                    while not stop.is_set():
                        try:
                            q = reps[k].recv()
                        except nnofi.Timeout:
                            continue
                        reps[k].send(b"%d|" % k + q)

                return run

            workers = [Worker(server(k), name=f"rep{k}") for k in range(n_rep)]
            for w in workers:
                w.start()
            answered_by = []
            try:
                for i in range(total):
                    q = b"q%d" % i
                    req.send(q)
                    a = req.recv()
                    k, _, body = a.partition(b"|")
                    assert body == q, (q, a)
                    answered_by.append(int(k))
            finally:
                stop.set()
                finish(workers, 10)
        finally:
            for r in reps:
                r.close()
    assert sorted(set(answered_by)) == list(range(n_rep)), f"not every REP was used: {answered_by}"


def test_req_recv_before_send_is_bad_state(url):
    with nnofi.Req(**OPTS) as req:
        req.bind(url)
        with pytest.raises(nnofi.BadState):
            req.recv()
        with pytest.raises(nnofi.BadState):
            req.recv(block=False)


def test_req_recv_twice_is_bad_state(url):
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"q")
        rep.send(rep.recv())
        assert req.recv() == b"q"
        with pytest.raises(nnofi.BadState):
            req.recv()


def test_rep_send_before_recv_is_bad_state(url):
    with nnofi.Rep(**OPTS) as rep:
        rep.bind(url)
        with pytest.raises(nnofi.BadState):
            rep.send(b"unasked")


def test_rep_send_twice_is_bad_state(url):
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"q")
        assert rep.recv() == b"q"
        rep.send(b"a")
        with pytest.raises(nnofi.BadState):
            rep.send(b"again")
        assert req.recv() == b"a"


def test_new_request_cancels_pending_one(url):
    """A second send abandons the first request: its (late) reply is
    dropped and recv returns the reply to the second."""
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"first")
        assert rep.recv() == b"first"
        req.send(b"second")  # cancels "first"
        rep.send(b"reply to first")  # stale: must be dropped by the REQ
        assert rep.recv() == b"second"
        rep.send(b"reply to second")
        assert req.recv() == b"reply to second"
        # and the stale one does not turn up later either
        req.send(b"third")
        assert rep.recv() == b"third"
        rep.send(b"reply to third")
        assert req.recv() == b"reply to third"


def test_new_request_drops_reply_already_arrived(url):
    """The reply to the first request has already reached the REQ when the
    second request is sent: it must still never be returned."""
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"first")
        assert rep.recv() == b"first"
        rep.send(b"reply to first")
        time.sleep(0.2)  # let it arrive at the REQ (queued, not read)
        req.send(b"second")
        assert rep.recv() == b"second"
        rep.send(b"reply to second")
        assert req.recv() == b"reply to second"


def test_req_resends_after_resend_ivl(url):
    """A REP that takes the request but never answers that copy: the REQ
    sends it again after req_resend_ivl, and the answer to the resent copy
    completes the request."""
    ivl_ms = 300
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(req_resend_ivl=ivl_ms, **OPTS) as req:
        assert req.req_resend_ivl == ivl_ms
        req.connect(rep.bind(url).url)
        req.send(b"please answer")
        assert rep.recv() == b"please answer"  # first copy: ignored
        t0 = time.monotonic()
        assert rep.recv() == b"please answer"  # the resent copy
        waited = time.monotonic() - t0
        assert waited >= ivl_ms / 1000 * 0.6, f"resent too early: {waited:.3f}s"
        assert waited < ivl_ms / 1000 + 2.0, f"resent too late: {waited:.3f}s"
        rep.send(b"answered")
        assert req.recv() == b"answered"
        # answered: no further copies
        rep.recv_timeout = 2 * ivl_ms
        with pytest.raises(nnofi.Timeout):
            rep.recv()


def test_resend_deadline_follows_the_latest_request(url):
    """Each request's resend comes its own interval after it was sent,
    whether that is later than the previous request's (the socket's timer,
    armed for the earlier deadline, fires and is armed again) or sooner."""
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(req_resend_ivl=300, **OPTS) as req:
        req.connect(rep.bind(url).url)
        for first_ivl, ivl_ms in ((300, 900), (60000, 300)):
            req.req_resend_ivl = first_ivl
            req.send(b"superseded")
            assert rep.recv() == b"superseded"
            req.req_resend_ivl = ivl_ms
            t0 = time.monotonic()
            req.send(b"latest")
            assert rep.recv() == b"latest"  # first copy: ignored
            assert rep.recv() == b"latest"  # the resent copy
            waited = time.monotonic() - t0
            assert ivl_ms / 1000 * 0.6 <= waited < ivl_ms / 1000 + 2.0, (first_ivl, ivl_ms, waited)
            rep.send(b"answered")
            assert req.recv() == b"answered"


def test_request_buffer_may_change_once_send_returns(url):
    """A big request the kernel takes only in part (the REP is not reading
    yet) is still being written after send() returns; the caller may change
    its buffer at once: the REP gets the bytes it held at the call."""
    size = 16 << 20
    with nnofi.Rep(recv_max_size=-1, **OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        wait_pipes(req, 1)
        buf = bytearray(b"a" * size)
        req.send(buf)
        buf[:] = b"b" * size
        got = rep.recv()
        assert len(got) == size and got.count(b"a") == size, "the REP got bytes written after send() returned"
        rep.send(b"ok")
        assert req.recv() == b"ok"


def test_req_resends_while_waiting_in_recv(url):
    """The usual pattern: the REQ thread sits in recv() while its first copy
    goes unanswered; the resent copy is answered and recv() returns that."""
    ivl_ms = 300
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(req_resend_ivl=ivl_ms, **OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"please answer")
        waiter = Worker(req.recv, name="req-recv")
        waiter.start()
        assert rep.recv() == b"please answer"  # first copy: ignored
        t0 = time.monotonic()
        assert rep.recv() == b"please answer"  # the resent copy
        waited = time.monotonic() - t0
        assert ivl_ms / 1000 * 0.6 <= waited < ivl_ms / 1000 + 2.0, waited
        rep.send(b"answered")
        finish([waiter], 5)
        assert waiter.result == b"answered"


def test_request_survives_death_of_its_rep(url):
    """The REP that got the request goes away unanswered: the request goes
    to the next REP (at the latest on resend) and is answered there."""
    with nnofi.Req(req_resend_ivl=500, **OPTS) as req:
        ep = req.bind(url)
        with nnofi.Rep(**OPTS) as rep1:
            rep1.connect(ep.url)
            wait_pipes(req, 1)
            req.send(b"q")
            assert rep1.recv() == b"q"
        with nnofi.Rep(**OPTS) as rep2:
            rep2.connect(ep.url)
            assert rep2.recv() == b"q"
            rep2.send(b"a from rep2")
            assert req.recv() == b"a from rep2"


def test_rep_routes_reply_to_asker_interleaved(url):
    """Two REQs both ask before the REP reads either request; the REP
    answers each as it reads it, and every reply goes back to its asker."""
    with nnofi.Rep(**OPTS) as rep:
        ep = rep.bind(url)
        with nnofi.Req(**OPTS) as r1, nnofi.Req(**OPTS) as r2:
            r1.connect(ep.url)
            r2.connect(ep.url)
            r1.send(b"from r1")
            r2.send(b"from r2")
            for _ in range(2):
                q = rep.recv()
                rep.send(b"re: " + q)
            assert r1.recv() == b"re: from r1"
            assert r2.recv() == b"re: from r2"


def test_huge_resend_interval_costs_no_cpu_while_waiting():
    """req_resend_ivl takes any positive ms: a resend due in ~146 million
    years must simply never come, not keep the background thread busy."""
    import resource

    with nnofi.Rep(**OPTS) as rep, nnofi.Req(req_resend_ivl=2**62, **OPTS) as req:
        req.connect(rep.bind("tcp://127.0.0.1:0").url)
        req.send(b"q")
        assert rep.recv() == b"q"
        before = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(0.5)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        print(f"\nCPU in 0.5 s of waiting: {cpu * 1e3:.0f} ms")
        assert cpu < 0.2, f"{cpu:.2f} s of CPU in 0.5 s idle: a timer keeps firing"
