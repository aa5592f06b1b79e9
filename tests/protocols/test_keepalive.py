"""A tcp peer that vanishes without a word (its host died, or its side of
the connection was reset) leaves a half-open connection: without TCP
keepalive an idle pipe never learns, and a listener keeps it for good
(make soak found a REP holding a vanished REQ's connection, and an ofi
PULL one reading a vanished PUSH's rendezvous).

The vanishing peer's sockets are closed in TCP_REPAIR mode, which sends
neither FIN nor RST (as a dead host would not); the keepalive probes then
meet its kernel's RST."""
import socket
import struct
import subprocess
import sys
import time

import pytest

import nnofi
import rawsock

TCP_REPAIR = 19  # linux/tcp.h
REQ_HEADER = b"\x00SP\x00" + struct.pack(">H", 48) + b"\x00\x00"


def vanish(sock):
    """Close without telling the peer anything."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    except PermissionError:
        sock.close()
        pytest.skip("TCP_REPAIR needs CAP_NET_ADMIN (root) to make a peer vanish silently")
    sock.close()


def rep_with_a_vanished_req(**options):
    rep = nnofi.Rep(recv_timeout=5000, **options)
    url = rep.bind("tcp://127.0.0.1:0").url
    raw = rawsock.connect(url)
    raw.sendall(REQ_HEADER)
    assert raw.recv(8)[:4] == b"\x00SP\x00"
    deadline = time.monotonic() + 5
    while rep.stats["pipes_opened"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    vanish(raw)
    return rep


def open_pipes(sock):
    st = sock.stats
    return st["pipes_opened"] - st["pipes_closed"] - st["pipes_broken"]


def test_keepalive_ends_a_half_open_connection():
    with rep_with_a_vanished_req(tcp_keepalive=1000) as rep:
        t0 = time.monotonic()
        while open_pipes(rep) and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        gone_after = time.monotonic() - t0
        assert open_pipes(rep) == 0, "the vanished peer's pipe is still open after 10 s"
        assert rep.stats["pipes_broken"] == 1
    print(f"\nhalf-open connection ended after {gone_after:.1f} s (tcp_keepalive 1000 ms)")


def test_without_keepalive_it_stays():
    """What the option is for: with it off, the pipe outlives the probes' time."""
    with rep_with_a_vanished_req(tcp_keepalive=0) as rep:
        time.sleep(3)
        assert open_pipes(rep) == 1


def test_keepalive_is_an_option_with_a_default():
    with nnofi.Pair() as s:
        assert s.tcp_keepalive == 10000
        s.tcp_keepalive = 0
        assert s.tcp_keepalive == 0
        with pytest.raises(ValueError):
            s.tcp_keepalive = -1


# A PUSH in a child process that vanishes on request: its TCP sockets (the
# library's or libfabric's) put in repair mode, then the process exits.
VANISHING_PUSH = """
import os, socket, sys, time
import nnofi
push = nnofi.Push(connect=sys.argv[1], send_timeout=3000)
push.send(b"hello")
sys.stdin.readline()
time.sleep(0.3)  # the peer's delayed ACK comes first: after us, this kernel would answer it with RST
for fd in os.listdir("/proc/self/fd"):
    try:
        s = socket.socket(fileno=int(fd))
    except OSError:
        continue
    try:
        if s.family in (socket.AF_INET, socket.AF_INET6) and s.type == socket.SOCK_STREAM:
            s.setsockopt(socket.IPPROTO_TCP, 19, 1)  # TCP_REPAIR
    except OSError as e:
        print("no repair mode for fd", fd, e, file=sys.stderr)
    s.detach()
os._exit(0)
"""


def pull_with_a_vanished_push(url, keepalive_ms):
    pull = nnofi.Pull(recv_timeout=5000, tcp_keepalive=keepalive_ms)
    real = pull.bind(url).url
    child = subprocess.Popen([sys.executable, "-c", VANISHING_PUSH, real], stdin=subprocess.PIPE)
    try:
        assert pull.recv() == b"hello"
        child.stdin.write(b"go\n")
        child.stdin.flush()
        assert child.wait(10) == 0
    finally:
        child.kill()
        child.wait(5)
    return pull


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:0", "ofi://127.0.0.1:0@tcp"])
def test_keepalive_ends_a_vanished_process_s_connection(url):
    if url.startswith("ofi"):
        from nnofi import fabric
        if not any(p.provider == "tcp" and p.ep_type == "MSG" for p in fabric.providers()):
            pytest.skip("no libfabric tcp provider here")
    if os_geteuid() != 0:
        pytest.skip("TCP_REPAIR needs CAP_NET_ADMIN (root) to make a peer vanish silently")
    with pull_with_a_vanished_push(url, 1000) as pull:
        t0 = time.monotonic()
        while open_pipes(pull) and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert open_pipes(pull) == 0, f"{url}: the vanished peer's pipe is still open after 10 s"
        print(f"\n{url}: half-open connection ended after {time.monotonic() - t0:.1f} s")


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:0", "ofi://127.0.0.1:0@tcp"])
def test_a_vanished_process_s_connection_stays_without_keepalive(url):
    if os_geteuid() != 0:
        pytest.skip("TCP_REPAIR needs CAP_NET_ADMIN (root) to make a peer vanish silently")
    with pull_with_a_vanished_push(url, 0) as pull:
        time.sleep(3)
        assert open_pipes(pull) == 1, (url, pull.stats)


def os_geteuid():
    import os

    return os.geteuid()
