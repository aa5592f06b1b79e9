"""Behaviour common to every socket type: timeouts, non-blocking calls,
closing, errors, addresses, buffers, large messages, readiness fds,
statistics and options."""
import array
import errno
import selectors
import socket as pysocket
import threading
import time

import pytest

import nnofi
from protohelpers import OPTS, Worker, finish, port_of, wait_for, wait_pipes

np = pytest.importorskip("numpy")


# -- closing from another thread ---------------------------------------------


def _blocked_recv_socket(kind, url, stack):
    """A socket of `kind` whose recv() blocks, plus what keeps it blocked."""
    if kind == "Pair":
        s = stack(nnofi.Pair(recv_timeout=10000, send_timeout=5000))
        s.bind(url)
    elif kind == "Pull":
        s = stack(nnofi.Pull(recv_timeout=10000, send_timeout=5000))
        s.bind(url)
    elif kind == "Rep":
        s = stack(nnofi.Rep(recv_timeout=10000, send_timeout=5000))
        s.bind(url)
    else:  # Req waiting for a reply that never comes
        s = stack(nnofi.Req(recv_timeout=10000, send_timeout=5000))
        rep = stack(nnofi.Rep(**OPTS))
        s.connect(rep.bind(url).url)
        s.send(b"never answered")
        assert rep.recv() == b"never answered"
    return s


@pytest.fixture
def stack():
    socks = []

    def push(s):
        socks.append(s)
        return s

    yield push
    for s in reversed(socks):
        s.close()


@pytest.mark.parametrize("kind", ["Pair", "Pull", "Rep", "Req"])
def test_close_from_other_thread_wakes_blocked_recv(kind, url, stack):
    s = _blocked_recv_socket(kind, url, stack)
    started = threading.Event()

    def blocked():
        started.set()
        t0 = time.monotonic()
        try:
            s.recv()
        except nnofi.Closed:
            return time.monotonic() - t0
        raise AssertionError("recv returned instead of raising Closed")

    w = Worker(blocked, name="blocked-recv")
    w.start()
    started.wait(5)
    time.sleep(0.3)  # well inside recv by now
    assert w.is_alive(), f"recv returned early: {w.error!r}"
    t_close = time.monotonic()
    s.close()
    w.join(1.0)
    assert not w.is_alive(), "thread blocked in recv not woken within 1 s of close()"
    assert time.monotonic() - t_close < 1.0
    if w.error is not None:
        raise w.error
    assert s.closed


def test_close_from_other_thread_wakes_blocked_send(url):
    with nnofi.Push(send_timeout=10000, recv_timeout=5000) as push:
        push.bind(url)  # nobody connects: send blocks

        def blocked():
            with pytest.raises(nnofi.Closed):
                push.send(b"stuck")

        w = Worker(blocked, name="blocked-send")
        w.start()
        time.sleep(0.3)
        assert w.is_alive(), f"send returned early: {w.error!r}"
        push.close()
        finish([w], 1.0)


def test_operations_after_close_raise_closed(url):
    s = nnofi.Pair(**OPTS)
    s.bind(url)
    s.close()
    assert s.closed
    s.close()  # idempotent
    with pytest.raises(nnofi.Closed):
        s.send(b"x")
    with pytest.raises(nnofi.Closed):
        s.recv()
    with pytest.raises(nnofi.Closed):
        s.recv(block=False)
    with pytest.raises(nnofi.Closed):
        s.bind(url)
    with pytest.raises(nnofi.Closed):
        s.connect("inproc://whatever")


def test_context_manager_closes(url):
    with nnofi.Pair(**OPTS) as s:
        s.bind(url)
        assert not s.closed
    assert s.closed


def test_close_frees_the_address(url):
    """After close, the same address can be bound again at once."""
    with nnofi.Pair(**OPTS) as a:
        real = a.bind(url).url
    with nnofi.Pair(**OPTS) as b, nnofi.Pair(**OPTS) as c:
        b.bind(real)
        c.connect(real)
        c.send(b"rebound")
        assert b.recv() == b"rebound"


def test_endpoint_close_frees_the_address(url):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        ep = a.bind(url)
        ep.close()
        b.bind(ep.url)  # no AddressInUse
        with nnofi.Pair(**OPTS) as c:
            c.connect(ep.url)
            c.send(b"to b")
            assert b.recv() == b"to b"


# -- timeouts and non-blocking calls ----------------------------------------


@pytest.mark.parametrize("timeout_ms", [100, 400])
def test_recv_timeout(url, timeout_ms):
    with nnofi.Pair(recv_timeout=timeout_ms, send_timeout=5000) as s:
        s.bind(url)
        t0 = time.monotonic()
        with pytest.raises(nnofi.Timeout) as info:
            s.recv()
        took = time.monotonic() - t0
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, nnofi.Error)
        assert info.value.errno == errno.ETIMEDOUT
        assert timeout_ms / 1000 * 0.9 <= took < timeout_ms / 1000 + 1.0, took


def test_recv_timeout_set_as_property(url):
    with nnofi.Pull(**OPTS) as s:
        s.bind(url)
        s.recv_timeout = 200
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            s.recv_msg()
        assert 0.18 <= time.monotonic() - t0 < 1.2


def test_send_timeout(url):
    """PUSH with no PULL waits for one; send_timeout bounds the wait."""
    with nnofi.Push(send_timeout=300, recv_timeout=5000) as s:
        s.bind(url)
        t0 = time.monotonic()
        with pytest.raises(nnofi.Timeout):
            s.send(b"nobody listens")
        assert 0.27 <= time.monotonic() - t0 < 1.3


def test_recv_nonblocking_raises_again(url):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        t0 = time.monotonic()
        with pytest.raises(nnofi.Again) as info:
            a.recv(block=False)
        assert time.monotonic() - t0 < 0.5
        assert isinstance(info.value, BlockingIOError)
        with pytest.raises(nnofi.Again):
            a.recv_msg(block=False)
        b.send(b"now there is one")
        wait_for(lambda: _try_recv(a) == b"now there is one", 5, "message via block=False")
        with pytest.raises(nnofi.Again):
            a.recv(block=False)


def _try_recv(sock):
    try:
        return sock.recv(block=False)
    except nnofi.Again:
        return None


def test_send_nonblocking_raises_again(url):
    with nnofi.Push(**OPTS) as s:
        s.bind(url)
        t0 = time.monotonic()
        with pytest.raises(nnofi.Again) as info:
            s.send(b"no peer", block=False)
        assert time.monotonic() - t0 < 0.5
        assert isinstance(info.value, BlockingIOError)


# -- addresses ---------------------------------------------------------------


def test_bind_address_in_use(url):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        real = a.bind(url).url
        with pytest.raises(nnofi.AddressInUse) as info:
            b.bind(real)
        assert isinstance(info.value, nnofi.Error)
        # the first binding still works
        with nnofi.Pair(**OPTS) as c:
            c.connect(real)
            c.send(b"ok")
            assert a.recv() == b"ok"


def test_bind_same_address_twice_on_one_socket(url):
    with nnofi.Pair(**OPTS) as a:
        real = a.bind(url).url
        with pytest.raises(nnofi.AddressInUse):
            a.bind(real)


BAD_URLS = [
    "foo://x",
    "tcp://127.0.0.1:99999",
    "tcp://nohost",
    "",
    "tcp://127.0.0.1",
    "tcp://127.0.0.1:abc",
    "tcp://127.0.0.1:-1",
    "nourl",
    "ipc://",
]


@pytest.mark.parametrize("bad", BAD_URLS)
@pytest.mark.parametrize("how", ["bind", "connect"])
def test_bad_url(bad, how):
    with nnofi.Pair(**OPTS) as s:
        with pytest.raises(nnofi.BadURL) as info:
            getattr(s, how)(bad)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, nnofi.Error)
        assert s.endpoints == []
        # the socket is still usable
        ep = s.bind("tcp://127.0.0.1:0")
        assert port_of(ep.url) > 0


@pytest.mark.parametrize("bad", ["foo://x", ""])
def test_bad_url_in_constructor_kwargs(bad):
    with pytest.raises(nnofi.BadURL):
        nnofi.Pair(bind=bad, **OPTS)
    with pytest.raises(nnofi.BadURL):
        nnofi.Pair(connect=bad, **OPTS)


def test_tcp_port_zero_reports_real_port():
    with nnofi.Pair(**OPTS) as a:
        ep = a.bind("tcp://127.0.0.1:0")
        assert ep.url.startswith("tcp://127.0.0.1:")
        assert 0 < port_of(ep.url) < 65536


def test_tcp_wildcard_bind():
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        ep = a.bind("tcp://*:0")
        port = port_of(ep.url)
        assert 0 < port < 65536
        b.connect(f"tcp://127.0.0.1:{port}")
        b.send(b"via wildcard")
        assert a.recv() == b"via wildcard"
        a.send(b"back")
        assert b.recv() == b"back"


def test_tcp_connect_by_name():
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        port = port_of(a.bind("tcp://127.0.0.1:0").url)
        b.connect(f"tcp://localhost:{port}")
        b.send(b"by name")
        assert a.recv() == b"by name"


def _have_ipv6_loopback():
    if not pysocket.has_ipv6:
        return False
    try:
        with pysocket.socket(pysocket.AF_INET6, pysocket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="host has no IPv6 loopback (::1)")
def test_tcp_ipv6():
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        ep = a.bind("tcp://[::1]:0")
        assert ep.url.startswith("tcp://[::1]:"), ep.url
        assert port_of(ep.url) > 0
        b.connect(ep.url)
        b.send(b"over v6")
        assert a.recv() == b"over v6"
        a.send(b"back over v6")
        assert b.recv() == b"back over v6"


# -- buffers -----------------------------------------------------------------


def _roundtrip_msg(url, payload):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        b.send(payload)
        return a.recv_msg()


@pytest.mark.parametrize(
    "dtype,shape",
    [(np.uint8, (17,)), (np.float64, (1000,)), (np.int32, (30, 40)), (np.complex128, (5, 3, 2))],
)
def test_send_numpy_array(url, dtype, shape):
    arr = (np.arange(int(np.prod(shape))) % 97).astype(dtype).reshape(shape)
    msg = _roundtrip_msg(url, arr)
    assert len(msg) == arr.nbytes
    back = np.frombuffer(msg, dtype).reshape(shape)
    assert np.array_equal(back, arr)


def test_send_memoryview_bytearray_array(url):
    raw = bytes(range(256)) * 4
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        b.send(memoryview(raw))
        b.send(memoryview(raw)[10:20])  # a slice: only those bytes
        b.send(bytearray(b"bytearray"))
        b.send(array.array("i", [1, 2, 3]))
        b.send(np.arange(6, dtype=np.int16)[1:5])  # contiguous slice of an array
        assert a.recv() == raw
        assert a.recv() == raw[10:20]
        assert a.recv() == b"bytearray"
        assert a.recv() == array.array("i", [1, 2, 3]).tobytes()
        assert a.recv() == np.arange(1, 5, dtype=np.int16).tobytes()


def test_send_and_recv_take_arguments_like_python_methods(url):
    """send() and recv() are C methods (nnofi._fast.SocketCore): positional
    and keyword arguments as their signatures say, wrong ones refused with
    a TypeError, and a bytes subclass sent like any buffer."""
    class Tagged(bytes):
        pass

    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        b.send(b"positional", True)
        b.send(data=b"keywords", block=True, copy=True)
        b.send(Tagged(b"subclass"))
        assert a.recv(True) == b"positional"
        assert a.recv(block=True) == b"keywords"
        assert a.recv() == b"subclass"
        for bad_call in (lambda: b.send(), lambda: b.send(b"x", True, True), lambda: b.send(b"x", blok=True),
                         lambda: b.send(b"x", data=b"y"), lambda: a.recv(True, True), lambda: a.recv(timeout=1)):
            with pytest.raises(TypeError):
                bad_call()
        with pytest.raises(TypeError, match="encode the str first"):
            b.send("text")
        with pytest.raises(nnofi.Again):
            a.recv(block=False)
        assert "copy=False" in nnofi.Pair.send.__doc__


def test_recv_msg_is_zero_copy_buffer(url):
    payload = np.arange(4096, dtype=np.uint32)
    msg = _roundtrip_msg(url, payload)
    assert isinstance(msg, nnofi.Message)
    mv = memoryview(msg)
    assert mv.nbytes == payload.nbytes == len(msg)
    assert bytes(msg) == payload.tobytes() == msg.bytes
    assert msg == payload.tobytes()

    view = np.frombuffer(msg, np.uint32)
    assert np.array_equal(view, payload)
    # the array is a view of the message's own memory, not a copy
    base = view
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    assert base is msg, f"np.frombuffer(msg) is backed by {type(base)!r}, not the Message"
    again = np.frombuffer(msg, np.uint8)
    assert np.shares_memory(view, again)
    # the view keeps the message alive after the Message object is dropped
    del msg, mv, again
    import gc

    gc.collect()
    assert np.array_equal(view, payload)


def test_recv_into(url):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        b.send(b"0123456789")
        buf = bytearray(64)
        n = a.recv_into(buf)
        assert n == 10 and bytes(buf[:10]) == b"0123456789"
        arr = np.zeros(4, np.float64)
        b.send(np.array([1.5, 2.5, 3.5, 4.5]))
        assert a.recv_into(arr) == 32
        assert arr.tolist() == [1.5, 2.5, 3.5, 4.5]


@pytest.mark.parametrize("size", [100, 64 * 1024, 1 << 20])
def test_send_buffer_may_be_reused_after_send(url, size):
    """send() borrows the buffer only for the call: changing the array
    afterwards must not change the message already sent."""
    with nnofi.Pair(recv_max_size=-1, **OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        arr = np.full(size, 7, np.uint8)
        sender = Worker(lambda: b.send(arr), name="send")
        sender.start()
        finish([sender], 10)
        arr[:] = 0  # the send has returned: the buffer is ours again
        msg = a.recv_msg()
        got = np.frombuffer(msg, np.uint8)
        assert len(got) == size
        assert int(got.min()) == 7 and int(got.max()) == 7, "message changed after send() returned"


# -- large messages ----------------------------------------------------------


def _pattern(size):
    return (np.arange(size, dtype=np.uint32) % 251).astype(np.uint8)


@pytest.mark.parametrize(
    "size,max_size",
    [
        (1 << 20, -1),
        (1 << 20, 1 << 20),  # exactly the default limit is allowed
        (4 << 20, -1),
        (4 << 20, 8 << 20),
    ],
    ids=["1MiB-unlimited", "1MiB-at-limit", "4MiB-unlimited", "4MiB-limit8MiB"],
)
def test_large_messages(url, size, max_size):
    data = _pattern(size)
    with nnofi.Pull(recv_max_size=max_size, **OPTS) as pull, nnofi.Push(**OPTS) as push:
        assert pull.recv_max_size == max_size
        push.connect(pull.bind(url).url)

        def send():
            push.send(data)
            push.send(data.tobytes())
            push.send(b"after")

        w = Worker(send, name="big-sender")
        w.start()
        m1 = pull.recv_msg()
        m2 = pull.recv()
        tail = pull.recv()
        finish([w], 20)
    assert len(m1) == size and np.array_equal(np.frombuffer(m1, np.uint8), data)
    assert len(m2) == size and m2 == data.tobytes()
    assert tail == b"after"


@pytest.mark.parametrize("size", [1 << 20, 4 << 20], ids=["1MiB", "4MiB"])
def test_large_send_does_not_wait_for_receiver(url, size):
    """Like nanomsg/nng, a send returns once the message is handed to the
    connection; it does not wait until the peer application calls recv()
    (otherwise `send(big); recv()` in one thread deadlocks with the default
    send_timeout=-1)."""
    data = _pattern(size)
    with nnofi.Pair(recv_max_size=-1, **OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        b.send(b"warm-up")
        assert a.recv() == b"warm-up"  # connected both ways
        t0 = time.monotonic()
        w = Worker(lambda: b.send(data), name="big-send")
        w.start()
        w.join(2.0)
        took = time.monotonic() - t0
        sender_done = not w.is_alive()
        m = a.recv_msg()  # let a blocked sender finish before reporting
        finish([w], 10)
        assert sender_done, f"send of {size} bytes blocked until the peer called recv ({took:.1f}s+)"
        assert len(m) == size and np.array_equal(np.frombuffer(m, np.uint8), data)


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_oversized_message_drops_pipe_not_socket(url):
    """A message above recv_max_size is not delivered; the connection it came
    on is dropped and counted; the socket keeps working (the sender redials)."""
    with nnofi.Pull(recv_max_size=1000, recv_timeout=500, send_timeout=5000) as pull, nnofi.Push(
        reconnect_ivl=50, **OPTS
    ) as push:
        push.connect(pull.bind(url).url)
        push.send(b"small first")
        assert pull.recv() == b"small first"
        push.send(b"x" * 5000)
        with pytest.raises(nnofi.Timeout):
            got = pull.recv()
            pytest.fail(f"oversized message delivered ({len(got)} bytes)")
        st = pull.stats
        counted = ("pipes_broken", "msgs_dropped", "protocol_errors", "frames_oversize", "frames_malformed")
        assert sum(st.get(k, 0) for k in counted) > 0, f"the dropped connection is not counted: {st}"
        # keep sending small messages until one gets through the new connection
        deadline = time.monotonic() + 5
        while True:
            try:
                push.send(b"small again", block=False)
            except nnofi.Again:
                pass
            try:
                assert pull.recv() == b"small again"
                break
            except nnofi.Timeout:
                assert time.monotonic() < deadline, "socket did not recover after an oversized message"


# -- readiness fd --------------------------------------------------------------


def test_fileno_with_selectors(url):
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        fd = pull.fileno()
        assert isinstance(fd, int) and fd >= 0
        assert pull.fileno() == fd  # stable
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            assert sel.select(0.1) == [], "readable with nothing to receive"
            push.send(b"wake up")
            events = sel.select(5)
            assert events and events[0][1] & selectors.EVENT_READ
            assert pull.recv(block=False) == b"wake up"
            # drained: no longer readable
            assert sel.select(0.2) == [], "still readable after the only message was received"
            for i in range(3):
                push.send(b"%d" % i)
            got = []
            deadline = time.monotonic() + 5
            while len(got) < 3:
                assert time.monotonic() < deadline
                if sel.select(1):
                    try:
                        got.append(pull.recv(block=False))
                    except nnofi.Again:
                        pass  # a spurious wake-up is allowed; a missed one is not
            assert got == [b"0", b"1", b"2"]


def test_fileno_wakes_thread_blocked_in_select(url):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        with selectors.DefaultSelector() as sel:
            sel.register(a.fileno(), selectors.EVENT_READ)
            timer = threading.Timer(0.2, lambda: b.send(b"later"))
            timer.start()
            try:
                t0 = time.monotonic()
                assert sel.select(5), "fd never became readable"
                assert time.monotonic() - t0 < 4
                assert a.recv(block=False) == b"later"
            finally:
                timer.cancel()
                timer.join()


# -- statistics ------------------------------------------------------------------


STAT_KEYS = {
    "msgs_sent",
    "msgs_recv",
    "bytes_sent",
    "bytes_recv",
    "pipes_opened",
    "pipes_closed",
    "pipes_broken",
    "msgs_dropped",
}


def test_stats_counters_move(url):
    n, size = 10, 100
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        st = a.stats
        assert STAT_KEYS <= set(st), set(st)
        assert all(isinstance(v, int) for v in st.values())
        assert st["msgs_sent"] == st["msgs_recv"] == st["bytes_sent"] == st["bytes_recv"] == 0
        b.connect(a.bind(url).url)
        for i in range(n):
            b.send(bytes([i]) * size)
        for i in range(n):
            assert a.recv() == bytes([i]) * size
        a.send(b"1234567")
        assert b.recv() == b"1234567"
        sa, sb = a.stats, b.stats
        assert sb["msgs_sent"] == n and sb["bytes_sent"] == n * size, sb
        assert sa["msgs_recv"] == n and sa["bytes_recv"] == n * size, sa
        assert sa["msgs_sent"] == 1 and sa["bytes_sent"] == 7, sa
        assert sb["msgs_recv"] == 1 and sb["bytes_recv"] == 7, sb
        assert sa["pipes_opened"] >= 1 and sb["pipes_opened"] >= 1
        assert sa["msgs_dropped"] == 0 and sb["msgs_dropped"] == 0
        b.close()
        wait_for(
            lambda: a.stats["pipes_closed"] + a.stats["pipes_broken"] >= 1,
            5,
            "the bound side to count the closed pipe",
        )


def test_stats_pipes_opened_counts_each_peer(url):
    with nnofi.Pull(**OPTS) as pull:
        ep = pull.bind(url)
        pushes = [nnofi.Push(**OPTS) for _ in range(3)]
        try:
            for p in pushes:
                p.connect(ep.url)
            wait_pipes(pull, 3)
            for p in pushes:
                wait_pipes(p, 1)
        finally:
            for p in pushes:
                p.close()
        assert pull.stats["pipes_opened"] == 3


# -- options ---------------------------------------------------------------------


DEFAULTS = {
    "recv_timeout": -1,
    "send_timeout": -1,
    "recv_max_size": 1048576,
    "send_buffer": 131072,
    "recv_buffer": 131072,
    "reconnect_ivl": 100,
    "reconnect_ivl_max": 0,
    "linger": 1000,
}

NON_DEFAULT = {
    "recv_timeout": 1234,
    "send_timeout": 2345,
    "recv_max_size": 4 << 20,
    "send_buffer": 65536,
    "recv_buffer": 262144,
    "reconnect_ivl": 50,
    "reconnect_ivl_max": 5000,
    "linger": 0,
}

ALL_TYPES = [nnofi.Pair, nnofi.Push, nnofi.Pull, nnofi.Req, nnofi.Rep]


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_option_defaults(cls):
    with cls() as s:
        for name, value in DEFAULTS.items():
            assert getattr(s, name) == value, name
    with nnofi.Req() as r:
        assert r.req_resend_ivl == 60000


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_options_as_kwargs(cls):
    with cls(**NON_DEFAULT) as s:
        for name, value in NON_DEFAULT.items():
            assert getattr(s, name) == value, name


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_options_as_properties(cls):
    with cls() as s:
        for name, value in NON_DEFAULT.items():
            setattr(s, name, value)
        for name, value in NON_DEFAULT.items():
            assert getattr(s, name) == value, name
        s.recv_timeout = -1
        s.recv_max_size = -1
        assert s.recv_timeout == -1 and s.recv_max_size == -1


def test_req_resend_ivl_option():
    with nnofi.Req(req_resend_ivl=250) as r:
        assert r.req_resend_ivl == 250
        r.req_resend_ivl = 1500
        assert r.req_resend_ivl == 1500


def test_unknown_option_kwarg_is_type_error():
    with pytest.raises(TypeError):
        nnofi.Pair(recv_timout=5)


def test_option_wrong_type():
    with nnofi.Pair() as s:
        with pytest.raises(TypeError):
            s.recv_timeout = "100"
        with pytest.raises(TypeError):
            s.recv_timeout = 1.5
        assert s.recv_timeout == -1


def test_options_apply_to_live_socket(url):
    """Changing recv_timeout on an open socket takes effect on the next call."""
    with nnofi.Pair(recv_timeout=5000) as s:
        s.bind(url)
        s.recv_timeout = 100
        t0 = time.monotonic()
        with pytest.raises(nnofi.Timeout):
            s.recv()
        assert time.monotonic() - t0 < 1.0
