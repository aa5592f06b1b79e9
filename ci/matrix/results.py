"""results.json: the matrix's one record of a run (every cell, the runs,
the machine, the commit, the diff), from which the report and junit.xml
are made; the previous run's is kept as previous.json for the diff."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import List, Optional

from .spec import Spec, size_label

SCHEMA = 1
ROOT = Path(__file__).resolve().parents[2]


def git_describe() -> Optional[str]:
    """The commit, with "+changes" when the work tree differs from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + (" +changes" if dirty else "")) or None


def machine() -> dict:
    info = {"system": f"{platform.system()} {platform.release()}", "cpus": os.cpu_count(),
            "python": platform.python_version()}
    try:
        import nnofi
        import nnofi.fabric
        info.update(nnofi=nnofi.__version__, libfabric=nnofi.fabric.version())
    except Exception as e:  # noqa: BLE001 - the report says so instead
        info["libfabric"] = f"? ({type(e).__name__})"
    return info


def axes(spec: Spec) -> dict:
    """What the report needs to lay out the grid, whatever ran."""
    return {"backends": dict(spec.backends), "transports": [t.name for t in spec.transports],
            "families": {f.name: f.types for f in spec.families}, "sizes": list(spec.sizes),
            "columns": spec.columns, "size_labels": [size_label(s) for s in spec.sizes],
            "same_node_only": list(spec.same_node_only)}


def totals(cells: List[dict]) -> dict:
    return {s: sum(c["status"] == s for c in cells) for s in ("passed", "failed", "skipped")}


def load(path: Path) -> Optional[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def previous(out: Path) -> Optional[dict]:
    """The run to compare with: the last one here (results.json), else a
    previous.json put in place (the nightly workflow downloads the last
    night's)."""
    return load(out / "results.json") or load(out / "previous.json")


def save(results: dict, out: Path) -> None:
    """Write out/results.json, first moving the one there to previous.json."""
    current = out / "results.json"
    if load(current) is not None:
        os.replace(current, out / "previous.json")
    current.write_text(json.dumps(results, indent=1) + "\n")
