"""PUSH/PULL: load-balanced one way, fair-queued at the receiver."""
import collections
import subprocess
import sys
import threading
import time

import pytest

import nnofi
from protohelpers import OPTS, Worker, wait_pipes


def test_push_pull_one_to_one(url):
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        for i in range(100):
            push.send(b"m%d" % i)
        assert [pull.recv() for _ in range(100)] == [b"m%d" % i for i in range(100)]


def test_push_binds_pull_connects(url):
    with nnofi.Push(**OPTS) as push, nnofi.Pull(**OPTS) as pull:
        pull.connect(push.bind(url).url)
        push.send(b"reverse roles")
        assert pull.recv() == b"reverse roles"


def test_many_push_to_one_pull(url):
    """Every message of every sender arrives, each sender's in order."""
    senders, per_sender = 4, 500
    with nnofi.Pull(**OPTS) as pull:
        ep = pull.bind(url)
        pushes = [nnofi.Push(**OPTS) for _ in range(senders)]
        try:
            for p in pushes:
                p.connect(ep.url)

            def sender(k):
                def run():
                    for i in range(per_sender):
                        pushes[k].send(b"%d:%d" % (k, i))

                return run

            workers = [Worker(sender(k), name=f"push{k}") for k in range(senders)]
            for w in workers:
                w.start()
            got = [pull.recv() for _ in range(senders * per_sender)]
            for w in workers:
                w.join(10)
                assert not w.is_alive()
                assert w.error is None, w.error
            time.sleep(0.05)
            with pytest.raises(nnofi.Again):  # nothing extra is left
                pull.recv(block=False)
        finally:
            for p in pushes:
                p.close()

    by_sender = collections.defaultdict(list)
    for m in got:
        k, i = m.split(b":")
        by_sender[int(k)].append(int(i))
    assert sorted(by_sender) == list(range(senders))
    for k in range(senders):
        assert by_sender[k] == list(range(per_sender)), f"sender {k} out of order or incomplete"


def test_one_push_to_many_pulls_round_robin(url):
    """Load balancing: each PULL gets a share, the total is exact, no
    message is duplicated, each PULL sees its share in send order."""
    n_pulls, total = 3, 300
    with nnofi.Push(**OPTS) as push:
        ep = push.bind(url)
        pulls = [nnofi.Pull(**OPTS) for _ in range(n_pulls)]
        try:
            for p in pulls:
                p.connect(ep.url)
            wait_pipes(push, n_pulls)
            for i in range(total):
                push.send(b"%d" % i)

            got = [[] for _ in pulls]
            deadline = time.monotonic() + 5.0
            while sum(map(len, got)) < total:
                assert time.monotonic() < deadline, f"only {sum(map(len, got))}/{total} arrived"
                idle = True
                for k, p in enumerate(pulls):
                    try:
                        got[k].append(int(p.recv(block=False)))
                        idle = False
                    except nnofi.Again:
                        pass
                if idle:
                    time.sleep(0.001)
            time.sleep(0.1)
            for p in pulls:  # no extra messages anywhere
                with pytest.raises(nnofi.Again):
                    p.recv(block=False)
        finally:
            for p in pulls:
                p.close()

    counts = [len(g) for g in got]
    assert sum(counts) == total
    assert all(c > 0 for c in counts), f"some PULL got nothing: {counts}"
    assert sorted(x for g in got for x in g) == list(range(total))
    for g in got:
        assert g == sorted(g), "a PULL saw its share out of order"
    # Round-robin over ready peers: with small messages and nobody slow the
    # spread is even (allow slack for a peer whose buffer was momentarily busy).
    assert max(counts) - min(counts) <= total // 3, f"uneven spread {counts}"


def test_push_blocks_without_pull_then_delivers(url, transport):
    """PUSH with no PULL connected waits (never drops); a PULL arriving
    later gets the message."""
    if transport == "tcp":
        pytest.skip("tcp port 0 is only known after bind")
    with nnofi.Push(send_timeout=200, recv_timeout=5000) as push:
        push.connect(url)
        with pytest.raises(nnofi.Timeout):
            push.send(b"nobody there")
        with nnofi.Pull(**OPTS) as pull:
            pull.bind(url)
            push.send_timeout = 5000
            push.send(b"now somebody")
            assert pull.recv() == b"now somebody"


def test_pull_send_not_supported(url):
    with nnofi.Pull(**OPTS) as pull:
        pull.bind(url)
        with pytest.raises(nnofi.NotSupported):
            pull.send(b"x")
        with pytest.raises(nnofi.NotSupported):
            pull.send(b"x", block=False)


def test_push_recv_not_supported(url):
    with nnofi.Push(**OPTS) as push:
        push.bind(url)
        with pytest.raises(nnofi.NotSupported):
            push.recv()
        with pytest.raises(nnofi.NotSupported):
            push.recv(block=False)
        with pytest.raises(nnofi.NotSupported):
            push.recv_msg()


def test_pull_fair_queues(url):
    """With two busy senders, the receiver does not starve either: within
    the first messages received, both senders appear."""
    with nnofi.Pull(**OPTS) as pull:
        ep = pull.bind(url)
        with nnofi.Push(**OPTS) as p1, nnofi.Push(**OPTS) as p2:
            p1.connect(ep.url)
            p2.connect(ep.url)
            wait_pipes(pull, 2)
            for i in range(50):
                p1.send(b"1")
                p2.send(b"2")
            first = [pull.recv() for _ in range(100)]
            assert first.count(b"1") == 50 and first.count(b"2") == 50
            # both senders are interleaved early on, not one drained after the other
            head = first[:40]
            assert b"1" in head and b"2" in head, first


def live_messages():
    from nnofi._native import ffi, lib

    socks, pipes, msgs = ffi.new("int64_t *"), ffi.new("int64_t *"), ffi.new("int64_t *")
    lib.nnofi_live_counts(socks, pipes, msgs)
    return msgs[0]


def test_a_receive_reads_no_more_than_the_buffer_holds(stream_addrs):
    """A receive that reads the connection stops once recv_buffer bytes
    wait, and the rest stays in the kernel's buffers. It read on for 4 MiB
    a turn before: a PULL taking bursts of 64 B messages held tens of
    thousands of them for a 64 KiB buffer."""
    with nnofi.Pull(recv_buffer=64 * 1024, **OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(stream_addrs.new()).url)
        burst, bursts = [b"x" * 64] * 1024, 300
        sender = threading.Thread(target=lambda: [push.send_many(burst) for _ in range(bursts)], daemon=True)
        before = live_messages()
        sender.start()
        got, most = 0, 0
        while got < len(burst) * bursts:
            got += len(pull.recv_many(4096))
            most = max(most, live_messages() - before)
        sender.join(5)
        # the PULL's 64 KiB (1,024 messages), one 64 KiB read of frames (910), the PUSH's send buffer (1,820)
        assert most < 6000, f"up to {most} messages held in memory"


SENDER = """
import sys, nnofi
push = nnofi.Push(send_timeout=10000, linger=-1)
push.connect(sys.argv[1])
for i in range(65):
    push.send(bytes([i]) * 65536)
push.close()
"""


def test_what_a_peer_sent_before_it_left_arrives_past_a_full_buffer(stream_addrs):
    """A PUSH process sends more than the PULL's buffer holds and exits;
    the PULL takes the rest from the kernel once it sees the peer go. (It
    dropped them, with the pipe, while its buffer was full: 56-64 of 65
    messages of 64 KiB arrived.)"""
    with nnofi.Pull(recv_buffer=64 * 1024, **OPTS) as pull:
        url = pull.bind(stream_addrs.new()).url
        sender = subprocess.Popen([sys.executable, "-c", SENDER, url])
        try:
            got = []
            for _ in range(65):
                got.append(pull.recv())
                time.sleep(0.002)  # slower than the sender: its last bytes wait in the kernel when it leaves
            assert sender.wait(10) == 0
        finally:
            sender.kill()
            sender.wait()
        assert got == [bytes([i]) * 65536 for i in range(65)]
