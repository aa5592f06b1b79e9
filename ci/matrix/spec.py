"""ci/matrix.yaml read into the matrix's axes and cells, with errors that
name the field. A cell is (backend, transport, column): the column is a
protocol family (pass/fail of its lab tests) or a message size (a data
cell: latency and bandwidth)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "matrix.yaml"
TRANSPORT_KINDS = ("tcp", "ipc", "ofi")
_SIZE = re.compile(r"^(\d+)\s*(B|KiB|MiB)?$")
_UNITS = {None: 0, "B": 0, "KiB": 10, "MiB": 20}


class SpecError(ValueError):
    """A matrix.yaml that cannot be used, and why."""


def parse_size(value) -> int:
    m = _SIZE.match(str(value).strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a size (64, 4KiB, 1MiB)")
    return int(m.group(1)) << _UNITS[m.group(2)]


def size_label(size: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class Transport:
    name: str  # the report's name: tcp, ipc, ofi+rxm
    lab: str  # the lab's lab_transport value: tcp, ipc, ofi+tcp;ofi_rxm
    kind: str  # tcp, ipc or ofi
    provider: Optional[str] = None  # ofi: libfabric's provider name


@dataclass(frozen=True)
class Family:
    name: str
    types: List[str]
    tests: List[str]  # pytest ids: a file, or file::test


@dataclass(frozen=True)
class Exclusion:
    reason: str
    backends: Optional[List[str]] = None  # None: every one
    transports: Optional[List[str]] = None
    columns: Optional[List[str]] = None

    def covers(self, cell: "Cell") -> bool:
        return all(allowed is None or value in allowed for allowed, value in
                   ((self.backends, cell.backend), (self.transports, cell.transport),
                    (self.columns, cell.column)))


@dataclass(frozen=True)
class Cell:
    backend: str
    transport: str
    column: str  # a family name, or a size label (64B, 4KiB)
    size: Optional[int] = None  # data cells only

    @property
    def id(self) -> str:
        return f"{self.backend}/{self.transport}/{self.column}"

    @property
    def is_data(self) -> bool:
        return self.size is not None


@dataclass(frozen=True)
class Slice:
    """The cells QUICK=1 runs: those of these backends, transports and sizes
    (every family)."""
    backends: List[str]
    transports: List[str]
    sizes: List[int]

    def holds(self, cell: Cell) -> bool:
        return (cell.backend in self.backends and cell.transport in self.transports
                and (cell.size is None or cell.size in self.sizes))


@dataclass
class Spec:
    backends: Dict[str, str]  # name -> lab topology
    transports: List[Transport]
    socket_types: List[str]
    families: List[Family]
    data_tests: List[str]
    sizes: List[int]
    data_seconds: float
    same_node_only: List[str]
    exclusions: List[Exclusion]
    regression: Dict[str, float]
    quick: Slice
    workers: int = 2
    port_base: int = 27000
    timeout_s: float = 900
    source: str = ""
    providers: Dict[str, str] = field(default_factory=dict)  # name -> libfabric's

    @property
    def columns(self) -> List[str]:
        return [f.name for f in self.families] + [size_label(s) for s in self.sizes]

    def transport(self, name: str) -> Transport:
        for t in self.transports:
            if t.name == name:
                return t
        raise KeyError(name)

    def cells(self) -> List[Cell]:
        """Every declared cell, backend by backend, row by row."""
        return [Cell(b, t.name, c, s)
                for b in self.backends for t in self.transports
                for c, s in [(f.name, None) for f in self.families] + [(size_label(s), s) for s in self.sizes]]

    def excluded(self, cell: Cell) -> Optional[str]:
        for e in self.exclusions:
            if e.covers(cell):
                return e.reason
        return None


def load(path=None) -> Spec:
    path = Path(path or DEFAULT_SPEC)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SpecError(f"{path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    return parse(data, source=str(path))


def parse(data, source: str = "<matrix>") -> Spec:
    def err(where, msg):
        return SpecError(f"{source}: {where}: {msg}")

    def names(value, where, allowed=None):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise err(where, f"expected a non-empty list of names, got {value!r}")
        if allowed is not None:
            bad = [v for v in value if v not in allowed]
            if bad:
                raise err(where, f"{', '.join(bad)}: not among {', '.join(allowed)}")
        return list(value)

    def mapping(value, where):
        if not isinstance(value, dict) or not value:
            raise err(where, f"expected a non-empty mapping, got {value!r}")
        return value

    def sizes(value, where):
        if not isinstance(value, list) or not value:
            raise err(where, f"expected a list of sizes, got {value!r}")
        try:
            return [parse_size(v) for v in value]
        except ValueError as e:
            raise err(where, str(e)) from None

    if not isinstance(data, dict):
        raise SpecError(f"{source}: the matrix is a mapping (backends, providers, transports, ...)")
    known = {"backends", "providers", "transports", "same_node_only", "socket_types", "families", "data",
             "exclusions", "regression", "quick", "run"}
    unknown = set(data) - known
    if unknown:
        raise err(", ".join(sorted(unknown)), f"unknown key(s); the keys are {', '.join(sorted(known))}")

    backends = {str(k): str(v) for k, v in mapping(data.get("backends"), "backends").items()}
    providers = {str(k): str(v) for k, v in mapping(data.get("providers"), "providers").items()}
    transports: List[Transport] = []
    for kind in names(data.get("transports"), "transports", TRANSPORT_KINDS):
        if kind == "ofi":
            transports += [Transport(f"ofi+{n}", f"ofi+{p}", "ofi", p) for n, p in providers.items()]
        else:
            transports.append(Transport(kind, kind, kind))
    tnames = [t.name for t in transports]
    socket_types = names(data.get("socket_types"), "socket_types")

    families = []
    for name, f in mapping(data.get("families"), "families").items():
        where = f"families.{name}"
        if not isinstance(f, dict) or set(f) != {"types", "tests"}:
            raise err(where, "a family has types (socket types) and tests (pytest ids)")
        families.append(Family(str(name), names(f["types"], f"{where}.types", socket_types),
                               names(f["tests"], f"{where}.tests")))
    covered = {t for f in families for t in f.types}
    if covered != set(socket_types):
        raise err("families", f"no family covers {', '.join(sorted(set(socket_types) - covered))}")

    d = mapping(data.get("data"), "data")
    data_tests = names(d.get("tests"), "data.tests")
    data_sizes = sizes(d.get("sizes"), "data.sizes")
    seconds = d.get("seconds", 0.3)
    if not isinstance(seconds, (int, float)) or not 0 < seconds <= 10:
        raise err("data.seconds", f"expected seconds in (0, 10], got {seconds!r}")

    columns = [f.name for f in families] + [size_label(s) for s in data_sizes]
    exclusions = []
    for i, e in enumerate(data.get("exclusions") or []):
        where = f"exclusions[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("reason"), str) or not e["reason"].strip():
            raise err(where, "an exclusion needs a reason (and narrows by backends, transports, columns)")
        extra = set(e) - {"reason", "backends", "transports", "columns"}
        if extra:
            raise err(where, f"unknown key(s) {', '.join(sorted(extra))}")
        exclusions.append(Exclusion(
            reason=" ".join(e["reason"].split()),
            backends=names(e["backends"], f"{where}.backends", list(backends)) if "backends" in e else None,
            transports=names(e["transports"], f"{where}.transports", tnames) if "transports" in e else None,
            columns=names(e["columns"], f"{where}.columns", columns) if "columns" in e else None))

    regression = {"latency_pct": 50.0, "latency_min_us": 20.0, "bandwidth_pct": 33.0, "bandwidth_min_MBps": 5.0}
    for k, v in (data.get("regression") or {}).items():
        if k not in regression or not isinstance(v, (int, float)) or v < 0:
            raise err(f"regression.{k}", f"expected one of {', '.join(regression)} with a number >= 0")
        regression[k] = float(v)

    q = mapping(data.get("quick"), "quick")
    quick = Slice(names(q.get("backends"), "quick.backends", list(backends)),
                  names(q.get("transports"), "quick.transports", tnames),
                  sizes(q.get("sizes"), "quick.sizes"))
    stray = [size_label(s) for s in quick.sizes if s not in data_sizes]
    if stray:
        raise err("quick.sizes", f"{', '.join(stray)} not in data.sizes")

    run = data.get("run") or {}
    return Spec(backends=backends, transports=transports, socket_types=socket_types, families=families,
                data_tests=data_tests, sizes=data_sizes, data_seconds=float(seconds),
                same_node_only=names(data.get("same_node_only"), "same_node_only", tnames),
                exclusions=exclusions, regression=regression, quick=quick,
                workers=int(run.get("workers", 2)), port_base=int(run.get("port_base", 27000)),
                timeout_s=float(run.get("timeout_s", 900)), source=source, providers=providers)
