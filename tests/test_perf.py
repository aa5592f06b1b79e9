"""nnofi.perf (`make bench`): fi_pingpong's output read right, the floors
met or missed as the numbers say, the table, JSON and PNG written, the
nanomsg C driver built and run, a Python cell run in two processes. Tiny
budgets and fixtures; nothing here asserts a speed."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import nnofi.perf
from nnofi.perf import FiPingpongError, floor_lines, floors, human, parse_fi_pingpong, short, table
from nnofi.perf import budget, nanomsg_c, sweep
from nnofi.perf.cells import run_cell
from nnofi.perf.plot import lines, plot

TINY = {"repeats": 1, "seconds": 0.05}

# ---- fi_pingpong's output (Debian's libfabric-bin 1.17) ---------------------------

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


# ---- floors, table, JSON, plot, from a fixture --------------------------------------

MiB = 1 << 20
ROWS = [
    {"library": "pyzmq", "transport": "tcp", "size": 64, "latency_us": 40.0, "msgs_per_s": 1e6, "MB_per_s": 64.0},
    {"library": "nnofi", "transport": "tcp", "size": 64, "latency_us": 20.0, "msgs_per_s": 1.2e6, "MB_per_s": 76.8},
    {"library": "nnofi-batch", "transport": "tcp", "size": 64, "msgs_per_s": 2e6, "MB_per_s": 128.0},
    {"library": "nnofi", "transport": "ofi+tcp", "size": 64, "latency_us": 15.0},
    {"library": "fi_pingpong", "transport": "ofi+tcp", "size": 64, "latency_us": 12.0, "MB_per_s": 5.0},
    {"library": "nnofi", "transport": "ofi+shm", "size": 64, "note": "latency failed: BadURL"},
    {"library": "fi_pingpong", "transport": "ofi+shm", "size": 64, "latency_us": 1.2},
    {"library": "pyzmq", "transport": "tcp", "size": MiB, "latency_us": 700.0, "msgs_per_s": 1500.0, "MB_per_s": 1500.0},
    {"library": "nnofi", "transport": "ofi+shm", "size": MiB, "latency_us": 500.0, "msgs_per_s": 5000.0, "MB_per_s": 5000.0},
    {"library": "fi_pingpong", "transport": "ofi+shm", "size": MiB, "latency_us": 300.0, "MB_per_s": 7000.0},
]
MEMORY = {"size": 1 << 30, "transport": "ofi+shm", "limit": 64 * MiB, "runs": [
    {"sender_call": "send(writable array)", "receiver_call": "recv_into(array)", "copies": ["sender"],
     "sender_growth_beyond": 1 << 30, "receiver_growth_beyond": 2 * MiB},
    {"sender_call": "send(writable array, copy=False)", "receiver_call": "recv_msg()", "copies": [],
     "sender_growth_beyond": 1 << 30, "receiver_growth_beyond": 3 * MiB},
    {"sender_call": "send(read-only array)", "receiver_call": "recv_msg()", "error": "receiver: Timeout"},
]}


def test_floors_say_met_or_missed_with_the_ratio_and_what_is_missing():
    by_name = {e["name"]: e for e in floors(ROWS, MEMORY)}
    tcp = by_name["nnofi ofi+tcp 64B rtt / fi_pingpong tcp rtt"]
    assert tcp["ratio"] == pytest.approx(1.25) and tcp["meets"] and tcp["floor"] == "<= 1.5x"
    zmq = by_name["nnofi ofi+tcp 64B rtt / pyzmq tcp rtt"]
    assert zmq["ratio"] == pytest.approx(0.375) and zmq["meets"] is False
    shm = by_name["nnofi ofi+shm 64B rtt / fi_pingpong shm rtt"]
    assert shm["ratio"] is None and "no nnofi ofi+shm 64B rtt (its row says why)" in shm["missing"]
    # rates: higher is better
    assert by_name["nnofi tcp 64B msg/s / pyzmq tcp msg/s"]["meets"]  # 1.2x >= 1x
    batch = by_name["nnofi-batch tcp 64B msg/s / pyzmq tcp msg/s"]
    assert batch["ratio"] == pytest.approx(2.0) and batch["meets"] is False  # floor 3x
    assert by_name["nnofi ofi+shm 1MiB MB/s / fi_pingpong shm MB/s"]["meets"] is False  # 0.71x < 0.8x
    assert by_name["nnofi ofi+shm 1MiB MB/s / pyzmq tcp MB/s"]["ratio"] == pytest.approx(10 / 3)
    # a floor whose rows are not part of the run is left out
    assert "nnofi tcp 1MiB MB/s / pyzmq tcp MB/s" not in by_name
    memory = [e for e in floors(ROWS, MEMORY) if e["metric"] == "rss_growth_beyond"]
    assert [e["meets"] for e in memory] == [None, True, False, True, None, None]
    assert memory[0]["floor"] == "none: this side copies by design"  # the sender's send(writable array)
    assert all("missing" in e for e in memory[4:])

    entries = floors(ROWS, MEMORY)
    text = floor_lines(entries)
    assert "1.25x  met (floor <= 1.5x; 15.0 us / 12.0 us)" in text
    assert "0.38x  MISSED" in text and "2.00x  MISSED (floor >= 3x" in text
    assert "1024.0 MiB  reference (floor none: this side copies by design)" in text
    assert "1024.0 MiB  MISSED (floor < 64MiB)" in text and "3.0 MiB  met" in text
    assert text.count("\n") == len(entries)  # one heading, one line per floor


def test_the_table_has_every_row_and_dashes_for_what_is_not_measured():
    rows = [dict(r) for r in ROWS]
    from nnofi.perf.report import add_pyzmq_ratios

    add_pyzmq_ratios(rows)
    assert rows[1]["latency_vs_pyzmq"] == pytest.approx(0.5)
    assert rows[3]["latency_vs_pyzmq"] == pytest.approx(15 / 40)  # ofi rows: against pyzmq over tcp
    assert "throughput_vs_pyzmq" not in rows[4]  # fi_pingpong's MB/s is ping-pong, not a stream
    lines_ = table(rows).splitlines()
    assert len(lines_) == 1 + len(rows)
    assert lines_[0].split()[:3] == ["library", "transport", "size"]
    batch = next(line for line in lines_ if line.startswith("nnofi-batch"))
    assert batch.split()[3] == "-"  # no round trip for the batch API
    assert lines_[6].endswith("latency failed: BadURL")


def test_short_notes_keep_the_reason():
    long = "server: BadURL: bind 'ofi://127.0.0.1:0@shm': no connected endpoint here. MSG endpoints: " + "x; " * 100
    assert short(long).endswith("no connected endpoint here. ...")
    assert len(short("y" * 500)) == 160
    assert human(1 << 20) == "1MiB" and human(64) == "64B" and human(1 << 30) == "1GiB"


def test_the_plot_is_a_png_with_a_line_per_library_and_transport(tmp_path):
    pytest.importorskip("matplotlib")
    assert lines(ROWS, "latency_us")[("nnofi", "ofi+tcp")] == [(64, 15.0)]
    assert ("nnofi-batch", "tcp") not in lines(ROWS, "latency_us")
    assert lines(ROWS, "MB_per_s")[("pyzmq", "tcp")] == [(64, 64.0), (MiB, 1500.0)]
    path = tmp_path / "bench.png"
    assert plot(ROWS, str(path), "fixture") is None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- what a run has ------------------------------------------------------------------


def test_the_full_sweep_has_every_peer_and_batch_only_for_small_sizes():
    rows, _ = sweep.plan(list(sweep.LIBRARIES), ["inproc", "ipc", "tcp", "ofi+tcp", "ofi+shm"], ["tcp"],
                         list(budget.SIZES))
    assert budget.SIZES[0] == 64 and budget.SIZES[-1] == 64 * MiB and len(budget.SIZES) == 11
    for size in budget.SIZES:
        for lib in ("pyzmq", "pynng", "nanomsg", "nnofi"):
            assert (lib, "tcp", size) in rows
        assert ("fi_pingpong", "ofi+tcp", size) in rows and ("fi_pingpong", "ofi+shm", size) in rows
        assert (("nnofi-batch", "tcp", size) in rows) == (size <= budget.BATCH_MAX_SIZE)
    assert not [r for r in rows if r[0] in ("pyzmq", "pynng", "nanomsg") and r[1] != "tcp"]
    assert not [r for r in rows if r[0] == "fi_pingpong" and not r[1].startswith("ofi")]
    # a size's rows together, as the table shows them
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)


class ScriptedRunners:
    """Runners whose measurements come from a script: per (library, what,
    transport, size), the numbers of each round in turn."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def cell(self, lib, what, transport, size):
        self.calls.append((lib, what, transport, size))
        return self.script[lib, what, transport, size].pop(0)


def test_floor_rows_are_measured_in_rounds_and_keep_their_medians():
    rows = [{"library": "nnofi", "transport": "ofi+tcp", "size": 64, "latency_us": 30.0, "msgs_per_s": 9.0},
            {"library": "fi_pingpong", "transport": "ofi+tcp", "size": 64, "latency_us": 14.0, "MB_per_s": 8.0},
            {"library": "pyzmq", "transport": "tcp", "size": 64, "note": "latency failed: Timeout"},
            {"library": "nnofi", "transport": "ipc", "size": 64, "latency_us": 9.0}]
    runners = ScriptedRunners({
        ("nnofi", "latency", "ofi+tcp", 64): [{"latency_us": 20.0}, {"error": "Timeout"}, {"latency_us": 22.0}],
        ("fi_pingpong", "pingpong", "ofi+tcp", 64): [{"latency_us": 15.0, "MB_per_s": 9.0},
                                                      {"latency_us": 16.0, "MB_per_s": 7.0},
                                                      {"latency_us": 13.0, "MB_per_s": 10.0}]})
    sweep.remeasure_floor_rows(rows, runners, 4, lambda *a: None)
    # a round measures each floor row once, a floor's two together; rows
    # that failed, and rows no floor names, are left alone
    assert runners.calls == [("nnofi", "latency", "ofi+tcp", 64), ("fi_pingpong", "pingpong", "ofi+tcp", 64)] * 3
    nnofi_row, ping = rows[0], rows[1]
    assert nnofi_row["latency_us_rounds"] == [30.0, 20.0, 22.0] and nnofi_row["latency_us"] == 22.0
    assert nnofi_row["msgs_per_s"] == 9.0 and "msgs_per_s_rounds" not in nnofi_row  # a latency cell's row
    assert ping["latency_us"] == 14.5 and ping["MB_per_s_rounds"] == [8.0, 9.0, 7.0, 10.0]
    assert rows[3] == {"library": "nnofi", "transport": "ipc", "size": 64, "latency_us": 9.0}


def test_an_absent_transport_is_skipped_saying_why(monkeypatch):
    monkeypatch.setattr(sweep, "absent", lambda t: "no RDMA device" if t == "ofi+verbs" else None)
    rows, skipped = sweep.plan(["nnofi", "fi_pingpong"], ["tcp", "ofi+verbs"], ["tcp"], [64])
    assert skipped == ["ofi+verbs: no RDMA device"]
    assert rows == [("nnofi", "tcp", 64)]


def test_budgets_shrink_with_size():
    assert budget.phase_max_msgs(64 * MiB) * 64 * MiB <= budget.PHASE_MAX_BYTES
    assert budget.phase_max_msgs(1 << 30) == budget.MIN_MSGS
    assert budget.phase_max_msgs(64) == budget.THR_MAX_MSGS
    assert budget.throughput_warmup(64 * MiB) == 2 and budget.throughput_warmup(64) == 1000
    assert budget.latency_warmup(64 * MiB) == 2
    assert budget.batch_send_count(64) * 64 <= 64 << 10
    probe, least, most = budget.fi_pingpong_iterations(64 * MiB)
    assert probe == 3 and least <= 4 < most


def test_the_old_public_names_are_still_there():
    for name in ("measure_latency", "measure_throughput", "run_cell", "ADAPTERS", "FiPingpong",
                 "parse_fi_pingpong", "table", "main"):
        assert hasattr(nnofi.perf, name), name
    assert {"nnofi", "pyzmq", "pynng"} <= set(nnofi.perf.ADAPTERS)


# ---- real runs, tiny ---------------------------------------------------------------------


def _nanomsg_driver(build_dir):
    try:
        return nanomsg_c.NanomsgDriver(str(build_dir))
    except nanomsg_c.NanomsgUnavailable as exc:
        pytest.skip(str(exc))


def test_the_nanomsg_driver_builds_once_and_runs_a_cell(tmp_path):
    driver = _nanomsg_driver(tmp_path)
    built = os.stat(driver.exe).st_mtime_ns
    assert nanomsg_c.NanomsgDriver(str(tmp_path)).exe == driver.exe
    assert os.stat(driver.exe).st_mtime_ns == built  # cached by the source's hash
    for transport in ("ipc", "tcp"):
        lat = driver.measure("latency", transport, 64, str(tmp_path), TINY)
        assert lat["latency_us"] > 0 and len(lat["latency_repeats_us"]) == 1
        thr = driver.measure("throughput", transport, 1000, str(tmp_path), TINY)
        assert thr["msgs_per_s"] > 0 and thr["MB_per_s"] == pytest.approx(thr["msgs_per_s"] * 1000 / 1e6, rel=1e-3)


def test_the_nanomsg_driver_says_why_it_cannot_build(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(nanomsg_c.NanomsgUnavailable, match="C compiler"):
        nanomsg_c.build(str(tmp_path))


@pytest.mark.parametrize("lib, what, transport", [("nnofi", "latency", "tcp"), ("nnofi-batch", "throughput", "tcp"),
                                                  ("nnofi", "throughput", "inproc")])
def test_a_python_cell_runs_in_two_processes(lib, what, transport, tmp_path):
    result = run_cell(lib, what, transport, 64, str(tmp_path), TINY)
    assert "error" not in result, result["error"]
    assert result["version"] == nnofi.__version__
    assert (result["latency_us"] if what == "latency" else result["msgs_per_s"]) > 0


def test_the_command_line_writes_table_json_and_plot(tmp_path):
    if shutil.which("cc") is None or nanomsg_c.version() is None:
        pytest.skip("needs cc and libnanomsg-dev (the quickest library to run end to end)")
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "nnofi.perf", "--libs", "nanomsg", "--sizes", "64,4KiB",
                           "--transports", "tcp,ipc", "--peer-transports", "tcp,ipc", "--seconds", "0.05",
                           "--repeats", "1", "--memory-size", "0", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("nanomsg ")]
    assert len(rows) == 4
    doc = json.loads((out / "bench.json").read_text())
    assert {(r["transport"], r["size"]) for r in doc["results"]} == {("tcp", 64), ("tcp", 4096), ("ipc", 64), ("ipc", 4096)}
    assert all(r["latency_us"] > 0 and r["msgs_per_s"] > 0 for r in doc["results"])
    if "# plot: " in done.stdout:
        assert (out / "bench.png").stat().st_size > 0
    else:
        assert "# no plot: matplotlib" in done.stdout


def test_nnofi_perf_hands_every_option_to_the_bench(capsys):
    from nnofi import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["perf", "--quick", "--help"])
    assert done.value.code == 0
    assert "--peer-transports" in capsys.readouterr().out
