"""Run the matrix's cells through the lab harness. Per backend: bring its
lab up unless it is (and down again after), one pytest run of the family
tests over every transport (pytest-xdist), then one of the data tests
alone (so no other test disturbs the measurements); each run's JUnit XML
is split into cells (cells.py). Cells that are excluded, outside the QUICK
slice, or on a backend this machine cannot run are skipped with why."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import cells as C
from .junit import TestResult, read
from .spec import Cell, Spec

ROOT = Path(__file__).resolve().parents[2]
Log = Callable[[str], None]


@dataclass
class RunRecord:
    """One pytest run: what ran, how it ended, where its output is."""
    backend: str
    kind: str  # families or data
    command: List[str]
    exit: Optional[int]  # None: killed at the deadline
    seconds: float
    summary: str  # pytest's closing line, or why there is none
    log: str


def backend_unavailable(topology: str) -> Optional[str]:
    """Why the lab of this topology cannot run here (its own backend, or
    that of the lab providing its nodes), or None."""
    from nnofi_lab import backends, topology as topo_mod
    topo = topo_mod.load(topology)
    why = backends.get(topo.backend).unavailable()
    if why:
        return f"the {topo.backend} backend is not usable here: {why}"
    if topo.provided_by:
        inner = backend_unavailable(topo.provided_by)
        if inner:
            return f"its nodes are lab {topo.provided_by}'s: {inner}"
    return None


def _is_up(topology: str) -> bool:
    from nnofi_lab import Lab
    with Lab.load(topology) as lab:
        return lab.is_up()


def _lab_cli(command: str, topology: str, log_file: Path, rxe: bool = False) -> Tuple[int, str]:
    argv = [sys.executable, "-m", "nnofi_lab", command, "--topology", topology] + (["--rxe"] if rxe else [])
    with open(log_file, "a") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=900)
    tail = log_file.read_text().strip().splitlines()[-1:] or [""]
    return r.returncode, tail[0]


def bring_up(topology: str, log_file: Path, log: Log, rxe: bool) -> Tuple[List[str], Optional[str]]:
    """Bring the lab (and the lab providing its nodes) up where down. The
    labs brought up, to take down after; an error if one did not come up."""
    from nnofi_lab import topology as topo_mod
    provider = topo_mod.load(topology).provided_by
    was_down = [t for t in ([provider] if provider else []) + [topology] if not _is_up(t)]
    if rxe and not was_down:
        log(f"  lab {topology} is up already: its nodes keep the RDMA devices they have "
            "(RXE=1 acts on labs this run brings up)")
    for t in was_down:
        log(f"  bringing up lab {t}" + (" with rxe" if rxe else ""))
        rc, last = _lab_cli("up", t, log_file, rxe)
        if rc != 0:
            return was_down, f"lab {t} did not come up (`python -m nnofi_lab up` exit {rc}: {last}); see {log_file}"
    return was_down, None


def take_down(labs: List[str], log_file: Path, log: Log) -> None:
    for t in reversed(labs):  # the ssh lab before the lab that provides its nodes
        log(f"  taking down lab {t} (it was down before the matrix)")
        _lab_cli("down", t, log_file)


def pytest_command(spec: Spec, topology: str, todo: List[Cell], kind: str, junit: Path) -> List[str]:
    transports = sorted({spec.transport(c.transport) for c in todo}, key=spec.transports.index)
    kinds = [k for k in ("tcp", "ipc", "ofi") if any(t.kind == k for t in transports)]
    providers = [t.provider for t in transports if t.kind == "ofi"]
    if kind == "families":
        wanted = {c.column for c in todo if not c.is_data}
        tests = [t for f in spec.families if f.name in wanted for t in f.tests]
        parallel = ["-n", str(spec.workers)] if spec.workers > 1 else ["-p", "no:xdist"]
    else:
        tests, parallel = list(spec.data_tests), ["-p", "no:xdist"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "ci.matrix.pytest_cells", *parallel,
           "-o", "junit_family=xunit1",  # xunit2 warns at every record_property
           "--lab", topology, "--lab-keep", "--lab-transports", ",".join(kinds)]
    if providers:
        cmd += ["--lab-providers", ",".join(providers)]
    # pytest would collect a test named twice twice (a file and one of its tests)
    return cmd + ["--junitxml", str(junit)] + list(dict.fromkeys(tests))


def run_pytest(cmd: List[str], env: Dict[str, str], log_file: Path, timeout: float) -> Tuple[Optional[int], str]:
    """Run one pytest to its end or its deadline (then its process group is
    killed); its exit status and closing line."""
    with open(log_file, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True)
        try:
            rc: Optional[int] = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    lines = [ln for ln in log_file.read_text().splitlines() if ln.strip()]
    summary = lines[-1].strip("= ") if lines else "no output"
    return rc, (f"killed after {timeout:.0f}s" if rc is None else summary)


def run_backend(spec: Spec, backend: str, todo: List[Cell], out: Path, log: Log,
                rxe: bool) -> Tuple[List[dict], List[RunRecord]]:
    topology = spec.backends[backend]
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    lab_log = runs_dir / f"{backend}-lab.log"
    lab_log.write_text("")
    brought, error = bring_up(topology, lab_log, log, rxe)
    records: List[dict] = []
    runs: List[RunRecord] = []
    try:
        if error:
            log(f"  {error}")
            return [C.record(c, "failed", error) for c in todo], runs
        sizes = sorted({c.size for c in todo if c.is_data})
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   NNOFI_LAB_PORT_BASE=str(spec.port_base),  # apart from other runs on the same lab
                   NNOFI_MATRIX_SIZES=",".join(map(str, sizes)), NNOFI_MATRIX_SECONDS=str(spec.data_seconds))
        for kind, mine in (("families", [c for c in todo if not c.is_data]), ("data", [c for c in todo if c.is_data])):
            if not mine:
                continue
            junit, log_file = runs_dir / f"{backend}-{kind}.xml", runs_dir / f"{backend}-{kind}.log"
            for f in (junit, log_file):
                f.unlink(missing_ok=True)
            cmd = pytest_command(spec, topology, mine, kind, junit)
            t0 = time.monotonic()
            rc, summary = run_pytest(cmd, env, log_file, spec.timeout_s)
            seconds = time.monotonic() - t0
            where = str(log_file.relative_to(out))
            log(f"  {kind}: {summary} ({seconds:.0f}s, exit {rc}; {where})")
            runs.append(RunRecord(backend, kind, cmd, rc, round(seconds, 1), summary, where))
            results: List[TestResult] = read(junit)
            ended = f"pytest exited {rc} ({summary})" if rc is not None else summary
            no_result = f"no result from its tests: {ended}; see {where}"
            records += [C.decide(c, C.tests_of(spec, c, results), no_result) for c in mine]
        return records, runs
    finally:
        take_down(brought, lab_log, log)


def run(spec: Spec, out: Path, log: Log, left_out: Callable[[Cell], Optional[str]] = lambda c: None,
        rxe: bool = False) -> Tuple[List[dict], List[RunRecord]]:
    """Every declared cell's record, in the spec's order, and the runs.
    left_out(cell) says why this run leaves a cell out (QUICK=1, --backends),
    or None to run it."""
    records: Dict[str, dict] = {}
    runs: List[RunRecord] = []
    for backend, topology in spec.backends.items():
        todo = []
        for cell in (c for c in spec.cells() if c.backend == backend):
            excluded, why_not = spec.excluded(cell), left_out(cell)
            if excluded:
                records[cell.id] = C.skipped(cell, excluded, C.EXCLUDED)
            elif why_not:
                records[cell.id] = C.skipped(cell, why_not, C.SLICE)
            else:
                todo.append(cell)
        if not todo:
            continue
        why = backend_unavailable(topology)
        log(f"[{backend}] lab {topology}: {len(todo)} cells" + (f": skipped, {why}" if why else ""))
        if why:
            records.update((c.id, C.skipped(c, why, C.BACKEND)) for c in todo)
            continue
        got, ran = run_backend(spec, backend, todo, out, log, rxe)
        records.update((r["id"], r) for r in got)
        runs += ran
    return [records[c.id] for c in spec.cells()], runs


def runs_as_dicts(runs: List[RunRecord]) -> List[dict]:
    return [asdict(r) for r in runs]
