"""Big received bodies reuse memory: a message read in pieces grows into a
kept block instead of fresh pages, which the kernel would fault in (and
zero) for every message. Before, a 1 MiB REQ/REP round trip over tcp took
480 page faults and three times as long; 16 MiB ones (over the kept
blocks' old 8 MiB limit) faulted every page twice."""
import os
import resource
import threading

import pytest

import nnofi

SANITIZED = bool(os.environ.get("NNOFI_EXPECT_SANITIZED")) or "asan" in os.environ.get("LD_PRELOAD", "")


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(SANITIZED, reason="ASan builds keep no blocks: it must see every free")
@pytest.mark.parametrize("url,size", [("tcp://127.0.0.1:0", 1 << 20), ("ipc", 1 << 20), ("tcp://127.0.0.1:0", 16 << 20)])
def test_big_round_trips_fault_in_no_fresh_pages(url, size, tmp_path):
    url = f"ipc://{tmp_path}/big.ipc" if url == "ipc" else url
    warm, measured = (20, 50) if size <= 1 << 20 else (6, 10)
    opts = dict(recv_timeout=5000, send_timeout=5000, recv_max_size=-1)
    with nnofi.Rep(**opts) as rep, nnofi.Req(**opts) as req:
        req.connect(rep.bind(url).url)
        echo = threading.Thread(target=lambda: [rep.send(rep.recv()) for _ in range(warm + measured)], daemon=True)
        echo.start()
        msg = os.urandom(size)
        for _ in range(warm):
            req.send(msg)
            assert req.recv() == msg
        before = minor_faults()
        for _ in range(measured):
            req.send(msg)
            req.recv()
        per_round_trip = (minor_faults() - before) / measured
        echo.join(10)
        pages = size // resource.getpagesize()
        assert per_round_trip < pages / 16, f"{per_round_trip:.0f} page faults per round trip of {pages} pages"
