"""tcp and ipc write a burst of small sends together (one sendmsg for
many), while a send that answers a receive goes out at once."""
import threading
import time

import pytest

import nnofi

OPTS = dict(recv_timeout=5000, send_timeout=5000)


@pytest.fixture(params=["ipc", "tcp"])
def url(request, tmp_path):
    return {"ipc": f"ipc://{tmp_path}/w.ipc", "tcp": "tcp://127.0.0.1:0"}[request.param]


def test_burst_of_small_sends_shares_writes(url):
    count = 5000
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        push.send(b"first")  # connected: the burst below is not waiting for a pipe
        assert pull.recv() == b"first"
        got = []
        reader = threading.Thread(target=lambda: got.extend(pull.recv() for _ in range(count)), daemon=True)
        reader.start()
        before = push.stats["writes"]
        for i in range(count):
            push.send(b"%d" % i)
        reader.join(10)
        writes = push.stats["writes"] - before
        assert got == [b"%d" % i for i in range(count)]
        print(f"\n{count} sends in {writes} writes")
        assert writes <= count // 2, f"{writes} writes for {count} back-to-back sends"


def test_send_after_receive_is_written_at_once(url):
    """REQ/REP: every request and reply is its own write (never held back
    for a batch: it is what the peer waits for)."""
    rounds = 300
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)

        def serve():
            for _ in range(rounds):
                rep.send(rep.recv())

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        for i in range(rounds):
            req.send(b"%d" % i)
            assert req.recv() == b"%d" % i
        server.join(10)
        assert rep.stats["writes"] == rep.stats["msgs_sent"] == rounds
        assert req.stats["writes"] == req.stats["msgs_sent"] == rounds


def test_burst_then_close_loses_nothing(url):
    count = 3000
    with nnofi.Pull(**OPTS) as pull:
        ep = pull.bind(url)
        with nnofi.Push(connect=ep.url, **OPTS) as push:
            for i in range(count):
                push.send(b"%d" % i)
        # closed at once: linger writes the queued burst out first
        assert [pull.recv() for _ in range(count)] == [b"%d" % i for i in range(count)]


def test_burst_tail_goes_out_while_the_sender_idles(url):
    """The last messages of a burst leave on their own (the background
    thread writes out what is left), with no further send, receive or
    close on the sending socket."""
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        push.send(b"first")
        assert pull.recv() == b"first"
        for n in (2, 3, 200, 20000):  # short bursts and one long enough to back off
            burst = [b"%d" % i for i in range(n)]
            t0 = time.perf_counter()
            for m in burst:
                push.send(m)
            assert [pull.recv() for _ in range(n)] == burst
            waited = time.perf_counter() - t0
            print(f"\nburst of {n}: all received in {waited * 1e3:.2f} ms")
