"""ofi:// memory a peer can make the receiver take: registrations stay
within mr_cache_max (plus the one transfer being read) however many big
messages a sender announces and the application keeps; and a frame that
is announced big but stops arriving costs what arrived, not what was
claimed (as tcp and ipc do: tests/badinput)."""
import os
import signal
import time

import numpy as np
import pytest

import nnofi
from nnofi._native import ffi, lib
from ofi_providers import url_for
from sechelpers import Child, serve, wait_for

MSG = 512 * 1024  # over rendezvous_min (128 KiB)
CACHE = 3 * MSG
FLOOD = 24


def mr_live_bytes():
    """Bytes of memory registrations alive in this process (the receiver:
    senders run in child processes)."""
    count, nbytes = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    lib.nnofi_mr_live(count, nbytes)
    return nbytes[0]


def vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def readonly_zeros(n):
    """Never touched, so it costs the sender no memory: calloc'd pages."""
    arr = np.zeros(n, dtype=np.uint8)
    arr.flags.writeable = False
    return arr


def _sender(conn, url, opts):
    with nnofi.Push(connect=url, send_timeout=30000, **opts) as push:

        def send(request):
            count, size = request
            for i in range(count):
                push.send(bytes([i]) * size)
            return push.stats

        def send_zeros(size):
            def queued():  # goes on in the background
                try:
                    push.send(readonly_zeros(size), block=False)
                    return True
                except nnofi.Again:
                    return False

            # not blocking: the Pull may see the pipe before this side can send on it
            wait_for(queued, "the pipe to take the send")
            return True

        serve(conn, lambda request: send_zeros(request[1]) if request[0] == "zeros" else send(request))


def test_rendezvous_flood_stays_within_mr_cache_max(any_provider):
    with nnofi.Pull(mr_cache_max=CACHE, recv_timeout=30000) as pull:
        url = pull.bind(url_for(any_provider)).url
        base = mr_live_bytes()
        with Child(_sender, url, {}) as sender:
            sender.conn.send((FLOOD, MSG))
            kept, peak = [], 0
            for _ in range(FLOOD):
                kept.append(pull.recv_msg())  # the application keeps every body
                peak = max(peak, mr_live_bytes() - base)
            sender.answer()
        settled = mr_live_bytes() - base
        stats = pull.stats
    assert stats["rendezvous_recv"] == FLOOD
    print(f"\n{any_provider}: {FLOOD} x {MSG >> 10} KiB kept, registrations peaked at {peak >> 10} KiB, "
          f"{settled >> 10} KiB after; {stats['mr_evictions']} evicted")
    assert peak <= CACHE + MSG, "over the cache limit by more than the transfer being read"
    assert settled <= CACHE
    assert stats["mr_evictions"] >= FLOOD - CACHE // MSG
    assert all(bytes(m) == bytes([i]) * MSG for i, m in enumerate(kept)), "an eviction spoiled a body"


CLAIM = 1 << 30


def test_eager_frame_costs_what_arrived_not_what_was_claimed(any_provider):
    """A 1 GiB frame sent by copy (rendezvous off), its sender frozen soon
    after it began: the receiver (recv_max_size -1) must not have reserved
    the whole GiB."""
    with nnofi.Pull(recv_max_size=-1) as pull:
        url = pull.bind(url_for(any_provider)).url
        with Child(_sender, url, dict(rendezvous_min=-1)) as sender:
            wait_for(lambda: pull.stats["pipes_opened"] >= 1, "the sender to connect")
            before = vm_size()
            assert sender.ask(("zeros", CLAIM))
            # read the header and some chunks: 50 ms, or until 64 MiB have
            # come (a fast loopback can carry over 128 MiB in 50 ms, and
            # what arrives is rightly held)
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline and vm_size() - before < CLAIM // 16:
                with pytest.raises(nnofi.Again):
                    pull.recv(block=False)
            os.kill(sender.proc.pid, signal.SIGSTOP)
            for _ in range(20):
                with pytest.raises(nnofi.Again):
                    pull.recv(block=False)
            grown = vm_size() - before
            sender.proc.kill()
    print(f"\n{any_provider}: address space +{grown >> 20} MiB for a {CLAIM >> 20} MiB claim")
    assert grown < CLAIM // 4, f"{grown >> 20} MiB reserved for a frame that stopped arriving"
