"""Round trips of every socket type over every transport, in one process."""
import threading
import uuid

import pytest

import nnofi

TRANSPORTS = ["inproc", "ipc", "tcp"]


@pytest.fixture(params=TRANSPORTS)
def url(request, tmp_path):
    kind = request.param
    if kind == "inproc":
        return f"inproc://{uuid.uuid4().hex}"
    if kind == "ipc":
        return f"ipc://{tmp_path}/sock"
    return "tcp://127.0.0.1:0"


OPTS = dict(recv_timeout=5000, send_timeout=5000)


def test_pair_both_ways(url):
    with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
        b.connect(a.bind(url).url)
        a.send(b"to b")
        assert b.recv() == b"to b"
        b.send(b"to a")
        assert a.recv() == b"to a"


def test_reqrep_many_round_trips(url):
    with nnofi.Rep(**OPTS) as rep, nnofi.Req(**OPTS) as req:
        req.connect(rep.bind(url).url)
        for i in range(200):
            req.send(b"q%d" % i)
            rep.send(rep.recv() + b"!")
            assert req.recv() == b"q%d!" % i


def test_push_pull_order(url):
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
        push.connect(pull.bind(url).url)
        sender = threading.Thread(target=lambda: [push.send(b"%d" % i) for i in range(5000)])
        sender.start()
        got = [pull.recv() for _ in range(5000)]
        sender.join(10)
        assert got == [b"%d" % i for i in range(5000)]


def test_push_blocks_at_buffer_limit_then_times_out(url):
    """Backpressure: with nobody receiving, PUSH blocks, never drops."""
    with nnofi.Pull(**OPTS) as pull, nnofi.Push(send_timeout=200) as push:
        push.connect(pull.bind(url).url)
        sent = 0
        with pytest.raises(nnofi.Timeout):
            for _ in range(100000):
                push.send(b"x" * 1000)
                sent += 1
        assert 0 < sent < 100000
        assert [len(pull.recv()) for _ in range(sent)] == [1000] * sent


def test_bound_side_sends_first_to_a_peer_in_another_thread(url):
    """A request queued before the REP connects, and the REP's recv in a
    thread: the request must not be lost (inproc once lost it)."""
    with nnofi.Req(**OPTS) as req:
        real = req.bind(url).url
        req.send(b"early")
        got = []

        def serve():
            with nnofi.Rep(connect=real, **OPTS) as rep:
                for _ in range(100):
                    m = rep.recv()
                    got.append(m)
                    rep.send(m)

        t = threading.Thread(target=serve)
        t.start()
        assert req.recv() == b"early"
        for i in range(99):
            req.send(b"%d" % i)
            assert req.recv() == b"%d" % i
        t.join(10)
        assert got[0] == b"early"


def test_ctrl_c_is_a_keyboard_interrupt():
    """Loading libfabric takes SIGINT over (its shm clean-up); nnofi puts
    Python's handler back, so Ctrl-C unwinds through except and finally."""
    import signal
    import subprocess
    import sys

    script = (
        "import nnofi, sys, time\n"
        "with nnofi.Pull() as pull:\n"
        "    pull.bind('tcp://127.0.0.1:0')\n"
        "    try:\n"  # ready is said inside: the signal may come at once
        "        print('ready', flush=True)\n"
        "        time.sleep(30)\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', flush=True)\n"
        "        sys.exit(130)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait(5)
    assert out.strip() == "interrupted" and proc.returncode == 130, (out, proc.returncode)
