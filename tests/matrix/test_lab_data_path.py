"""The fabric matrix's data cells: latency (REQ/REP ping-pong) and bandwidth
(PUSH/PULL stream) of one transport at one message size, between two lab
nodes, or two processes of one node for the transports that reach no
further (ipc, shm). Each passes when every message arrives intact and
records its medians (record_property: latency_us, bandwidth_MBps) for the
matrix's report. Without --lab these skip, like tests/lab.

NNOFI_MATRIX_SIZES (bytes, comma-separated) and NNOFI_MATRIX_SECONDS (time
per measurement) come from ci/matrix.yaml when `make matrix` runs them."""
import os
import statistics

import pytest

from datapath import echo, ping, sink, stream

SIZES = [int(s) for s in os.environ.get("NNOFI_MATRIX_SIZES", "64,65536").split(",")]
SECONDS = float(os.environ.get("NNOFI_MATRIX_SECONDS", "0.3"))
REPEATS = 5  # latency: repeats of the ping-pong (median of their means)
BURSTS = 3  # bandwidth: bursts of the stream (median of their rates)
ROUNDS = 2000  # latency: round trips per repeat at most
STREAM_BYTES = 64 << 20  # bandwidth: bytes per burst at most
SAME_NODE_ONLY = ("ipc", "ofi+shm")


def human(size):
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return f"{size}B"


def measure(server, client, lab_url, size, record_property):
    url = lab_url(server)
    rep = server.spawn(echo, url, size)
    assert rep.recv() == "bound"
    lat = client.run(ping, url, size, REPEATS, SECONDS, ROUNDS)
    assert rep.result() == lat["round_trips"]

    url = lab_url(server)
    pull = server.spawn(sink, url, size, BURSTS)
    assert pull.recv() == "bound"
    per_burst = max(2, min(20000, STREAM_BYTES // size))
    sent = client.run(stream, url, size, BURSTS, SECONDS, per_burst)
    got = pull.result()
    assert [b["messages"] for b in got] == sent, f"sent {sent} messages per burst, received {got}"

    bandwidth = statistics.median(b["MBps"] for b in got)
    record_property("latency_us", round(lat["latency_us"], 2))
    record_property("bandwidth_MBps", round(bandwidth, 2))
    print(f"{size} B: latency {lat['latency_us']:.1f} us ({lat['round_trips']} round trips), "
          f"bandwidth {bandwidth:.1f} MB/s ({sum(sent)} messages)")


@pytest.mark.parametrize("size", SIZES, ids=human)
def test_data_path_between_nodes(node_a, node_b, lab_url, size, record_property):
    measure(node_a, node_b, lab_url, size, record_property)


@pytest.mark.same_node
@pytest.mark.parametrize("size", SIZES, ids=human)
def test_data_path_within_node(node_a, lab_transport, lab_url, size, record_property):
    if lab_transport not in SAME_NODE_ONLY:
        pytest.skip(f"{lab_transport} reaches across nodes: its data path is measured there "
                    "(test_data_path_between_nodes)")
    measure(node_a, node_a.process(1), lab_url, size, record_property)
