"""recv_max_size on every transport: a message at the limit arrives, one
byte more closes that connection (counted in frames_oversize) and never
arrives, and the dialer's next connection works. Over ofi:// a rendezvous
announce over the limit is refused before the receiver registers memory
or reads. -1 means no limit and 0 empty messages only, as in nanomsg;
inproc is not limited, as in nng."""
import pytest

import nnofi
from ofi_providers import url_for
from sechelpers import Child, judge_until, serve, wait_for

OPTS = dict(recv_timeout=10000, send_timeout=10000)
DEFAULT = 1 << 20


def payload(n):
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


@pytest.fixture(params=["tcp", "ipc"])
def stream_url(request, tmp_path):
    return f"ipc://{tmp_path}/rms.ipc" if request.param == "ipc" else "tcp://127.0.0.1:0"


def check_limit(pull, send, limit):
    """send(n) makes the peer send payload(n) to pull."""
    send(limit)
    assert pull.recv() == payload(limit), "a message at the limit arrives"
    send(limit + 1)
    assert judge_until(pull, "frames_oversize") == [], "the message over the limit arrived"
    wait_for(lambda: pull.stats["pipes_opened"] >= 2, f"the dialer's next connection: {pull.stats}", timeout=20)
    send(min(limit, 10))
    assert pull.recv() == payload(min(limit, 10))
    assert pull.stats["frames_oversize"] == 1
    assert pull.stats["pipes_broken"] >= 1


@pytest.mark.parametrize("limit", [0, 4096, None], ids=["zero", "4096", "default"])
def test_stream_limit(stream_url, limit):
    opts = {} if limit is None else dict(recv_max_size=limit)
    with nnofi.Pull(**OPTS, **opts) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(stream_url).url)
        assert pull.recv_max_size == (DEFAULT if limit is None else limit)
        check_limit(pull, lambda n: push.send(payload(n)), pull.recv_max_size)


def test_stream_unlimited(stream_url):
    with nnofi.Pull(recv_max_size=-1, **OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(stream_url).url)
        push.send(payload(3 * DEFAULT + 1))
        assert pull.recv() == payload(3 * DEFAULT + 1)
        assert pull.stats["frames_oversize"] == 0


def test_sp_header_words_count(stream_url):
    """The limit is on the frame, as in nanomsg and nng: a REQ's request id
    (4 bytes) counts."""
    with nnofi.Rep(recv_max_size=100, **OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(stream_url).url)
        req.send(payload(96))
        assert rep.recv() == payload(96)
        rep.send(b"ok")
        assert req.recv() == b"ok"
        req.send(payload(97))
        assert judge_until(rep, "frames_oversize") == []


def test_inproc_is_not_limited():
    with nnofi.Pull(recv_max_size=16, **OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind("inproc://rms-unlimited").url)
        push.send(payload(DEFAULT))
        assert pull.recv() == payload(DEFAULT)
        assert pull.stats["frames_oversize"] == 0


@pytest.mark.parametrize("value", [-2, -(2**40)])
def test_below_minus_one_is_refused(value):
    with nnofi.Pull() as pull:
        with pytest.raises(ValueError, match="recv_max_size"):
            pull.recv_max_size = value
        assert pull.recv_max_size == DEFAULT


# -- ofi://: the sender runs in a child process (shm needs two) ----------------

OFI_LIMIT = 256 * 1024  # over the default rendezvous_min (128 KiB)


def _ofi_sender(conn, url, opts):
    with nnofi.Push(connect=url, **OPTS, **opts) as push:

        def send(n):
            push.send(payload(n))
            return push.stats

        serve(conn, send)
        conn.send(push.stats)


@pytest.mark.parametrize("mode", ["eager", "rendezvous"])
def test_ofi_limit(any_provider, mode):
    sender_opts = dict(rendezvous_min=-1) if mode == "eager" else {}
    with nnofi.Pull(recv_max_size=OFI_LIMIT, **OPTS) as pull:
        url = pull.bind(url_for(any_provider)).url
        with Child(_ofi_sender, url, sender_opts) as sender:
            check_limit(pull, sender.ask, OFI_LIMIT)
            sent = sender.ask(0)  # (an empty message: its stats)
        assert pull.recv() == b""
        got = pull.stats
    if mode == "eager":
        assert sent["rendezvous_sent"] == 0
        assert got["rendezvous_recv"] == 0
    else:
        assert sent["rendezvous_sent"] == 2, "both big messages were announced"
        assert got["rendezvous_recv"] == 1, "only the one at the limit was read"
        # the receiver registers memory for an announce it accepts (a miss,
        # or a hit on a cached region): once, for the one at the limit
        assert got["mr_misses"] + got["mr_hits"] == 1, got
