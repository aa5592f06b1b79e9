"""What the bench prints and writes: the table, the ratios against pyzmq,
issue 7's floors (each printed met or missed with its measured ratio) and
the JSON document."""
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .fi_pingpong import FI_PINGPONG
from .transports import ofi_provider

# ---- sizes and notes ------------------------------------------------------------


def human(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return f"{size}B"


def parse_size(text: str) -> int:
    t = text.strip().lower().rstrip("b").rstrip("i")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def short(note: str, limit: int = 160) -> str:
    """A table-sized note: up to the end of the sentence that says why, or
    `limit` characters (the JSON keeps it whole)."""
    end = note.find(". ", 60)
    if 0 < end < limit:
        return note[:end + 1] + " ..."
    return note if len(note) <= limit else note[:limit - 4] + " ..."


def find(rows: List[Dict[str, Any]], lib: str, transport: str, size: int) -> Optional[Dict[str, Any]]:
    return next((r for r in rows if r["library"] == lib and r["transport"] == transport and r["size"] == size), None)


# ---- ratios against pyzmq (the table's last columns) ------------------------------


def pyzmq_reference(row: Dict[str, Any], rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """pyzmq's row for the same size: over the same transport where the run
    has it, else over tcp (ofi rows, and the default sweep: pyzmq over tcp only)."""
    same = find(rows, "pyzmq", row["transport"], row["size"])
    return same if same is not None else find(rows, "pyzmq", "tcp", row["size"])


def add_pyzmq_ratios(rows: List[Dict[str, Any]]) -> None:
    """latency_vs_pyzmq and throughput_vs_pyzmq on every row that has a
    pyzmq reference (fi_pingpong: latency only; its MB/s is ping-pong, not
    a stream)."""
    for row in rows:
        ref = pyzmq_reference(row, rows)
        if ref is None:
            continue
        keys = [("latency_us", "latency_vs_pyzmq")]
        if row["library"] != FI_PINGPONG:
            keys.append(("msgs_per_s", "throughput_vs_pyzmq"))
        for key, ratio in keys:
            if row.get(key) and ref.get(key):
                row[ratio] = row[key] / ref[key]


# ---- issue 7's floors ------------------------------------------------------------------

METRICS = {"latency_us": ("rtt", "us", False), "msgs_per_s": ("msg/s", "msg/s", True),
           "MB_per_s": ("MB/s", "MB/s", True)}  # metric -> (label, unit, higher is better)


@dataclass(frozen=True)
class Floor:
    """`library` over `transport` at `size` against `reference` over
    `ref_transport`, same size: metric ratio at most `factor` (latency) or
    at least `factor` (rates)."""
    metric: str
    library: str
    transport: str
    size: int
    reference: str
    ref_transport: str
    factor: float

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric][2]

    @property
    def name(self) -> str:
        label = METRICS[self.metric][0]
        ref_where = ofi_provider(self.ref_transport) if self.reference == FI_PINGPONG else self.ref_transport
        return (f"{self.library} {self.transport} {human(self.size)} {label} / "
                f"{self.reference} {ref_where} {label}")


MiB = 1 << 20
FLOORS = (
    Floor("latency_us", "nnofi", "ofi+tcp", 64, FI_PINGPONG, "ofi+tcp", 1.5),
    Floor("latency_us", "nnofi", "ofi+tcp", 64, "pyzmq", "tcp", 0.25),
    Floor("latency_us", "nnofi", "ofi+shm", 64, FI_PINGPONG, "ofi+shm", 3.0),
    Floor("msgs_per_s", "nnofi", "tcp", 64, "pyzmq", "tcp", 1.0),
    Floor("msgs_per_s", "nnofi-batch", "tcp", 64, "pyzmq", "tcp", 3.0),
    Floor("MB_per_s", "nnofi", "ofi+shm", MiB, FI_PINGPONG, "ofi+shm", 0.8),
    Floor("MB_per_s", "nnofi", "ofi+shm", MiB, "pyzmq", "tcp", 3.0),
    Floor("MB_per_s", "nnofi", "tcp", MiB, "pyzmq", "tcp", 1.0),
)


def floors(rows: List[Dict[str, Any]], memory: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """One entry per floor whose two rows are part of the run (and per side
    of each memory run): "ratio" and "meets", or "ratio" None and "missing"
    saying why."""
    out = []
    for f in FLOORS:
        row, ref = find(rows, f.library, f.transport, f.size), find(rows, f.reference, f.ref_transport, f.size)
        if row is None or ref is None:
            continue  # that library, transport or size is not part of this run
        bound = ">=" if f.higher_is_better else "<="
        entry: Dict[str, Any] = {"name": f.name, "metric": f.metric, "floor": f"{bound} {f.factor:g}x",
                                 "factor": f.factor, "value": row.get(f.metric),
                                 "reference_value": ref.get(f.metric), "ratio": None, "meets": None}
        if entry["value"] and entry["reference_value"]:
            entry["ratio"] = entry["value"] / entry["reference_value"]
            entry["meets"] = entry["ratio"] >= f.factor if f.higher_is_better else entry["ratio"] <= f.factor
        else:
            lacking = row if not entry["value"] else ref
            entry["missing"] = (f"no {lacking['library']} {lacking['transport']} {human(lacking['size'])} "
                                f"{METRICS[f.metric][0]}" + (" (its row says why)" if lacking.get("note") else ""))
        out.append(entry)
    if memory:
        out.extend(memory_floors(memory))
    return out


def memory_floors(memory: Dict[str, Any]) -> List[Dict[str, Any]]:
    out = []
    what = f"{human(memory['size'])} numpy array over {memory['transport']}"
    for run in memory["runs"]:
        for side in ("sender", "receiver"):
            entry: Dict[str, Any] = {
                "name": f"{what}: {side} {run[side + '_call']} peak RSS growth beyond the array",
                "metric": "rss_growth_beyond", "floor": f"< {human(memory['limit'])}",
                "value": run.get(f"{side}_growth_beyond"), "limit": memory["limit"], "meets": None}
            if "error" in run:
                entry["missing"] = run["error"]
            elif side in run.get("copies", ()):
                entry["floor"] = "none: this side copies by design"
            else:
                entry["meets"] = entry["value"] < memory["limit"]
            out.append(entry)
    return out


def _amount(value: float, metric: str) -> str:
    if metric == "rss_growth_beyond":
        return f"{value / MiB:.1f} MiB"
    unit = METRICS[metric][1]
    return f"{value:.1f} {unit}" if value < 1e4 else f"{value:.3g} {unit}"


def floor_lines(entries: List[Dict[str, Any]]) -> str:
    if not entries:
        return ""
    width = max(len(e["name"]) for e in entries)
    lines = ["# floors (issue 7): each met or MISSED, with the measured ratio (value / reference)"]
    for e in entries:
        if e.get("missing"):
            lines.append(f"{e['name']:<{width}}  {'-':>7}  {e['floor']}: {e['missing']}")
        elif e["metric"] == "rss_growth_beyond" and e["meets"] is None:
            lines.append(f"{e['name']:<{width}}  {_amount(e['value'], e['metric']):>10}  "
                         f"reference (floor {e['floor']})")
        elif e["metric"] == "rss_growth_beyond":
            lines.append(f"{e['name']:<{width}}  {_amount(e['value'], e['metric']):>10}  "
                         f"{'met' if e['meets'] else 'MISSED'} (floor {e['floor']})")
        else:
            lines.append(f"{e['name']:<{width}}  {e['ratio']:6.2f}x  {'met' if e['meets'] else 'MISSED'} "
                         f"(floor {e['floor']}; {_amount(e['value'], e['metric'])} / "
                         f"{_amount(e['reference_value'], e['metric'])})")
    return "\n".join(lines)


# ---- the table -------------------------------------------------------------------------

COLUMNS = (("library", 11, "s"), ("transport", 9, "s"), ("size", 7, "s"), ("latency_us", 11, ".1f"),
           ("msgs_per_s", 11, ".0f"), ("MB_per_s", 9, ".1f"), ("lat_vs_zmq", 10, ".2f"),
           ("thr_vs_zmq", 10, ".2f"))


def table(rows: List[Dict[str, Any]]) -> str:
    lines = ["  ".join(f"{name:<{w}}" if f == "s" else f"{name:>{w}}" for name, w, f in COLUMNS) + "  note"]
    for row in rows:
        values = {**row, "size": human(row["size"]), "lat_vs_zmq": row.get("latency_vs_pyzmq"),
                  "thr_vs_zmq": row.get("throughput_vs_pyzmq")}
        cells = []
        for name, w, f in COLUMNS:
            v = values.get(name)
            if f == "s":
                cells.append(f"{v:<{w}}")
            else:
                cells.append(f"{v:>{w}{f}}" if isinstance(v, (int, float)) else f"{'-':>{w}}")
        lines.append("  ".join(cells) + ("  " + short(row["note"]) if row.get("note") else ""))
    return "\n".join(lines)


def write_json(path: str, document: Dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
