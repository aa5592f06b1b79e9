"""libfabric discovery: the fabrics, domains and providers this machine
offers, like `fi_info`, in a table a person can read (`nnofi info`)."""
from dataclasses import dataclass
from typing import List, Optional, Set, Tuple

from ._native import ffi, lib

_MAX = 512


@dataclass(frozen=True)
class Provider:
    """One fi_getinfo answer: a provider on a fabric/domain, one endpoint type."""

    provider: str  # e.g. "tcp", "shm", "verbs", "tcp;ofi_rxm"
    fabric: str  # e.g. "127.0.0.1/32" for tcp, "shm" for shm
    domain: str  # e.g. "lo", "mlx5_0"
    ep_type: str  # "MSG", "RDM" or "DGRAM"
    caps: str  # "MSG,TAGGED,RMA,..."
    address: str  # the interface address, where the provider has one
    max_msg_size: int
    mr_local: bool  # the provider wants local buffers registered


def version() -> str:
    """The libfabric version in use."""
    text: str = ffi.string(lib.nnofi_fabric_version()).decode()
    return text


def providers(name: Optional[str] = None) -> List[Provider]:
    """What fi_getinfo offers, optionally only one provider (by name)."""
    entries = ffi.new("nnofi_fabric_entry[]", _MAX)
    count = ffi.new("int *")
    rc = lib.nnofi_fabric_list(entries, _MAX, count)
    if rc:
        raise OSError(rc, f"fi_getinfo failed: {ffi.string(lib.nnofi_strerror(rc)).decode()}")
    found: List[Provider] = []
    seen: Set[Tuple[str, str, str, str]] = set()
    for i in range(count[0]):
        e = entries[i]
        p = Provider(
            provider=ffi.string(e.provider).decode(),
            fabric=ffi.string(e.fabric).decode(),
            domain=ffi.string(e.domain).decode(),
            ep_type=ffi.string(e.ep_type).decode(),
            caps=ffi.string(e.caps).decode(),
            address=ffi.string(e.address).decode(),
            max_msg_size=int(e.max_msg_size),
            mr_local=bool(e.mr_local),
        )
        key = (p.provider, p.ep_type, p.fabric, p.domain)
        if key in seen:
            continue  # the same endpoint offered in several modes
        seen.add(key)
        if name is None or p.provider == name or p.provider.split(";")[0] == name:
            found.append(p)
    return found


def table(entries: List[Provider]) -> str:
    """A fixed-width table of providers, like a tidy fi_info."""
    cols = ("provider", "ep_type", "fabric", "domain", "address", "caps")
    rows = [cols] + [tuple(str(getattr(p, c)) for c in cols) for p in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
