"""A listener out of file descriptors: in a child process whose
RLIMIT_NOFILE leaves a few spare fds, raw peers connect until accept()
fails with EMFILE. The listener pauses and retries (counted in
accept_errors) instead of spinning: the process stays responsive, its CPU
use low, the peer connected before keeps delivering, and once the raw
peers go, new connections are accepted again."""
import os
import resource
import struct
import time

import pytest

import nnofi
import rawsock
from sechelpers import Child, serve, wait_for

SPARE_FDS = 24
FLOOD = 80  # more than the spare fds, fewer than the listen backlog (128)
PUSH_HEADER = b"\x00SP\x00" + struct.pack(">H", 80) + b"\x00\x00"


def _cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return r.ru_utime + r.ru_stime


def _limited_listener(conn, url):
    with nnofi.Pull(recv_timeout=5000) as pull:
        ep = pull.bind(url)
        open_fds = len(os.listdir("/proc/self/fd"))
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds + SPARE_FDS, hard))
        conn.send(ep.url)
        actions = {"stats": lambda: pull.stats, "cpu": _cpu_seconds, "recv": pull.recv}
        serve(conn, lambda request: actions[request]())


@pytest.fixture(params=["tcp", "ipc"])
def bind_url(request, tmp_path):
    return f"ipc://{tmp_path}/fds.ipc" if request.param == "ipc" else "tcp://127.0.0.1:0"


def raw_peer(url):
    """Connects and says it is a PUSH: a pipe that holds an fd until it goes."""
    s = rawsock.connect(url)
    s.sendall(PUSH_HEADER)
    return s


def test_listener_out_of_fds_backs_off_and_recovers(bind_url):
    with Child(_limited_listener, bind_url) as child:
        url = child.answer()
        with nnofi.Push(connect=url, send_timeout=5000) as early:
            early.send(b"before")
            assert child.ask("recv") == b"before"
            flood = [raw_peer(url) for _ in range(FLOOD)]
            try:
                wait_for(lambda: child.ask("stats")["accept_errors"] >= 1, "accept() to run out of fds")
                stats0, cpu0, t0 = child.ask("stats"), child.ask("cpu"), time.monotonic()
                time.sleep(1.5)
                early.send(b"during")  # the pipe made before still works
                assert child.ask("recv", timeout=5) == b"during"
                stats1, cpu1, t1 = child.ask("stats"), child.ask("cpu"), time.monotonic()
                busy = (cpu1 - cpu0) / (t1 - t0)
                retries = stats1["accept_errors"] - stats0["accept_errors"]
                print(f"\nout of fds for {t1 - t0:.1f} s: CPU {busy:.0%}, {retries} accept retries, "
                      f"{stats1['pipes_opened']} pipes")
                assert busy < 0.2, f"the listener spins: {busy:.0%} of a CPU while out of fds"
                assert 1 <= retries <= 4 * (t1 - t0) / 0.1, "it retries, about every 100 ms"
                assert stats1["pipes_opened"] < FLOOD, "the flood was not held off by the fd limit"
            finally:
                for s in flood:
                    s.close()
            with nnofi.Push(connect=url, send_timeout=10000) as late:
                late.send(b"after")  # accepted once the flood's fds came back
                assert child.ask("recv", timeout=15) == b"after"
        assert child.proc.is_alive()
