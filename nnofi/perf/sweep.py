"""The sweep: which rows a run has (library x transport x size), measuring
each, in an order that puts a size's rows together in the table."""
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import budget, nanomsg_c
from .adapters import ADAPTERS
from .cells import run_cell
from .fi_pingpong import FI_PINGPONG, FiPingpong, FiPingpongError, fi_pingpong_version
from .report import FLOORS, add_pyzmq_ratios, find, human, short
from .transports import absent, scheme

NANOMSG = "nanomsg"
LIBRARIES = ("nnofi", "nnofi-batch", "pyzmq", "pynng", NANOMSG, FI_PINGPONG)
PEERS = ("pyzmq", "pynng", NANOMSG)  # the other socket libraries: over --peer-transports only
# What a row of each library measures; fi_pingpong's one run gives both numbers.
MEASURES = {"nnofi-batch": ("throughput",), FI_PINGPONG: ("pingpong",)}


def can_run(lib: str, transport: str, size: int, peer_transports: List[str]) -> bool:
    if lib == FI_PINGPONG:
        return scheme(transport) == "ofi"
    if lib in PEERS and transport not in peer_transports:
        return False
    if lib == NANOMSG:
        return transport in nanomsg_c.TRANSPORTS
    if lib == "nnofi-batch" and size > budget.BATCH_MAX_SIZE:
        return False
    return scheme(transport) in ADAPTERS[lib].transports


def plan(libs: List[str], transports: List[str], peer_transports: List[str],
         sizes: List[int]) -> Tuple[List[Tuple[str, str, int]], List[str]]:
    """The rows to measure as (library, transport, size), and why any
    transport asked for is left out."""
    skipped = [f"{t}: {absent(t)}" for t in transports if absent(t)]
    present = [t for t in transports if not absent(t)]
    rows = [(lib, t, size) for size in sizes for t in present for lib in LIBRARIES
            if lib in libs and can_run(lib, t, size, peer_transports)]
    return rows, skipped


def installed(lib: str) -> Optional[str]:
    """The library's version if it is installed here, else None (no import)."""
    if lib == FI_PINGPONG:
        return fi_pingpong_version()
    if lib == NANOMSG:
        return nanomsg_c.version()
    adapter = ADAPTERS[lib]
    if importlib.util.find_spec(adapter.module) is None:
        return None
    try:
        return importlib.metadata.version(adapter.dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine() -> Dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "os": platform.platform(), "python": platform.python_version(),
            "python_executable": sys.executable}


def _progress(lib: str, transport: str, size: int, what: str, seconds: float, status: str) -> None:
    print(f"  {lib:11} {transport:9} {human(size):>7} {what:10} {seconds:5.1f} s  {short(status)}",
          file=sys.stderr, flush=True)


class Runners:
    """Measures one row's cells, whatever the library; made once per run
    (the nanomsg driver is built here, fi_pingpong looked up)."""

    def __init__(self, libs: List[str], build_dir: str, tmp: str, opts: Dict[str, Any]) -> None:
        self.tmp, self.opts = tmp, opts
        self.unavailable: Dict[str, str] = {}  # library -> why its rows are empty
        for lib in libs:
            if installed(lib) is None:
                self.unavailable[lib] = ("not installed (Debian: libfabric-bin)" if lib == FI_PINGPONG else
                                         "not installed (Debian: libnanomsg-dev)" if lib == NANOMSG else
                                         "not installed")
        self.nanomsg: Optional[nanomsg_c.NanomsgDriver] = None
        if NANOMSG in libs and NANOMSG not in self.unavailable:
            try:
                self.nanomsg = nanomsg_c.NanomsgDriver(build_dir)
            except nanomsg_c.NanomsgUnavailable as exc:
                self.unavailable[NANOMSG] = str(exc)
        exe = shutil.which(FI_PINGPONG)
        self.fi_pingpong = FiPingpong(exe) if exe and FI_PINGPONG not in self.unavailable else None

    def cell(self, lib: str, what: str, transport: str, size: int) -> Dict[str, Any]:
        """One measurement: its numbers, or {"error": why}."""
        if lib == FI_PINGPONG:
            assert self.fi_pingpong is not None  # run() measures no library of self.unavailable
            try:
                result = self.fi_pingpong.measure(transport, size, self.opts)
            except (FiPingpongError, OSError) as exc:
                return {"error": str(exc)}
            if not result.get("fi_pingpong_cpus"):  # the header says they are pinned
                result["note"] = "not pinned to CPUs (fewer than 2, or no taskset): busy-polling peers may share one"
            return result
        if lib == NANOMSG:
            assert self.nanomsg is not None  # as for fi_pingpong
            try:
                result = self.nanomsg.measure(what, transport, size, self.tmp, self.opts)
            except RuntimeError as exc:
                return {"error": str(exc)}
            result["version"] = nanomsg_c.version()
            return result
        return run_cell(lib, what, transport, size, self.tmp, self.opts)


def run(libs: List[str], transports: List[str], peer_transports: List[str], sizes: List[int],
        opts: Dict[str, Any], build_dir: str,
        progress: Callable[..., None] = _progress) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Measure every planned row; (rows, skipped transports with why)."""
    planned, skipped = plan(libs, transports, peer_transports, sizes)
    for why in skipped:
        print(f"  skipped {why}", file=sys.stderr, flush=True)
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nnofi-perf-") as tmp:
        runners = Runners(sorted({lib for lib, _, _ in planned}), build_dir, tmp, opts)
        for lib, transport, size in planned:
            row: Dict[str, Any] = {"library": lib, "transport": transport, "size": size}
            rows.append(row)
            if lib in runners.unavailable:
                row["note"] = runners.unavailable[lib]
                continue
            failed: Dict[str, List[str]] = {}  # error -> the measurements that failed with it
            for what in MEASURES.get(lib, ("latency", "throughput")):
                t0 = time.monotonic()
                result = runners.cell(lib, what, transport, size)
                status = "ok"
                if "error" in result:
                    error = result.pop("error")
                    failed.setdefault(error, []).append(what)
                    status = f"{what} failed: {error}"
                row.update(result)
                progress(lib, transport, size, what, time.monotonic() - t0, status)
            if failed:
                row["note"] = "; ".join(f"{', '.join(whats)} failed: {error}" for error, whats in failed.items())
        rounds = opts.get("floor_rounds", 1)
        if rounds > 1:
            remeasure_floor_rows(rows, runners, rounds, progress)
    add_pyzmq_ratios(rows)
    return rows, skipped


# The numbers a measurement gives, by what it measures.
KEYS = {"latency": ("latency_us",), "throughput": ("msgs_per_s", "MB_per_s"), "pingpong": ("latency_us", "MB_per_s")}


def _row(rows: List[Dict[str, Any]], lib: str, transport: str, size: int) -> Dict[str, Any]:
    row = find(rows, lib, transport, size)
    assert row is not None  # floor_cells takes only rows that are there
    return row


def floor_cells(rows: List[Dict[str, Any]]) -> List[Tuple[str, str, str, int]]:
    """(library, what, transport, size) of the measurements issue 7's
    floors compare, each once, a floor's two next to each other."""
    cells: List[Tuple[str, str, str, int]] = []
    for f in FLOORS:
        for lib, transport in ((f.library, f.transport), (f.reference, f.ref_transport)):
            what = "pingpong" if lib == FI_PINGPONG else "latency" if f.metric == "latency_us" else "throughput"
            row = find(rows, lib, transport, f.size)
            cell = (lib, what, transport, f.size)
            if row is not None and not row.get("note") and cell not in cells:
                cells.append(cell)
    return cells


def remeasure_floor_rows(rows: List[Dict[str, Any]], runners: "Runners", rounds: int,
                         progress: Callable[..., None]) -> None:
    """Measure the floors' rows `rounds` times in all, the rounds one after
    another (each round every such row once, a floor's two together), and
    keep each number's median: this machine's speed drifts over minutes,
    and a ratio of two rows measured a minute apart would carry the drift."""
    cells = floor_cells(rows)
    seen: Dict[Tuple[str, str, str, int], Dict[str, List[float]]] = {}
    for cell in cells:
        row = _row(rows, cell[0], cell[2], cell[3])
        seen[cell] = {key: [row[key]] for key in KEYS[cell[1]] if row.get(key)}
    for _ in range(rounds - 1):
        for cell in cells:
            lib, what, transport, size = cell
            t0 = time.monotonic()
            result = runners.cell(lib, what, transport, size)
            progress(lib, transport, size, what, time.monotonic() - t0,
                     "ok (floor round)" if "error" not in result else f"{what} failed: {result['error']}")
            for key in seen[cell]:
                if result.get(key):
                    seen[cell][key].append(result[key])
    for (lib, _what, transport, size), values in seen.items():
        row = _row(rows, lib, transport, size)
        for key, got in values.items():
            row[key] = statistics.median(got)
            row[key + "_rounds"] = got
