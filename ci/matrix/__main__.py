"""python -m ci.matrix [run] [--quick] [--backends B,B] [--rxe] [--render] [--out DIR]
   python -m ci.matrix report [RESULTS.json] [--render] [--out DIR]

run: the matrix's cells (ci/matrix.yaml) through the lab, then its
results.json (the last one moved to previous.json), junit.xml and
report.html in --out (default build/matrix); exit 1 if a cell failed
(or, with --fail-on-regression, regressed). report: the report and
junit.xml again from a results.json. --render: headless Chromium takes
report.png and checks the page shows the grid and the plots.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, List, Optional

from . import diff, junit, render, report, results, run, spec as spec_mod


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _render(out: Path, data: dict, log) -> bool:
    """report.png of the report, checked; False if it does not show right."""
    if render.chromium() is None:
        log("report not rendered: no chromium here (Debian: apt-get install chromium; `make matrix-deps`)")
        return True
    html, png = out / "report.html", out / "report.png"
    render.screenshot(html, png)
    cells = data["cells"]
    problems = render.check(render.dom(html), png, len(cells), passed=any(c["status"] == "passed" for c in cells),
                            plotted=any(c.get("latency_us") is not None for c in cells))
    for p in problems:
        log(f"report.html renders wrong: {p}")
    if not problems:
        log(f"report rendered in headless Chromium: {png}")
    return not problems


def _write(out: Path, data: dict) -> None:
    junit.write(out / "junit.xml", data["cells"], data.get("seconds", 0))
    report.write(data, out / "report.html")


def _closing(data: dict, log) -> None:
    for c in data["cells"]:
        if c["status"] == "failed":
            log(f"FAILED {c['id']}: {c['reason']}")
    d = data.get("diff") or {"previous": None}
    log(f"diff: {diff.summary(d)}")
    for r in d.get("regressions", []):
        log(f"REGRESSION {r['cell']} {r['metric']}: {r['before']} -> {r['after']} ({r['change_pct']:+.0f}%)")
    t = data["totals"]
    log(f"report: {data.get('out', '')}/report.html ({len(data['cells'])} cells)")
    # the closing line CI reads: "N passed, N failed, N skipped"
    log(f"matrix: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped")


def _selection(spec, args) -> Callable[[spec_mod.Cell], Optional[str]]:
    """Apply --topology to spec; the function saying why a cell is left out
    of this run (QUICK=1, --backends, --transports), None if it runs."""
    for item in args.topology:
        backend, _, topology = item.partition("=")
        if backend not in spec.backends or not topology:
            raise ValueError(f"--topology {item}: expected BACKEND=TOPOLOGY, BACKEND one of {', '.join(spec.backends)}")
        spec.backends[backend] = topology
    backends = args.backends.split(",") if args.backends else list(spec.backends)
    transports = args.transports.split(",") if args.transports else [t.name for t in spec.transports]
    for given, known, flag in ((backends, list(spec.backends), "--backends"),
                               (transports, [t.name for t in spec.transports], "--transports")):
        unknown = [x for x in given if x not in known]
        if unknown:
            raise ValueError(f"{flag}: {', '.join(unknown)}: not among {', '.join(known)}")

    def left_out(cell):
        if args.quick and not spec.quick.holds(cell):
            return "outside the QUICK=1 slice (ci/matrix.yaml: quick)"
        if cell.backend not in backends or cell.transport not in transports:
            return "not asked for in this run (--backends, --transports)"
        return None
    return left_out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ci.matrix", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=["run", "report"])
    ap.add_argument("results", nargs="?", help="report: the results.json (default OUT/results.json)")
    ap.add_argument("--spec", default=str(spec_mod.DEFAULT_SPEC), help="the matrix (default ci/matrix.yaml)")
    ap.add_argument("--out", default="build/matrix", help="where the reports go (default build/matrix)")
    ap.add_argument("--quick", action="store_true", help="only the spec's quick slice (QUICK=1)")
    ap.add_argument("--backends", help="only these backends (B,B; the others' cells are reported as not run)")
    ap.add_argument("--transports", help="only these transports (tcp,ofi+verbs,...; likewise)")
    ap.add_argument("--topology", action="append", default=[], metavar="BACKEND=TOPOLOGY",
                    help="run a backend on another lab: a name in lab/topologies or a .yaml path "
                         "(ssh=my-cluster.yaml: the matrix's ssh cells on your cluster)")
    ap.add_argument("--rxe", action="store_true", help="labs brought up get rxe soft-RoCE devices (RXE=1)")
    ap.add_argument("--render", action="store_true", help="screenshot report.html in headless Chromium, check it")
    ap.add_argument("--fail-on-regression", action="store_true", help="exit 1 on a regression too")
    args = ap.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.command == "report":
        data = results.load(Path(args.results or out / "results.json"))
        if data is None:
            log(f"error: no results.json of this schema at {args.results or out / 'results.json'}")
            return 2
        _write(out, data)
        ok = _render(out, data, log) if args.render else True
        log(f"report: {out / 'report.html'}")
        return 0 if ok else 1

    try:
        spec = spec_mod.load(args.spec)
        left_out = _selection(spec, args)
    except ValueError as e:  # SpecError too
        log(f"error: {e}")
        return 2
    cells = spec.cells()
    log(f"matrix: {len(spec.backends)} backends x {len(spec.transports)} transports x {len(spec.columns)} columns "
        f"= {len(cells)} cells, {sum(left_out(c) is None and not spec.excluded(c) for c in cells)} to run")
    started, t0 = _now(), time.monotonic()
    records, runs = run.run(spec, out, log, left_out, rxe=args.rxe)
    data = {"schema": results.SCHEMA, "started": started, "seconds": round(time.monotonic() - t0, 1),
            "quick": args.quick, "spec": args.spec, "git": results.git_describe(), "machine": results.machine(),
            "axes": results.axes(spec), "runs": run.runs_as_dicts(runs), "cells": records,
            "totals": results.totals(records), "out": str(out)}
    data["diff"] = diff.compare(results.previous(out), data, spec.regression)
    results.save(data, out)
    _write(out, data)
    rendered = _render(out, data, log) if args.render else True
    _closing(data, log)
    failed = data["totals"]["failed"] or not rendered
    return 1 if failed or (args.fail_on_regression and data["diff"]["regressions"]) else 0


if __name__ == "__main__":
    sys.exit(main())
