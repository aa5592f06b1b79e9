"""ofi:// on the libfabric providers under test (ofi_providers.py): every
socket type, big messages, reconnect, and provider/fabric selection."""
import threading
import time

import pytest

import nnofi

from ofi_providers import MSG_PROVIDERS, SOCKETS_CONNECT_RACE, TESTED, url_for

OPTS = dict(recv_timeout=5000, send_timeout=5000)


def test_verbs_needs_an_rdma_device():
    if "verbs" not in MSG_PROVIDERS:
        pytest.skip("no verbs provider: this kernel has no RDMA device (no rdma_rxe, no HCA)")


def test_shm_within_one_process_is_refused():
    if "shm" not in TESTED:
        pytest.skip("no shm provider here")
    with nnofi.Pair() as a, nnofi.Pair() as b:
        url = a.bind(url_for("shm")).url
        with pytest.raises(nnofi.NotSupported, match="inproc://"):
            b.connect(url)


def test_endpoint_reports_fabric_and_provider(provider):
    with nnofi.Pair() as a:
        ep = a.bind(url_for(provider))
        assert ep.url.startswith("ofi://127.0.0.1:")
        assert ep.url.endswith(":" + provider)
        port = int(ep.url.split("@")[0].rsplit(":", 1)[1])
        assert port > 0


def test_pair_and_reqrep(provider):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url_for(provider)).url)
        a.send(b"to b")
        assert b.recv() == b"to b"
        b.send(b"to a")
        assert a.recv() == b"to a"
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url_for(provider)).url)
        for i in range(100):
            req.send(b"q%d" % i)
            rep.send(rep.recv() + b"!")
            assert req.recv() == b"q%d!" % i


@pytest.mark.parametrize("size", [0, 1, 65536 - 16, 65536, 3 * 1024 * 1024 + 7])
def test_message_sizes_cross_buffers(provider, size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with nnofi.Pull(recv_max_size=-1, **OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url_for(provider)).url)
        push.send(payload)
        push.send(b"after")
        assert pull.recv() == payload
        assert pull.recv() == b"after"


def test_many_small_messages_in_order(provider):
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url_for(provider)).url)
        sender = threading.Thread(target=lambda: [push.send(b"%d" % i) for i in range(5000)])
        sender.start()
        got = [pull.recv() for _ in range(5000)]
        sender.join(10)
        assert got == [b"%d" % i for i in range(5000)]


def test_pubsub_survey_bus(provider):
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(topics=b"t", **OPTS) as sub:
        sub.connect(pub.bind(url_for(provider)).url)
        deadline = time.monotonic() + 5
        sub.recv_timeout = 50
        while True:  # a subscriber gets what is published after it joined
            pub.send(b"t-sync")
            try:
                if sub.recv() == b"t-sync":
                    break
            except nnofi.Timeout:
                assert time.monotonic() < deadline
        sub.recv_timeout = 5000
        while True:
            try:
                sub.recv(block=False)
            except nnofi.Again:
                break
        pub.send(b"other")
        pub.send(b"topic")
        assert sub.recv() == b"topic"
    with nnofi.Surveyor(survey_time=2000, **OPTS) as sv, nnofi.Respondent(**OPTS) as r:
        r.connect(sv.bind(url_for(provider)).url)
        deadline = time.monotonic() + 5
        while sv.stats["pipes_opened"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sv.send(b"who")
        r.send(r.recv() + b" me")
        assert sv.recv() == b"who me"
    with nnofi.Bus(**OPTS) as b1, nnofi.Bus(**OPTS) as b2:
        b2.connect(b1.bind(url_for(provider)).url)
        deadline = time.monotonic() + 5
        while b1.stats["pipes_opened"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        b1.send(b"hi")
        assert b2.recv() == b"hi"


def test_wrong_protocol_is_refused(provider):
    with nnofi.Pull(**OPTS) as pull, nnofi.Pub(**OPTS) as pub:
        pub.connect(pull.bind(url_for(provider)).url)
        deadline = time.monotonic() + 5
        while pull.stats["handshakes_rejected"] == 0:
            assert time.monotonic() < deadline, pull.stats
            time.sleep(0.02)
        assert pull.stats["pipes_opened"] == 0


def test_reconnect_after_listener_restarts(provider):
    with nnofi.Push(reconnect_ivl=50, **OPTS) as push:
        pull = nnofi.Pull(**OPTS)
        url = pull.bind(url_for(provider)).url
        push.connect(url)
        push.send(b"one")
        assert pull.recv() == b"one"
        pull.close()
        pull = nnofi.Pull(recv_timeout=200)
        deadline = time.monotonic() + 10
        while True:
            try:
                pull.bind(url)
                break
            except nnofi.AddressInUse:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        while True:  # messages sent into the dead connection may be lost
            push.send(b"two", block=False) if push.stats["pipes_opened"] >= 2 else time.sleep(0.02)
            try:
                if pull.recv() == b"two":
                    break
            except nnofi.Timeout:
                assert time.monotonic() < deadline, push.stats
        pull.close()


def test_unknown_provider_lists_what_exists():
    with nnofi.Pair() as a:
        with pytest.raises(nnofi.BadURL) as err:
            a.bind("ofi://127.0.0.1:0@nosuchprovider")
        assert "MSG endpoints here:" in str(err.value)
        for name in [p for p in ("tcp", "sockets") if p in MSG_PROVIDERS]:
            assert name in str(err.value)


def test_default_provider_is_chosen_and_reported():
    if not TESTED:
        pytest.skip("no connected-endpoint provider")
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        ep = a.bind("ofi://127.0.0.1:0")
        assert ep.url.rsplit(":", 1)[1] == TESTED[-1] if "verbs" in TESTED else "tcp"
        b.connect(ep.url)
        b.send(b"x")
        assert a.recv() == b"x"


def test_fabric_name_selects(provider):
    fabrics = [p.fabric for p in nnofi.fabric.providers(provider) if p.ep_type == "MSG" and p.address == "127.0.0.1"]
    if not fabrics:
        pytest.skip(f"{provider} has no fabric on 127.0.0.1")
    with nnofi.Pair() as a:
        ep = a.bind(f"ofi://127.0.0.1:0@{fabrics[0]}:{provider}")
        assert f"@{fabrics[0]}:{provider}" in ep.url


def _push_and_exit(url, count):
    import nnofi as n

    with n.Push(connect=url, send_timeout=5000) as push:
        for i in range(count):
            push.send(b"%d" % i + b"-" * 3000)
    # leaving the with-block closes the socket: linger must deliver the rest


def test_pushers_closing_at_once_lose_nothing(provider):
    """Two PUSHes close right after their last send, ten times over: the
    PULL gets every message in order, and each close reaches it as a BYE
    (an orderly close), not as a broken pipe."""
    if provider == "sockets":
        pytest.skip(SOCKETS_CONNECT_RACE)
    count, rounds = 200, 10
    with nnofi.Pull(**OPTS) as pull:
        url = pull.bind(url_for(provider)).url

        def push(tag):
            with nnofi.Push(connect=url, **OPTS) as p:
                for i in range(count):
                    p.send(b"%s-%d" % (tag, i))

        for r in range(rounds):
            threads = [threading.Thread(target=push, args=(tag,)) for tag in (b"a", b"b")]
            for t in threads:
                t.start()
            got = [pull.recv() for _ in range(2 * count)]
            for t in threads:
                t.join(10)
            for tag in (b"a", b"b"):
                assert [m for m in got if m.startswith(tag + b"-")] == [b"%s-%d" % (tag, i) for i in range(count)]
        # nothing more comes (no duplicates) while the last closes land
        pull.recv_timeout = 50
        deadline = time.monotonic() + 5
        while pull.stats["pipes_closed"] + pull.stats["pipes_broken"] < 2 * rounds:
            assert time.monotonic() < deadline, pull.stats
            with pytest.raises(nnofi.Timeout):
                pull.recv()
        assert pull.stats["pipes_broken"] == 0, pull.stats

def test_close_lingers_until_sent(any_provider):
    provider = any_provider
    import multiprocessing as mp

    with nnofi.Pull(**OPTS) as pull:
        url = pull.bind(url_for(provider)).url
        proc = mp.get_context("spawn").Process(target=_push_and_exit, args=(url, 500))
        proc.start()
        try:
            got = [pull.recv() for _ in range(500)]
        finally:
            proc.join(20)
            if proc.is_alive():
                proc.kill()
        assert [int(m.split(b"-")[0]) for m in got] == list(range(500))
        assert proc.exitcode == 0


@pytest.mark.parametrize("receiver, sender", [(nnofi.Pull, nnofi.Push), (nnofi.Rep, nnofi.Req),
                                              (nnofi.Pair, nnofi.Pair)])
def test_idle_receiver_sees_its_peer_leave(provider, receiver, sender):
    """A socket that receives once and then waits elsewhere still ends the
    pipe of a peer that closes (its BYE and hang-up are read by the
    background thread): an idle PULL kept a closed PUSH's connection, and
    its fds, for good."""
    with receiver(**OPTS) as rx:
        url = rx.bind(url_for(provider)).url
        tx = sender(**OPTS)
        tx.connect(url)
        tx.send(b"hello")
        assert rx.recv() == b"hello"
        tx.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            stats = rx.stats
            if stats["pipes_closed"] + stats["pipes_broken"] == 1:
                break
            time.sleep(0.01)
        else:
            pytest.fail(f"the receiver kept its closed peer's pipe for 5 s: {rx.stats}")
