"""URL grammar, for error messages a person can act on (the core parses
URLs itself; this only explains why it refused one).

    inproc://NAME
    ipc:///path/to/socket           (at most 107 bytes of path)
    tcp://HOST:PORT                 HOST: IPv4, [IPv6], name, or * (bind only)
    ofi://IP:PORT[@FABRIC[:PROVIDER]]   libfabric; one name after @ is a
                                    fabric/domain or a provider
"""
import os
import stat

TRANSPORTS = ("inproc", "ipc", "tcp", "ofi")
IPC_PATH_MAX = 107


def explain(url: str, kind: str) -> str:
    """Why `url` cannot be used to `kind` (bind/connect)."""
    if "://" not in url:
        return "no transport: expected inproc://NAME, ipc:///PATH or tcp://HOST:PORT"
    scheme, rest = url.split("://", 1)
    if scheme not in TRANSPORTS:
        return f"unknown transport {scheme!r} (known: {', '.join(TRANSPORTS)})"
    if not rest:
        return f"{scheme}:// needs an address after it"
    if scheme == "ipc" and len(rest.encode()) > IPC_PATH_MAX:
        return f"ipc path is {len(rest.encode())} bytes; Unix sockets allow {IPC_PATH_MAX}"
    if scheme == "ofi":
        return "expected ofi://IP:PORT[@FABRIC[:PROVIDER]], e.g. ofi://127.0.0.1:5555@tcp"
    if scheme != "tcp":
        return "malformed address"
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        return "tcp needs HOST:PORT, e.g. tcp://127.0.0.1:5555 (port 0 on bind picks a free one)"
    if not port.isdigit() or int(port) > 65535:
        return f"port {port!r} is not a number from 0 to 65535"
    if host.startswith("[") != host.endswith("]"):
        return "IPv6 hosts go in brackets: tcp://[::1]:5555"
    if kind == "connect" and host == "*":
        return "* (any address) can be bound, not connected to"
    if kind == "connect" and int(port) == 0:
        return "port 0 can be bound (it picks a free port), not connected to"
    return "host cannot be used here (not an address of this machine, or does not resolve)"


def explain_ofi(url: str) -> str:
    """No provider/fabric matched an ofi:// URL: say what there is."""
    from . import fabric

    offered = sorted({f"{p.provider} (fabric {p.fabric}, domain {p.domain})" for p in fabric.providers() if p.ep_type == "MSG"})
    listing = "; ".join(offered) if offered else "none"
    return (
        "fi_getinfo offers no connected (FI_EP_MSG) endpoint for this address and name. "
        f"MSG endpoints here: {listing}"
    )


def explain_ipc_in_use(path: str) -> str:
    """Why binding ipc://path found it taken (bind replaces only the
    socket file of a listener that is gone)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "address in use"
    if not stat.S_ISSOCK(mode):
        return f"{path} exists and is not a socket (nnofi never removes such a file)"
    return f"another socket listens on {path}"
