"""An ofi+tcp listener sheds connections that never ask to connect.

libfabric's tcp provider accepts a TCP connection, then waits for its
connection request with no timeout: raw peers that connect and say
nothing (or whose host vanished mid-way) would hold the listener's fds
for good. nnofi shuts such a connection down after the handshake timeout
(10 s, as tcp:// does; native/transport/ofi_stray.c), counted in
handshake_timeouts, and leaves the listener's real pipes alone.

It runs in a process of its own: after libfabric's udp;ofi_rxd has been
used in a process, the tcp provider no longer frees the fds of the
connections nnofi shut down (measured: they stay, shut down, holding
nothing but the fd), and the suite's worker processes use every
provider."""
import os
import socket
import subprocess
import sys
import time

import pytest

import nnofi
from ofi_providers import TESTED, url_for

HANDSHAKE_S = 10
SWEEP_S = 2
STRAYS = 5


def accepted_on(port):
    """This process's TCP connections accepted on port (local port = port,
    not listening): the provider's, one per connection it accepted."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own fd, gone
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    with open("/proc/self/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local_port = int(cols[1].split(":")[1], 16)
            if local_port == port and cols[3] != "0A" and cols[9] in inodes:  # 0A: LISTEN
                count += 1
    return count


def shed_strays():
    """The scenario, in this process: raises AssertionError if it fails."""
    with nnofi.Pull(recv_timeout=5000) as pull, nnofi.Push(send_timeout=5000) as push:
        url = pull.bind(url_for("tcp")).url
        port = int(url.split("@")[0].rsplit(":", 1)[1])
        push.connect(url)
        push.send(b"before")
        assert pull.recv() == b"before"
        base = accepted_on(port)  # the real pipe's
        strays = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(STRAYS)]
        try:
            time.sleep(0.5)
            assert accepted_on(port) == base + STRAYS, "the provider did not accept the strays"
            t0 = time.monotonic()
            while pull.stats["handshake_timeouts"] < STRAYS and time.monotonic() - t0 < HANDSHAKE_S + 2 * SWEEP_S + 5:
                time.sleep(0.1)
            shed_after = time.monotonic() - t0
            assert pull.stats["handshake_timeouts"] == STRAYS, f"shed {pull.stats['handshake_timeouts']} of {STRAYS}"
            assert shed_after >= HANDSHAKE_S - 1, f"shed after {shed_after:.1f} s: before the handshake timeout"
            for s in strays:  # the listener hung up on each
                s.settimeout(5)
                assert s.recv(1) == b""
            t1 = time.monotonic()
            while accepted_on(port) > base and time.monotonic() - t1 < 5:
                time.sleep(0.05)
            assert accepted_on(port) == base, "the provider kept fds of the strays it was told of"
        finally:
            for s in strays:
                s.close()
        push.send(b"after")  # the real pipe was never taken for a stray
        assert pull.recv() == b"after"
        stats = pull.stats
        assert stats["pipes_broken"] == 0 and stats["pipes_opened"] == 1, stats
    print(f"shed {STRAYS} silent connections {shed_after:.1f} s after they connected")


@pytest.mark.skipif("tcp" not in TESTED, reason="no libfabric tcp provider here")
def test_silent_connections_are_shed_and_pipes_kept():
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys; sys.path[:0] = [{here!r}, {os.path.join(here, os.pardir, 'transport')!r}]\n"
            "from test_ofi_stray_connections import shed_strays\nshed_strays()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    print(run.stdout)
