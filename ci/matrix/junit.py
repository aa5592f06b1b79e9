"""JUnit XML both ways: read the tests of a pytest run (with the
properties ci.matrix.pytest_cells put on them), and write the matrix's
own junit.xml, one testcase per cell."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class TestResult:
    nodeid: str
    outcome: str  # passed, failed, skipped (pytest's errors count as failed)
    seconds: float
    message: Optional[str] = None  # skip reason, or the failure's first line
    detail: Optional[str] = None  # the failure's text
    properties: Dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> Optional[str]:
        return self.properties.get("matrix_transport")

    @property
    def size(self) -> Optional[int]:
        s = self.properties.get("matrix_size")
        return int(s) if s is not None else None

    @property
    def same_node(self) -> bool:
        return "matrix_same_node" in self.properties

    @property
    def base_id(self) -> str:
        """The nodeid without its parameters: file::test."""
        return self.nodeid.split("[", 1)[0]


def read(path) -> List[TestResult]:
    """The testcases of a pytest --junitxml file (a path or a file object);
    none if it is missing or cut short (a run killed while writing it)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    out = []
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        nodeid = props.get("matrix_nodeid") or f"{case.get('classname')}::{case.get('name')}"
        outcome, message, detail = "passed", None, None
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                detail = (el.text or "").strip() or None
                message = (el.get("message") or detail or tag).strip().splitlines()[0]  # the rest is in detail
                if tag == "error":  # in a fixture: set-up or teardown
                    message = f"error: {message}"
                break  # a failure and a teardown error: the failure says more
        out.append(TestResult(nodeid, outcome, float(case.get("time") or 0), message, detail, props))
    return out


def write(path, cells: List[dict], seconds: float, name: str = "fabric-matrix") -> None:
    """junit.xml of the matrix: classname matrix.BACKEND.TRANSPORT, name the
    column; skipped and failed cells say why; data cells carry their
    latency and bandwidth as properties."""
    counts = {s: sum(c["status"] == s for c in cells) for s in ("failed", "skipped")}
    suite = ET.Element("testsuite", name=name, tests=str(len(cells)), failures=str(counts["failed"]),
                       errors="0", skipped=str(counts["skipped"]), time=f"{seconds:.3f}")
    for c in cells:
        case = ET.SubElement(suite, "testcase", classname=f"matrix.{c['backend']}.{c['transport']}",
                             name=c["column"], time=f"{c.get('seconds') or 0:.3f}")
        metrics = [(k, c[k]) for k in ("latency_us", "bandwidth_MBps") if c.get(k) is not None]
        if metrics:
            props = ET.SubElement(case, "properties")
            for k, v in metrics:
                ET.SubElement(props, "property", name=k, value=str(v))
        if c["status"] == "failed":
            ET.SubElement(case, "failure", message=c.get("reason") or "failed").text = c.get("detail") or ""
        elif c["status"] == "skipped":
            ET.SubElement(case, "skipped", message=c.get("reason") or "skipped")
    root = ET.Element("testsuites", name=name)
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
