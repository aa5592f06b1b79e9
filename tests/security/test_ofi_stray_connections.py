"""An ofi+tcp listener sheds connections that never ask to connect.

libfabric's tcp provider accepts a TCP connection, then waits for its
connection request with no timeout: raw peers that connect and say
nothing (or whose host vanished mid-way) would hold the listener's fds
for good. nnofi shuts such a connection down after the handshake timeout
(10 s, as tcp:// does; native/transport/ofi_stray.c), counted in
handshake_timeouts, and leaves the listener's real pipes alone."""
import os
import socket
import time

import pytest

import nnofi
from ofi_providers import TESTED, url_for

HANDSHAKE_S = 10
SWEEP_S = 2
STRAYS = 5


def socket_fds():
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # the listing's own fd, gone
    return n


@pytest.mark.skipif("tcp" not in TESTED, reason="no libfabric tcp provider here")
def test_silent_connections_are_shed_and_pipes_kept():
    with nnofi.Pull(recv_timeout=5000) as pull, nnofi.Push(send_timeout=5000) as push:
        url = pull.bind(url_for("tcp")).url
        port = int(url.split("@")[0].rsplit(":", 1)[1])
        push.connect(url)
        push.send(b"before")
        assert pull.recv() == b"before"
        base = socket_fds()
        strays = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(STRAYS)]
        try:
            time.sleep(0.5)
            # each stray is two fds here: ours, and the one the provider accepted
            assert socket_fds() == base + 2 * STRAYS, "the provider did not accept the strays"
            deadline = time.monotonic() + HANDSHAKE_S + 2 * SWEEP_S + 5
            while pull.stats["handshake_timeouts"] < STRAYS and time.monotonic() < deadline:
                time.sleep(0.1)
            shed_after = time.monotonic() - deadline + HANDSHAKE_S + 2 * SWEEP_S + 5
            assert pull.stats["handshake_timeouts"] == STRAYS, f"shed {pull.stats['handshake_timeouts']} of {STRAYS}"
            assert shed_after >= HANDSHAKE_S - 0.5, f"shed after {shed_after:.1f} s: before the handshake timeout"
            for s in strays:  # the listener hung up on each
                s.settimeout(5)
                assert s.recv(1) == b""
            wait_for_fds = time.monotonic() + 5
            while socket_fds() > base + STRAYS and time.monotonic() < wait_for_fds:
                time.sleep(0.05)
            assert socket_fds() == base + STRAYS, "the provider kept fds of the strays it was told of"
        finally:
            for s in strays:
                s.close()
        push.send(b"after")  # the real pipe was never taken for a stray
        assert pull.recv() == b"after"
        stats = pull.stats
        assert stats["pipes_broken"] == 0 and stats["pipes_opened"] == 1, stats
