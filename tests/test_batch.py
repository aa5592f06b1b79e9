"""send_many / recv_many: one native call for many messages, on every
transport, in order, nothing lost, limits honoured."""
import threading
import uuid

import pytest

import nnofi


@pytest.fixture(params=["inproc", "ipc", "tcp"])
def url(request, tmp_path):
    return {
        "inproc": f"inproc://{uuid.uuid4().hex}",
        "ipc": f"ipc://{tmp_path}/b.ipc",
        "tcp": "tcp://127.0.0.1:0",
    }[request.param]


OPTS = dict(recv_timeout=5000, send_timeout=5000)


def test_many_in_order_across_batches(url):
    msgs = [b"%d" % i + b"." * (i % 300) for i in range(20000)]
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        sender = threading.Thread(target=lambda: [push.send_many(msgs[i : i + 700]) for i in range(0, len(msgs), 700)])
        sender.start()
        got = []
        while len(got) < len(msgs):
            got += pull.recv_many(max_count=333)
        sender.join(10)
        assert got == msgs
        assert push.stats["msgs_sent"] == len(msgs) and pull.stats["msgs_recv"] == len(msgs)


def test_recv_many_respects_byte_limit_and_keeps_the_rest(url):
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        push.send_many([b"a" * 600, b"b" * 600, b"c" * 10])
        first = pull.recv_many(max_bytes=1000)
        assert first == [b"a" * 600]  # b's 600 would not fit: it waits
        rest = []
        while len(rest) < 2:
            rest += pull.recv_many(max_bytes=1000)
        assert rest == [b"b" * 600, b"c" * 10]
        push.send_many([b"x" * 2000, b"y"])  # a first over max_bytes comes alone, not lost
        assert pull.recv_many(max_bytes=1000) == [b"x" * 2000]
        rest = []
        while not rest:
            rest = pull.recv_many(max_bytes=1000)
        assert rest == [b"y"]


def test_recv_many_waits_only_for_the_first(url):
    with nnofi.Pull(recv_timeout=200) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        with pytest.raises(nnofi.Timeout):
            pull.recv_many()
        push.send(b"one")
        assert pull.recv_many() == [b"one"]
        with pytest.raises(nnofi.Again):
            pull.recv_many(block=False)


def test_send_many_takes_any_buffers_and_empty_lists(url):
    import numpy as np

    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        assert a.send_many([]) == 0
        assert a.send_many([b"x", bytearray(b"yy"), memoryview(b"zzz"), np.arange(3, dtype=np.uint8), b""]) == 5
        got = []
        while len(got) < 5:
            got += b.recv_many()
        assert got == [b"x", b"yy", b"zzz", b"\x00\x01\x02", b""]


def test_send_many_on_closed_socket_says_how_many_went():
    s = nnofi.Push()
    s.close()
    with pytest.raises(nnofi.Closed) as err:
        s.send_many([b"a", b"b"])
    assert err.value.sent == 0


@pytest.mark.parametrize("count,size", [(4096, 64), (1024, 256), (1, 256 * 1024)])
def test_send_many_larger_than_the_send_buffer(url, count, size):
    """A batch bigger than send_buffer (128 KiB) goes out as it fills: the
    sender never waits for room that only its own write would make."""
    msgs = [bytes([i % 251]) * size for i in range(count)]
    with nnofi.Pull(recv_max_size=-1, **OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        sender = threading.Thread(target=lambda: push.send_many(msgs), daemon=True)
        sender.start()
        got = []
        while len(got) < count:
            got += pull.recv_many(max_count=4096, max_bytes=1 << 22)
        sender.join(10)
        assert got == msgs
