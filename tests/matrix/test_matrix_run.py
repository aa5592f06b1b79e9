"""The matrix runner end to end, on a local lab of its own (two loopback
nodes): cells that pass, fail, skip, are excluded, or sit on a backend
this machine lacks, from real pytest runs through the lab plugin; and
`python -m ci.matrix` exits 1 on the failed cell, says which, and writes
its three reports."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # ci/ is no installed package
from ci.matrix import junit, run  # noqa: E402
from ci.matrix import spec as S  # noqa: E402

OUTCOMES = "tests/matrix/cell_outcomes.py"


@pytest.fixture
def matrix(tmp_path, monkeypatch):
    # The runner's pytest runs use this tree's build, whatever this run
    # uses (make test-asan preloads sanitizers and points at build/asan)
    for var in ("NNOFI_EXPECT_SANITIZED", "PYTHONPATH", "PYTHONSAFEPATH", "LD_PRELOAD", "ASAN_OPTIONS",
                "UBSAN_OPTIONS"):
        monkeypatch.delenv(var, raising=False)
    topo = tmp_path / "e2e.yaml"
    topo.write_text(yaml.safe_dump({"name": "matrix-e2e", "backend": "local", "providers": ["tcp"], "nodes": [
        {"name": "m1", "address": "127.0.0.41"}, {"name": "m2", "address": "127.0.0.42"}]}))
    data = {
        "backends": {"local": str(topo), "nowhere": str(tmp_path / "nowhere.yaml")},
        "providers": {"tcp": "tcp"}, "transports": ["tcp", "ipc", "ofi"], "same_node_only": ["ipc"],
        "socket_types": ["PAIR", "BUS", "PUB"],
        "families": {"ok": {"types": ["PAIR"], "tests": [f"{OUTCOMES}::test_passes"]},
                     "broken": {"types": ["BUS"], "tests": [f"{OUTCOMES}::test_fails"]},
                     "skips": {"types": ["PUB"], "tests": [f"{OUTCOMES}::test_skips"]}},
        "data": {"tests": [f"{OUTCOMES}::test_measures"], "sizes": [64, 1024], "seconds": 0.1},
        "exclusions": [{"transports": ["ofi+tcp"], "columns": ["broken"], "reason": "excluded on purpose"}],
        "quick": {"backends": ["local"], "transports": ["tcp"], "sizes": [64]},
        "run": {"workers": 1, "port_base": 29000, "timeout_s": 120}}
    # a backend whose lab cannot be had: an ssh lab provided by a docker lab with no engine to reach
    (tmp_path / "nowhere.yaml").write_text(yaml.safe_dump({
        "name": "matrix-nowhere", "backend": "ssh", "provided_by": str(tmp_path / "nodocker.yaml"),
        "nodes": [{"name": "n1", "address": "10.99.0.1"}]}))
    (tmp_path / "nodocker.yaml").write_text(yaml.safe_dump({
        "name": "matrix-nodocker", "backend": "docker", "subnet": "10.99.0.0/24",
        "nodes": [{"name": "n1", "address": "10.99.0.2"}]}))
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cells_from_real_runs(matrix, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # the nowhere backend's reason
    spec = S.load(matrix)
    records, runs = run.run(spec, tmp_path / "out", lambda s: None)
    got = {r["id"]: (r["status"], r["reason"]) for r in records}
    assert len(got) == len(spec.cells()) == 2 * 3 * 5
    assert got["local/tcp/ok"] == ("passed", None)
    assert got["local/tcp/broken"][0] == "failed" and "this cell fails on purpose" in got["local/tcp/broken"][1]
    assert got["local/tcp/skips"] == ("skipped", "this cell skips on purpose")
    assert got["local/ofi+tcp/broken"] == ("skipped", "excluded on purpose")
    assert got["local/ipc/ok"] == ("skipped", "ipc reaches only processes of one node (a Unix socket file); "
                                               "this test spans nodes")  # the lab plugin's word
    assert got["nowhere/tcp/ok"][0] == "skipped" and "docker backend is not usable here" in got["nowhere/tcp/ok"][1]
    data = {r["id"]: r for r in records}["local/ofi+tcp/1KiB"]
    assert (data["status"], data["latency_us"], data["bandwidth_MBps"]) == ("passed", 12.5, 102.4)
    assert [(r.backend, r.kind, r.exit) for r in runs] == [("local", "families", 1), ("local", "data", 0)]


def test_the_command_fails_on_a_failed_cell_and_reports(matrix, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock")
    r = subprocess.run([sys.executable, "-m", "ci.matrix", "--spec", str(matrix), "--out", str(out), "--quick"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.startswith("FAILED local/tcp/broken: ") for ln in lines), r.stdout
    assert lines[-1] == "matrix: 2 passed, 1 failed, 27 skipped", r.stdout  # 4 cells in the quick slice
    results = json.loads((out / "results.json").read_text())
    assert results["totals"] == {"passed": 2, "failed": 1, "skipped": 27}
    outside = [c for c in results["cells"] if c["skip_kind"] == "slice"]
    assert outside and all(c["reason"].startswith("outside the QUICK=1 slice") for c in outside)
    assert len(junit.read(out / "junit.xml")) == 30
    assert "local/tcp/broken" in (out / "report.html").read_text()
