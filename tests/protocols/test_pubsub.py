"""PUB/SUB: prefix filtering, unsubscribe, fan-out, slow subscribers.

A subscriber only sees what is published after its connection is up, so
each test first waits for that with SYNC probes (sync_subs) instead of a
fixed sleep.
"""
import time

import pytest

import nnofi
from protohelpers import OPTS, SYNC, recv_all, sync_subs


def test_prefix_filtering(url):
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(topics=[b"weather.", SYNC], **OPTS) as sub:
        sub.connect(pub.bind(url).url)
        sync_subs(pub, [sub])
        sent = [b"weather.rain", b"sport.golf", b"weather", b"weather.sun", b"", b"xweather.fog", b"weather.snow"]
        for m in sent:
            pub.send(m)
        pub.send(SYNC)  # end marker: everything before it was filtered or delivered
        got = []
        while True:
            m = sub.recv()
            if m == SYNC:
                break
            got.append(m)
        assert got == [b"weather.rain", b"weather.sun", b"weather.snow"]


def test_nothing_arrives_before_subscribe(url):
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(**OPTS) as sub:
        sub.connect(pub.bind(url).url)
        # Wait for the connection on the publisher's side, then publish:
        # with no subscription, nothing may come through.
        deadline = time.monotonic() + 5
        while pub.stats["pipes_opened"] < 1:
            assert time.monotonic() < deadline, f"no connection: {pub.stats}"
            time.sleep(0.005)
        for i in range(20):
            pub.send(b"msg %d" % i)
        sub.recv_timeout = 300
        with pytest.raises(nnofi.Timeout):
            sub.recv()
        sub.subscribe(SYNC)
        sync_subs(pub, [sub])
        pub.send(b"msg after")
        with pytest.raises(nnofi.Timeout):
            sub.recv()


def test_empty_prefix_subscribes_to_all(url):
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(topics=b"", **OPTS) as sub:
        sub.connect(pub.bind(url).url)
        sync_subs(pub, [sub])
        sent = [b"", b"a", b"\x00\xff binary", b"z" * 5000]
        for m in sent:
            pub.send(m)
        assert [sub.recv() for _ in sent] == sent


def test_several_prefixes_and_str_topics(url):
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(topics=["a/", b"b/"], **OPTS) as sub:
        sub.subscribe(SYNC)
        sub.connect(pub.bind(url).url)
        sync_subs(pub, [sub])
        for m in [b"a/1", b"c/1", b"b/1", b"ab", b"a/2"]:
            pub.send(m)
        pub.send(SYNC)
        got = []
        while (m := sub.recv()) != SYNC:
            got.append(m)
        assert got == [b"a/1", b"b/1", b"a/2"]


def test_overlapping_prefixes_deliver_once(url):
    """A message matching two subscriptions arrives once."""
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(topics=[b"a", b"ab", b"abc", SYNC], **OPTS) as sub:
        sub.connect(pub.bind(url).url)
        sync_subs(pub, [sub])
        pub.send(b"abcd")
        pub.send(SYNC)
        assert sub.recv() == b"abcd"
        assert sub.recv() == SYNC


def test_unsubscribe(url):
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(topics=[b"keep", b"drop", SYNC], **OPTS) as sub:
        sub.connect(pub.bind(url).url)
        sync_subs(pub, [sub])
        pub.send(b"keep 1")
        pub.send(b"drop 1")
        assert sub.recv() == b"keep 1"
        assert sub.recv() == b"drop 1"

        sub.unsubscribe(b"drop")
        pub.send(b"drop 2")
        pub.send(b"keep 2")
        pub.send(SYNC)
        assert sub.recv() == b"keep 2"
        assert sub.recv() == SYNC

        # unsubscribing what is not subscribed is an error; so is doing it twice
        with pytest.raises(ValueError):
            sub.unsubscribe(b"drop")
        with pytest.raises(ValueError):
            sub.unsubscribe(b"never")
        with pytest.raises(ValueError):
            sub.unsubscribe(b"kee")  # a prefix of a subscription is not one

        # subscribing again works
        sub.subscribe("drop")
        pub.send(b"drop 3")
        assert sub.recv() == b"drop 3"

        # unsubscribing everything: nothing more arrives
        for t in (b"keep", "drop", SYNC):
            sub.unsubscribe(t)
        pub.send(b"keep 3")
        pub.send(SYNC)
        sub.recv_timeout = 300
        with pytest.raises(nnofi.Timeout):
            sub.recv()


def test_one_pub_several_subs(new_url):
    n_subs = 4
    topics = [b"t0", b"t1", b"", b"t1"]
    with nnofi.Pub(**OPTS) as pub:
        ep = pub.bind(new_url())
        subs = [nnofi.Sub(topics=[t, SYNC] if t else t, **OPTS) for t in topics]
        try:
            for s in subs:
                s.connect(ep.url)
            sync_subs(pub, subs)
            sent = [b"t0:%d" % i if i % 2 else b"t1:%d" % i for i in range(100)]
            for m in sent:
                pub.send(m)
            pub.send(SYNC)
            for s, t in zip(subs, topics):
                got = []
                while (m := s.recv()) != SYNC:
                    got.append(m)
                assert got == [m for m in sent if m.startswith(t)], f"subscriber to {t!r}"
            assert pub.stats["pipes_opened"] >= n_subs
        finally:
            for s in subs:
                s.close()


def test_sub_connects_to_several_pubs(new_url):
    """A subscriber fair-queues from every publisher it is connected to."""
    with nnofi.Pub(**OPTS) as p1, nnofi.Pub(**OPTS) as p2, nnofi.Sub(topics=b"", **OPTS) as sub:
        sub.connect(p1.bind(new_url()).url)
        sub.connect(p2.bind(new_url()).url)
        sync_subs(p1, [sub])
        sync_subs(p2, [sub])
        for i in range(10):
            p1.send(b"p1 %d" % i)
            p2.send(b"p2 %d" % i)
        got = [sub.recv() for _ in range(20)]
        assert [m for m in got if m.startswith(b"p1")] == [b"p1 %d" % i for i in range(10)]
        assert [m for m in got if m.startswith(b"p2")] == [b"p2 %d" % i for i in range(10)]


def test_pub_without_subscribers_does_not_block(url):
    with nnofi.Pub(send_timeout=1000, recv_timeout=1000) as pub:
        pub.bind(url)
        t0 = time.monotonic()
        for i in range(1000):
            pub.send(b"into the void %d" % i)
        pub.send(b"nonblocking", block=False)
        assert time.monotonic() - t0 < 2.0


N_SLOW = 20000
SIZE = 1024


def _flood_slow_sub(url):
    """PUB sends N_SLOW x 1 KiB to a SUB that does not read; returns what
    the SUB then gets, and both sockets' stats."""
    with nnofi.Pub(send_timeout=1000) as pub, nnofi.Sub(
        topics=[b"", SYNC], recv_timeout=5000, recv_buffer=64 * 1024
    ) as sub:
        sub.connect(pub.bind(url).url)
        sync_subs(pub, [sub])
        pad = b"x" * (SIZE - 4)
        t0 = time.monotonic()
        for i in range(N_SLOW):
            pub.send(i.to_bytes(4, "big") + pad)  # raises nnofi.Timeout if it ever blocks 1 s
        elapsed = time.monotonic() - t0
        got = recv_all(sub, quiet_ms=500)
        return elapsed, got, sub.stats, pub.stats


def test_slow_sub_drops_while_pub_keeps_sending(url):
    elapsed, got, sub_stats, pub_stats = _flood_slow_sub(url)
    assert elapsed < 15, f"publishing took {elapsed:.1f}s: the PUB waited for the slow SUB"
    seq = [int.from_bytes(m[:4], "big") for m in got]
    assert all(len(m) == SIZE for m in got)
    assert seq == sorted(set(seq)), "messages duplicated or out of order"
    # The SUB's buffer is 64 KiB (64 messages); tcp's kernel buffers may
    # absorb some more, but far from all 20 MiB.
    assert 0 < len(got) < N_SLOW, f"received {len(got)} of {N_SLOW}"
    assert len(got) < N_SLOW * 3 // 4, f"received {len(got)} of {N_SLOW}: no buffer limit?"
    # Every message was either received or counted as dropped somewhere
    # (in the SUB's queue, or in the PUB's queue towards the slow SUB).
    dropped = sub_stats["msgs_dropped"] + pub_stats["msgs_dropped"]
    assert dropped > 0
    assert len(got) + dropped == N_SLOW, (len(got), sub_stats, pub_stats)


def test_slow_sub_counts_its_drops(url):
    """The SUB counts the messages it had to drop in its own stats (the
    number a subscriber looks at to learn it missed something)."""
    _, got, sub_stats, pub_stats = _flood_slow_sub(url)
    assert len(got) < N_SLOW
    assert sub_stats["msgs_dropped"] > 0, (
        f"SUB received {len(got)} of {N_SLOW} but reports msgs_dropped=0 "
        f"(PUB msgs_dropped={pub_stats['msgs_dropped']})"
    )


def test_burst_within_recv_buffer_is_not_dropped(url):
    """The SUB drops only when its queue is over recv_buffer bytes: a burst
    of 4000 x 100 B (~420 KB) into a SUB with a 1 MiB recv_buffer (and a
    PUB with a 1 MiB send_buffer) arrives complete, although the SUB reads
    only after the burst."""
    n = 4000
    with nnofi.Pub(send_timeout=1000, send_buffer=1 << 20) as pub, nnofi.Sub(
        topics=b"", recv_buffer=1 << 20, **OPTS
    ) as sub:
        sub.connect(pub.bind(url).url)
        sync_subs(pub, [sub])
        for i in range(n):
            pub.send(b"%06d" % i + b"z" * 94)
        got = recv_all(sub, quiet_ms=500)
        assert len(got) == n, (
            f"received {len(got)} of {n}; SUB msgs_dropped={sub.stats['msgs_dropped']}, "
            f"PUB msgs_dropped={pub.stats['msgs_dropped']}"
        )
        assert [int(m[:6]) for m in got] == list(range(n))


def test_slow_sub_does_not_hold_back_fast_sub(new_url):
    """One SUB that does not read does not stop another from getting everything
    it keeps up with."""
    n = 2000
    with nnofi.Pub(send_timeout=1000) as pub, nnofi.Sub(topics=b"", recv_buffer=16 * 1024, **OPTS) as slow, nnofi.Sub(
        topics=b"", recv_buffer=1024 * 1024, **OPTS
    ) as fast:
        ep = pub.bind(new_url())
        slow.connect(ep.url)
        fast.connect(ep.url)
        sync_subs(pub, [slow, fast])
        for i in range(n):
            pub.send(b"%06d" % i + b"y" * 1000)
            if i % 100 == 99:  # the fast one keeps up
                for j in range(i - 99, i + 1):
                    assert fast.recv()[:6] == b"%06d" % j
        assert len(recv_all(slow, quiet_ms=300)) < n


def test_pub_recv_and_sub_send_not_supported(url):
    with nnofi.Pub(**OPTS) as pub, nnofi.Sub(**OPTS) as sub:
        sub.connect(pub.bind(url).url)
        with pytest.raises(nnofi.NotSupported):
            pub.recv()
        with pytest.raises(nnofi.NotSupported):
            sub.send(b"x")


def test_sub_topic_type_errors(url):
    with nnofi.Sub(**OPTS) as sub:
        sub.bind(url)
        with pytest.raises(TypeError):
            sub.subscribe(42)
