"""This run against the previous one (build/matrix/previous.json): cells
that went from passed to failed, and data cells whose latency rose or
bandwidth fell by more than ci/matrix.yaml's thresholds (a percentage
and a floor, so noise on tiny numbers is not flagged)."""
from __future__ import annotations

from typing import Dict, List, Optional


def _change(before: float, after: float) -> float:
    return (after - before) / before * 100 if before else float("inf")


def compare(previous: Optional[dict], current: dict, thresholds: Dict[str, float]) -> dict:
    """{"previous": when/commit or None, "regressions": [...], "improvements": [...],
    "flips": [...]}; a regression is {"cell", "metric", "before", "after", "change_pct"}."""
    if not previous:
        return {"previous": None, "regressions": [], "improvements": [], "flips": []}
    before = {c["id"]: c for c in previous.get("cells", [])}
    regressions: List[dict] = []
    improvements: List[dict] = []
    flips: List[dict] = []
    for cell in current["cells"]:
        old = before.get(cell["id"])
        if old is None:
            continue
        if old["status"] != cell["status"] and "failed" in (old["status"], cell["status"]):
            flips.append({"cell": cell["id"], "before": old["status"], "after": cell["status"],
                          "reason": cell.get("reason") if cell["status"] == "failed" else None})
        if old["status"] != "passed" or cell["status"] != "passed":
            continue
        for metric, worse, pct, floor in (
                ("latency_us", 1, thresholds["latency_pct"], thresholds["latency_min_us"]),
                ("bandwidth_MBps", -1, thresholds["bandwidth_pct"], thresholds["bandwidth_min_MBps"])):
            a, b = old.get(metric), cell.get(metric)
            if a is None or b is None:
                continue
            change = _change(a, b)
            entry = {"cell": cell["id"], "metric": metric, "before": a, "after": b, "change_pct": round(change, 1)}
            if abs(b - a) < floor or abs(change) <= pct:
                continue
            (regressions if change * worse > 0 else improvements).append(entry)
    return {"previous": {k: previous.get(k) for k in ("started", "git", "quick")},
            "regressions": regressions, "improvements": improvements, "flips": flips}


def summary(diff: dict) -> str:
    if diff["previous"] is None:
        return "no previous run to compare with"
    broke = sum(f["after"] == "failed" for f in diff["flips"])

    def n(count, what):
        return f"{count} {what}{'' if count == 1 else 's'}"
    return (f"against {diff['previous']['started']} ({diff['previous']['git']}): "
            f"{n(len(diff['regressions']), 'regression')}, {broke} newly failing, "
            f"{len(diff['flips']) - broke} fixed, {n(len(diff['improvements']), 'improvement')}")
