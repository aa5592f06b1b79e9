"""From pytest's JUnit XML to the matrix's cells, and the diff against the
previous run: a failed test fails its cell, a cell nothing reported on
fails, a skipped cell says the reason that matters for its transport,
data cells carry their medians; regressions and flips are flagged past
the thresholds only. No lab, no processes."""
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # ci/ is no installed package
from ci.matrix import cells as C  # noqa: E402
from ci.matrix import diff, junit  # noqa: E402
from ci.matrix import spec as S  # noqa: E402

SPEC = S.load()
PAIR = "tests/lab/test_lab_pair.py::test_pair_across_nodes"
PAIR_SAME = "tests/lab/test_lab_same_node.py::test_pair_between_processes_of_one_node"
DATA = "tests/matrix/test_lab_data_path.py::test_data_path_between_nodes"

XML = f"""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="x" name="a" time="1.5"><properties>
 <property name="matrix_nodeid" value="{PAIR}[ofi-shm]"/>
 <property name="matrix_transport" value="ofi+shm"/></properties>
 <skipped type="pytest.skip" message="shm reaches only processes of one node">...</skipped></testcase>
<testcase classname="x" name="b" time="0.5"><properties>
 <property name="matrix_nodeid" value="{PAIR_SAME}[ofi-shm]"/><property name="matrix_transport" value="ofi+shm"/>
 <property name="matrix_same_node" value="1"/></properties>
 <failure message="AssertionError: message 3 came back wrong">long text</failure></testcase>
<testcase classname="x" name="c" time="0.1"><properties>
 <property name="matrix_nodeid" value="{PAIR}[ofi-verbs]"/>
 <property name="matrix_transport" value="ofi+verbs"/></properties>
 <skipped message="verbs not on node1, node2: no RDMA device">...</skipped></testcase>
<testcase classname="x" name="d" time="0.1"><properties>
 <property name="matrix_nodeid" value="{PAIR_SAME}[ofi-verbs]"/><property name="matrix_transport" value="ofi+verbs"/>
 <property name="matrix_same_node" value="1"/></properties>
 <skipped message="verbs not on node1: no RDMA device">...</skipped></testcase>
<testcase classname="x" name="e" time="2.0"><properties>
 <property name="matrix_nodeid" value="{DATA}[tcp-64B]"/><property name="matrix_transport" value="tcp"/>
 <property name="matrix_size" value="64"/><property name="latency_us" value="21.5"/>
 <property name="bandwidth_MBps" value="7.25"/></properties></testcase>
<testcase classname="x" name="f" time="2.0"><properties>
 <property name="matrix_nodeid" value="{DATA}[tcp-4KiB]"/><property name="matrix_transport" value="tcp"/>
 <property name="matrix_size" value="4096"/></properties>
 <error message="failed on setup with LabError">gateway gone</error></testcase>
</testsuite></testsuites>"""


RESULTS = junit.read(io.StringIO(XML))


def cell(transport, column):
    c = next(c for c in SPEC.cells() if c.id == f"docker/{transport}/{column}")
    return C.decide(c, C.tests_of(SPEC, c, RESULTS), "no result")


def test_junit_is_read_with_the_cells_properties():
    assert [r.outcome for r in RESULTS] == ["skipped", "failed", "skipped", "skipped", "passed", "failed"]
    assert RESULTS[4].size == 64 and RESULTS[1].same_node and RESULTS[5].message.startswith("error: ")


def test_a_failed_test_fails_its_cell_even_when_another_skipped():
    c = cell("ofi+shm", "pair")
    assert c["status"] == "failed"
    assert c["reason"] == f"{PAIR_SAME}[ofi-shm]: AssertionError: message 3 came back wrong"
    assert c["detail"] == "long text" and len(c["tests"]) == 2


def test_a_skipped_cell_gives_the_reason_of_its_placement():
    # verbs reaches across nodes: the spanning test's reason, not the same-node one's
    c = cell("ofi+verbs", "pair")
    assert (c["status"], c["reason"], c["skip_kind"]) == \
        ("skipped", "verbs not on node1, node2: no RDMA device", "test")


def test_data_cells_carry_their_medians_and_fail_on_errors():
    c = cell("tcp", "64B")
    assert (c["status"], c["latency_us"], c["bandwidth_MBps"]) == ("passed", 21.5, 7.25)
    assert cell("tcp", "4KiB")["status"] == "failed"


def test_a_cell_nothing_reported_on_fails():
    c = cell("ofi+rxm", "bus")
    assert (c["status"], c["reason"]) == ("failed", "no result")


def test_the_matrix_junit_has_one_testcase_per_cell(tmp_path):
    records = [cell("ofi+shm", "pair"), cell("ofi+verbs", "pair"), cell("tcp", "64B")]
    junit.write(tmp_path / "m.xml", records, 3.0)
    back = junit.read(tmp_path / "m.xml")
    assert [(r.nodeid, r.outcome) for r in back] == [
        ("matrix.docker.ofi+shm::pair", "failed"), ("matrix.docker.ofi+verbs::pair", "skipped"),
        ("matrix.docker.tcp::64B", "passed")]
    assert back[2].properties == {"latency_us": "21.5", "bandwidth_MBps": "7.25"}


def _run(**cells):
    return {"started": "t", "git": "g", "quick": False,
            "cells": [dict({"id": k, "status": "passed", "latency_us": None, "bandwidth_MBps": None}, **v)
                      for k, v in cells.items()]}


def test_regressions_past_the_thresholds_and_flips_are_flagged():
    t = SPEC.regression
    before = _run(a={"latency_us": 100.0, "bandwidth_MBps": 1000.0}, b={"latency_us": 10.0},
                  c={}, d={"status": "failed"}, e={"bandwidth_MBps": 900.0})
    after = _run(a={"latency_us": 100 * (1 + t["latency_pct"] / 100) + 1, "bandwidth_MBps": 1000.0},
                 b={"latency_us": 10.0 + t["latency_min_us"] - 1},  # +190% but under the floor: noise
                 c={"status": "failed", "reason": "boom"}, d={}, e={"bandwidth_MBps": 300.0})
    d = diff.compare(before, after, t)
    assert [(r["cell"], r["metric"]) for r in d["regressions"]] == [("a", "latency_us"), ("e", "bandwidth_MBps")]
    assert [(f["cell"], f["after"]) for f in d["flips"]] == [("c", "failed"), ("d", "passed")]
    assert diff.summary(d) == "against t (g): 2 regressions, 1 newly failing, 1 fixed, 0 improvements"
    assert diff.compare(None, after, t)["previous"] is None
