"""The transports the bench knows and which library can use which.

nnofi runs over all of them; pyzmq, pynng and nanomsg over tcp, ipc (and
inproc for the Python ones); fi_pingpong over ofi+PROVIDER only."""
import functools
import re
from typing import Optional, Tuple

TRANSPORTS = ("inproc", "ipc", "tcp", "ofi+tcp", "ofi+shm", "ofi+verbs")


def scheme(transport: str) -> str:
    """ofi+tcp -> ofi; tcp -> tcp."""
    return transport.split("+", 1)[0]


def ofi_provider(transport: str) -> str:
    """ofi+PROVIDER -> PROVIDER (bare ofi: tcp)."""
    return transport.split("+", 1)[1] if "+" in transport else "tcp"


@functools.lru_cache(maxsize=None)
def ofi_device(provider: str) -> Optional[Tuple[str, str]]:
    """(domain, IPv4 address) of the first device libfabric offers for
    `provider`, or None where it offers none (verbs without an RDMA device)."""
    try:
        from nnofi import fabric

        entries = fabric.providers(provider)
    except Exception:  # no native module, fi_getinfo failing: the caller says "absent"
        return None
    for entry in entries:
        m = re.search(r"(\d+\.\d+\.\d+\.\d+)", entry.address)
        if m:
            return entry.domain, m.group(1)
    return (entries[0].domain, "127.0.0.1") if entries else None


def ofi_host(provider: str) -> str:
    """The address nnofi binds for ofi+PROVIDER: loopback, except for verbs,
    which needs the RDMA device's own address."""
    if provider == "verbs":
        device = ofi_device("verbs")
        if device:
            return device[1]
    return "127.0.0.1"


def absent(transport: str) -> Optional[str]:
    """Why `transport` cannot run here, or None if it can."""
    if scheme(transport) == "ofi" and ofi_provider(transport) == "verbs" and ofi_device("verbs") is None:
        return "libfabric offers no verbs provider here (no RDMA device, e.g. rxe soft-RoCE)"
    return None
