"""nnofi.perf's reading of fi_pingpong's output and its ratio lines, on
captured output (fi_pingpong from Debian's libfabric-bin 1.17): no
processes, no sockets."""
import pytest

from nnofi.perf import FiPingpongError, human, parse_fi_pingpong, ratios, short

# fi_pingpong -p tcp -e msg -S 64 -I 1000 [-P PORT 127.0.0.1]
TCP_64 = """\
bytes   #sent   #ack     total       time     MB/sec    usec/xfer   Mxfers/sec
64      1k      =1k      125k        0.01s      9.43       6.78       0.15
"""
# fi_pingpong -p shm -e rdm -S 1048576 -I 2000
SHM_1M = """\
bytes   #sent   #ack     total       time     MB/sec    usec/xfer   Mxfers/sec
1m      2k      =2k      3.9g        0.33s  12779.25      82.05       0.01
"""


def test_usec_per_xfer_is_one_way_so_the_round_trip_is_twice_it():
    r = parse_fi_pingpong(TCP_64)
    assert r["usec_per_xfer"] == 6.78
    assert r["rtt_us"] == pytest.approx(13.56)
    assert r["MB_per_s"] == 9.43
    assert r["seconds"] == 0.01
    # MB/sec counts both directions: size / one-way time, in 10**6 B/s
    assert 64 / r["usec_per_xfer"] == pytest.approx(r["MB_per_s"], rel=0.01)


def test_big_messages_and_a_name_column():
    r = parse_fi_pingpong(SHM_1M)
    assert r["rtt_us"] == pytest.approx(164.1)
    assert (1 << 20) / r["usec_per_xfer"] == pytest.approx(r["MB_per_s"], rel=0.01)
    named = ("name" + " " * 46 + SHM_1M.splitlines()[0] + "\n"
             + "pingpong" + " " * 42 + SHM_1M.splitlines()[1] + "\n")
    assert parse_fi_pingpong(named)["rtt_us"] == pytest.approx(164.1)


@pytest.mark.parametrize("text, says", [
    ("", "no result line"),
    ("fi_getinfo(): util/pingpong.c:1489, ret=-61 (No data available)\n", "no result line"),
    (TCP_64.replace("=1k", "+12 "), "not all pongs"),
    (TCP_64.replace("6.78", "n/a"), "unreadable"),
    (TCP_64.replace("0.01s", ""), "does not match"),
])
def test_unusable_output_says_why(text, says):
    with pytest.raises(FiPingpongError, match=says):
        parse_fi_pingpong(text)


def test_ratio_lines_name_both_sides_and_say_what_is_missing():
    rows = [
        {"library": "pyzmq", "transport": "tcp", "size": 64, "latency_us": 40.0},
        {"library": "nnofi", "transport": "ofi+tcp", "size": 64, "latency_us": 15.0},
        {"library": "fi_pingpong", "transport": "ofi+tcp", "size": 64, "latency_us": 12.0},
        {"library": "nnofi", "transport": "ofi+shm", "size": 64, "note": "latency failed: BadURL"},
        {"library": "fi_pingpong", "transport": "ofi+shm", "size": 64, "latency_us": 1.2},
    ]
    by_name = {e["name"]: e for e in ratios(rows)}
    tcp = by_name["nnofi ofi+tcp 64B rtt / fi_pingpong tcp rtt"]
    assert tcp["ratio"] == pytest.approx(1.25) and tcp["meets_floor"] and tcp["floor"] == 1.5
    zmq = by_name["nnofi ofi+tcp 64B rtt / pyzmq tcp rtt"]
    assert zmq["ratio"] == pytest.approx(0.375) and not zmq["meets_floor"]
    shm = by_name["nnofi ofi+shm 64B rtt / fi_pingpong shm rtt"]
    assert shm["ratio"] is None and "no nnofi ofi+shm 64B rtt" in shm["missing"]


def test_short_notes_keep_the_reason():
    long = "server: BadURL: bind 'ofi://127.0.0.1:0@shm': no connected endpoint here. MSG endpoints: " + "x; " * 100
    assert short(long).endswith("no connected endpoint here. ...")
    assert len(short("y" * 500)) == 160
    assert human(1 << 20) == "1MiB" and human(64) == "64B"
