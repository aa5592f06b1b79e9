"""The matrix's HTML report from its results.json alone, self-contained
(CSS inline, plots as PNG data URIs): a verdict line, regressions against
the previous run, the grid (backend x transport rows, protocol-family and
size columns), the plots, then failures, skip reasons and the runs."""
from __future__ import annotations

import base64
import html
from typing import Dict, List, Tuple

from . import plots
from .diff import summary as diff_summary

SKIP_KINDS = {"excluded": "excluded by ci/matrix.yaml", "backend": "backend not usable here",
              "slice": "not in this run", "test": "skipped by its tests"}

CSS = """
body { font: 14px/1.4 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 18px 24px; color: #1d1d1f; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 22px 0 8px; }
header { padding: 10px 14px; border-radius: 6px; border-left: 8px solid; }
header.pass { background: #e8f6ec; border-color: #2e9d4f; } header.fail { background: #fdeaea; border-color: #d93036; }
.counts { font-size: 16px; margin: 2px 0; } .meta, .note { color: #555; margin: 2px 0; font-size: 13px; }
table { border-collapse: collapse; }
#grid th, #grid td { border: 1px solid #fff; padding: 2px 5px; text-align: center; font-size: 12px; }
#grid thead th { background: #eef0f3; font-weight: 600; } #grid thead th small { font-weight: 400; color: #666; }
#grid th.backend { background: #dfe3ea; writing-mode: vertical-rl; transform: rotate(180deg); min-width: 22px; }
#grid th.row { background: #eef0f3; text-align: left; white-space: nowrap; font-family: monospace; }
#grid tbody tr.first td, #grid tbody tr.first th { border-top: 3px solid #fff; }
td.cell { min-width: 54px; height: 30px; }
td.passed { background: #bfe5c8; } td.failed { background: #f4a6a8; font-weight: 700; }
td.skipped { background: #e4e4e4; color: #666; } td.excluded { background: #f1f1f1; color: #999; }
td.slice { background: #fafafa; color: #bbb; }
td.data { font-size: 11px; line-height: 1.15; }
.sep { border-left: 3px solid #9aa3b2 !important; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border-radius: 3px; font-size: 12px; }
img.plot { display: block; max-width: 100%; margin: 6px 0 12px; border: 1px solid #e3e3e3; }
ol li { margin: 3px 0; }
pre { background: #f6f6f6; padding: 6px; font-size: 11px; white-space: pre-wrap; max-height: 14em; overflow: auto; }
#runs td, #runs th, #changes td, #changes th { border-bottom: 1px solid #e5e5e5; padding: 3px 8px; font-size: 12px;
  text-align: left; }
.bad { color: #b3261e; font-weight: 600; } .good { color: #2e7d32; }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _short(value: float, unit: str, big: str) -> str:
    """Two or three significant digits, in the bigger unit from 1000 on."""
    if value >= 1000:
        value, unit = value / 1000, big
    return f"{value:.1f} {unit}" if round(value, 1) < 10 else f"{value:.0f} {unit}"


def fmt_latency(us: float) -> str:
    return _short(us, "us", "ms")


def fmt_bandwidth(mbps: float) -> str:
    return _short(mbps, "MB/s", "GB/s")


def fmt_seconds(s: float) -> str:
    return f"{int(s // 60)} min {s % 60:.0f} s" if s >= 60 else f"{s:.1f} s"


class _Notes:
    """Numbered skip reasons and failures, each listed once below the grid."""

    def __init__(self) -> None:
        self.reasons: Dict[Tuple[str, str], List[str]] = {}
        self.failures: List[dict] = []

    def reason(self, cell: dict) -> int:
        key = (cell.get("skip_kind") or "test", cell.get("reason") or "no reason given")
        self.reasons.setdefault(key, []).append(cell["id"])
        return list(self.reasons).index(key) + 1

    def failure(self, cell: dict) -> int:
        self.failures.append(cell)
        return len(self.failures)


def _cell(cell: dict, notes: _Notes) -> str:
    status, title = cell["status"], f"{cell['id']}: {cell['status']}"
    if status == "passed":
        if cell.get("latency_us") is not None:
            lat, bw = fmt_latency(cell["latency_us"]), fmt_bandwidth(cell["bandwidth_MBps"])
            return (f'<td class="cell passed data" title="{_e(title)}: {lat}, {bw}">'
                    f'{_e(lat)}<br>{_e(bw)}</td>')
        return f'<td class="cell passed" title="{_e(title)}">&#10003;</td>'
    if status == "failed":
        n = notes.failure(cell)
        return (f'<td class="cell failed" title="{_e(title)}: {_e(cell.get("reason") or "")}">'
                f'<a href="#f{n}">&#10007; F{n}</a></td>')
    n = notes.reason(cell)
    kind = cell.get("skip_kind") or "test"
    css = {"excluded": "excluded", "slice": "slice"}.get(kind, "skipped")
    mark = {"excluded": "&#8709;", "slice": "&middot;"}.get(kind, "&ndash;")
    return f'<td class="cell {css}" title="{_e(title)}: {_e(cell.get("reason") or "")}">{mark}<sup>{n}</sup></td>'


def grid(results: dict, notes: _Notes) -> str:
    axes = results["axes"]
    families, sizes = axes["families"], axes["sizes"]
    labels = axes["columns"]
    same_node = axes.get("same_node_only", [])
    where = "between two nodes" + (f" ({', '.join(same_node)}: two processes of one)" if same_node else "")
    nfam = len(families)
    by_id = {c["id"]: c for c in results["cells"]}
    head1 = ('<tr><th colspan="2"></th>'
             f'<th colspan="{nfam}">protocol families (their lab tests)</th>'
             f'<th colspan="{len(sizes)}" class="sep">latency / bandwidth by message size<br>'
             f'<small>{_e(where)}</small></th></tr>')
    head2 = '<tr><th colspan="2"></th>' + "".join(
        f'<th{" class=sep" if i == nfam else ""}>{_e(col)}'
        + (f'<br><small>{_e(" ".join(families[col]))}</small>' if col in families else "") + "</th>"
        for i, col in enumerate(labels)) + "</tr>"
    rows = []
    for backend, topology in axes["backends"].items():
        for j, transport in enumerate(axes["transports"]):
            lead = (f'<th class="backend" rowspan="{len(axes["transports"])}">{_e(backend)} '
                    f'<small>({_e(topology)})</small></th>') if j == 0 else ""
            tds = []
            for i, col in enumerate(labels):
                td = _cell(by_id[f"{backend}/{transport}/{col}"], notes)
                tds.append(td.replace('<td class="', '<td class="sep ', 1) if i == nfam else td)
            rows.append(f'<tr{" class=first" if j == 0 else ""}>{lead}<th class="row">{_e(transport)}</th>'
                        + "".join(tds) + "</tr>")
    return f'<table id="grid"><thead>{head1}{head2}</thead><tbody>{"".join(rows)}</tbody></table>'


def _plots(results: dict) -> str:
    axes = results["axes"]
    out = []
    for metric in plots.METRICS:
        png = plots.plot(results["cells"], metric, axes["transports"], list(axes["backends"]),
                         axes["sizes"], [c for c in axes["columns"] if c not in axes["families"]])
        if png:
            data = base64.b64encode(png).decode()
            out.append(f'<img class="plot" id="plot-{metric}" alt="{_e(plots.METRICS[metric][0])} against size" '
                       f'src="data:image/png;base64,{data}">')
    return "".join(out) or '<p class="note">No data cell passed: nothing to plot.</p>'


def _change_rows(changes, css: str):
    for r in changes:
        fmt, what = (fmt_latency, "latency") if r["metric"] == "latency_us" else (fmt_bandwidth, "bandwidth")
        yield (f'<tr><td>{_e(r["cell"])}</td><td>{what}</td><td>{_e(fmt(r["before"]))}</td>'
               f'<td class="{css}">{_e(fmt(r["after"]))}</td>'
               f'<td class="{css}">{r["change_pct"]:+.0f}%</td></tr>')


CHANGES_HEAD = "<tr><th>cell</th><th>what</th><th>before</th><th>now</th><th>change</th></tr>"


def _changes(diff: dict) -> str:
    """Flips and regressions in full; improvements folded away, so the
    grid and the plots stay near the top however much got faster."""
    if diff["previous"] is None:
        return '<p class="note">No previous run (build/matrix/previous.json) to compare with.</p>'
    rows = []
    for f in diff["flips"]:
        css = "bad" if f["after"] == "failed" else "good"
        rows.append(f'<tr><td>{_e(f["cell"])}</td><td>status</td><td>{_e(f["before"])}</td>'
                    f'<td class="{css}">{_e(f["after"])}</td><td></td></tr>')
    rows += _change_rows(diff["regressions"], "bad")
    table = f'<table id="changes">{CHANGES_HEAD}{"".join(rows)}</table>' if rows else ""
    better = list(_change_rows(diff["improvements"], "good"))
    folded = (f'<details><summary>{len(better)} improvements</summary>'
              f'<table id="improvements">{CHANGES_HEAD}{"".join(better)}</table></details>') if better else ""
    return f'<p class="note">{_e(diff_summary(diff))}</p>{table}{folded}'


def _failures(notes: _Notes) -> str:
    if not notes.failures:
        return "<p>None.</p>"
    items = []
    for i, c in enumerate(notes.failures, 1):
        detail = (c.get("detail") or "")[-3000:]
        items.append(f'<li id="f{i}"><b>F{i} {_e(c["id"])}</b>: {_e(c.get("reason") or "")}'
                     + (f"<pre>{_e(detail)}</pre>" if detail else "") + "</li>")
    return "<ol>" + "".join(items) + "</ol>"


def _reasons(notes: _Notes) -> str:
    if not notes.reasons:
        return "<p>None.</p>"
    items = []
    for (kind, reason), ids in notes.reasons.items():
        items.append(f"<li><b>{len(ids)} cell{'s' if len(ids) != 1 else ''}</b> "
                     f"({_e(SKIP_KINDS.get(kind, kind))}): {_e(reason)}</li>")
    return "<ol>" + "".join(items) + "</ol>"


def _runs(results: dict) -> str:
    if not results.get("runs"):
        return "<p>No pytest run.</p>"
    rows = "".join(
        f'<tr><td>{_e(r["backend"])}</td><td>{_e(r["kind"])}</td><td>{_e(r["summary"])}</td>'
        f'<td>{"killed" if r["exit"] is None else r["exit"]}</td><td>{fmt_seconds(r["seconds"])}</td>'
        f'<td>{_e(r["log"])}</td></tr>' for r in results["runs"])
    return ('<table id="runs"><tr><th>backend</th><th>tests</th><th>pytest said</th><th>exit</th>'
            f'<th>took</th><th>log</th></tr>{rows}</table>')


def render(results: dict) -> str:
    notes = _Notes()
    table = grid(results, notes)  # numbers the notes the sections below list
    t = results["totals"]
    failed = t.get("failed", 0)
    m = results.get("machine", {})
    meta = " &middot; ".join(_e(x) for x in filter(None, [
        results.get("started"), f"commit {results.get('git')}" if results.get("git") else None,
        m.get("system"), f"{m['cpus']} CPUs" if m.get("cpus") else None,
        f"libfabric {m['libfabric']}" if m.get("libfabric") else None,
        "QUICK=1: a slice of the matrix" if results.get("quick") else "the full matrix"]))
    legend = ('<p class="legend"><span class="passed" style="background:#bfe5c8">&#10003; passed '
              '(data: latency, bandwidth)</span><span style="background:#f4a6a8">&#10007; failed</span>'
              '<span style="background:#e4e4e4">&ndash; skipped</span>'
              '<span style="background:#f1f1f1">&#8709; excluded</span>'
              '<span style="background:#fafafa">&middot; not in this run</span> '
              '&mdash; the number is the reason, listed below</p>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nnofi fabric matrix</title><style>{CSS}</style></head>
<body>
<header id="summary" class="{'fail' if failed else 'pass'}">
<h1>nnofi fabric matrix: {'FAILED' if failed else 'passed'}</h1>
<p class="counts"><b>{t.get('passed', 0)} passed</b> &middot; <b>{failed} failed</b>
&middot; {t.get('skipped', 0)} skipped
&mdash; {len(results['cells'])} cells in {fmt_seconds(results.get('seconds', 0))}</p>
<p class="meta">{meta}</p>
</header>
<h2>Changes since the previous run</h2>
{_changes(results.get('diff') or {'previous': None})}
<h2>Cells</h2>
{table}
{legend}
<h2>Latency and bandwidth against message size</h2>
<div id="plots">{_plots(results)}</div>
<h2>Failures</h2>
<div id="failures">{_failures(notes)}</div>
<h2>Skip reasons</h2>
<div id="skips">{_reasons(notes)}</div>
<h2>Runs</h2>
{_runs(results)}
</body></html>
"""


def write(results: dict, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(results))
