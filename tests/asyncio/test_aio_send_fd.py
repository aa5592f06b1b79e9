"""send_fileno(): an fd that polls readable exactly while send() would not
block (nanomsg's NN_SNDFD), the one asend waits on."""
import select
import time

import pytest

import nnofi

from aiohelpers import OPTS


def readable(fd, timeout=0.0):
    return bool(select.select([fd], [], [], timeout)[0])


def becomes(fd, want, timeout=5.0):
    """Whether fd's readability turns `want` within timeout s."""
    deadline = time.monotonic() + timeout
    while readable(fd) != want:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_push_send_fd_follows_room(url):
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(send_buffer=4096, **OPTS) as push:
        fd = push.send_fileno()
        assert fd == push.send_fileno() and fd != push.fileno()
        assert not readable(fd, 0.1), "readable with no peer to send to"
        push.connect(pull.bind(url).url)
        assert becomes(fd, True), "not readable once a peer is connected"
        sent = 0
        deadline = time.monotonic() + 20
        while True:  # fill the pipe (ofi's provider takes megabytes off it, in the background)
            try:
                push.send(b"x" * 4000, block=False)
                sent += 1
                continue
            except nnofi.Again:
                pass
            if not readable(fd, 0.3):
                break  # full, and the fd says so
            assert time.monotonic() < deadline, f"the fd stays readable while sends fail ({sent} sent)"
        with pytest.raises(nnofi.Again):
            push.send(b"x", block=False)
        for _ in range(sent):  # the reader makes room
            pull.recv()
            if readable(fd):
                break
        assert becomes(fd, True), "not readable again after the reader made room"
        push.send(b"fits", block=False)


@pytest.mark.parametrize("kind", [nnofi.Pub, nnofi.Bus, nnofi.Surveyor, nnofi.Req])
def test_sockets_whose_send_never_waits_are_always_ready(kind):
    with kind(**OPTS) as sock:
        assert readable(sock.send_fileno()), f"{kind.__name__} send never waits"
        sock.send(b"x", block=False)


@pytest.mark.parametrize("kind", [nnofi.Pull, nnofi.Sub, nnofi.Rep, nnofi.Respondent])
def test_sockets_whose_send_fails_at_once_are_ready(kind):
    """Readable, so that a waiting asend finds the error at once."""
    with kind(**OPTS) as sock:
        assert readable(sock.send_fileno())
        with pytest.raises((nnofi.NotSupported, nnofi.BadState)):
            sock.send(b"x", block=False)


def test_rep_send_fd_after_a_request(url):
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        req.send(b"q")
        assert rep.recv() == b"q"
        assert readable(rep.send_fileno()), "room to answer on the asker's pipe"
        rep.send(b"a", block=False)
        assert req.recv() == b"a"


def test_closed_socket_send_fd_is_readable():
    with nnofi.Push(**OPTS) as push:
        fd = push.send_fileno()
        assert not readable(fd)
        push.close()
        assert readable(fd), "a send would fail at once with Closed"
        with pytest.raises(nnofi.Closed):
            push.send(b"x", block=False)
