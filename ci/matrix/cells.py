"""From pytest results to cells: which tests decide a cell, and its
outcome. A cell fails if any of its tests failed, passes if one passed,
and is skipped with a test's reason when all skipped; a cell whose tests
never reported fails too (the run broke), so no cell goes missing."""
from __future__ import annotations

from typing import Iterable, List, Optional

from .junit import TestResult
from .spec import Cell, Spec

# Why a cell was skipped: the matrix declares it impossible, its backend
# cannot run here, QUICK=1 left it out, or its tests skipped (their reason).
EXCLUDED, BACKEND, SLICE, TEST = "excluded", "backend", "slice", "test"


def record(cell: Cell, status: str, reason: Optional[str] = None, skip_kind: Optional[str] = None,
           tests: Iterable[TestResult] = (), detail: Optional[str] = None, **metrics) -> dict:
    tests = list(tests)
    return {"id": cell.id, "backend": cell.backend, "transport": cell.transport, "column": cell.column,
            "size": cell.size, "status": status, "reason": reason, "skip_kind": skip_kind, "detail": detail,
            "seconds": round(sum(t.seconds for t in tests), 3),
            "latency_us": metrics.get("latency_us"), "bandwidth_MBps": metrics.get("bandwidth_MBps"),
            "tests": [{"nodeid": t.nodeid, "outcome": t.outcome, "seconds": t.seconds, "message": t.message}
                      for t in tests]}


def skipped(cell: Cell, reason: str, kind: str) -> dict:
    return record(cell, "skipped", reason, kind)


def _matches(test: TestResult, patterns: List[str]) -> bool:
    return any(test.base_id == p or test.base_id.startswith(p.rstrip(":") + "::") for p in patterns)


def tests_of(spec: Spec, cell: Cell, results: List[TestResult]) -> List[TestResult]:
    """The results that decide the cell, those of its placement first:
    same-node tests for what reaches one node only, spanning ones else
    (so a skipped cell gives the reason that matters for its transport)."""
    lab = spec.transport(cell.transport).lab
    if cell.is_data:
        patterns = spec.data_tests
    else:
        patterns = next(f.tests for f in spec.families if f.name == cell.column)
    mine = [r for r in results if r.transport == lab and _matches(r, patterns)
            and (not cell.is_data or r.size == cell.size)]
    same_node = cell.transport in spec.same_node_only
    return sorted(mine, key=lambda r: r.same_node != same_node)


def _metric(test: TestResult, name: str) -> Optional[float]:
    v = test.properties.get(name)
    return float(v) if v is not None else None


def decide(cell: Cell, tests: List[TestResult], no_result: str) -> dict:
    failed = [t for t in tests if t.outcome == "failed"]
    passed = [t for t in tests if t.outcome == "passed"]
    if failed:
        first = failed[0]
        return record(cell, "failed", f"{first.nodeid}: {first.message}", tests=tests, detail=first.detail)
    if passed:
        measured = next((t for t in passed if "latency_us" in t.properties), None)
        metrics = {k: _metric(measured, k) for k in ("latency_us", "bandwidth_MBps")} if measured else {}
        if cell.is_data and not measured:
            return record(cell, "failed", f"{passed[0].nodeid} passed without recording latency and bandwidth",
                          tests=tests)
        return record(cell, "passed", tests=tests, **metrics)
    if tests:
        return record(cell, "skipped", tests[0].message, TEST, tests=tests)
    return record(cell, "failed", no_result)
