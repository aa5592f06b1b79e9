"""One adapter per Python library: a socket of the right type, bound or
connected, behind the same small interface.

make_pair(kind, role, url) -> an object with send(bytes), recv() -> bytes,
close() and url (the real address, e.g. the port a tcp://...:0 bind got);
batch adapters add send_batch(list) and recv_batch(max_count, max_bytes)
-> list.
kind: "reqrep" or "pipeline"; role: "server" (REP / PULL, binds) or
"client" (REQ / PUSH, connects). send and recv are the library's own bound
methods, so the adapter adds nothing to the hot path. Each library sends
and receives bytes with its defaults (pyzmq: copy=True)."""
from __future__ import annotations

import importlib.metadata
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

from .budget import TIMEOUT_MS

if TYPE_CHECKING:
    from nnofi import Socket

SOCKET_TYPES = {("reqrep", "client"): "req", ("reqrep", "server"): "rep",
                ("pipeline", "client"): "push", ("pipeline", "server"): "pull"}


def _conn(sock: Any, url: str, close: Optional[Callable[[], object]] = None) -> SimpleNamespace:
    return SimpleNamespace(send=sock.send, recv=sock.recv, close=close or sock.close, url=url)


class NnofiAdapter:
    name, module, dist = "nnofi", "nnofi", "nnofi"
    transports = ("tcp", "ipc", "inproc", "ofi")
    kinds: Tuple[str, ...] = ("reqrep", "pipeline")

    def __init__(self) -> None:
        import nnofi

        self.nnofi = nnofi

    def version(self) -> str:
        return self.nnofi.__version__

    def socket(self, kind: str, role: str, url: str) -> Tuple[Socket, str]:
        cls = {"req": self.nnofi.Req, "rep": self.nnofi.Rep,
               "push": self.nnofi.Push, "pull": self.nnofi.Pull}[SOCKET_TYPES[kind, role]]
        sock = cls(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS, recv_max_size=-1)
        real = sock.bind(url).url if role == "server" else sock.connect(url).url
        return sock, real

    def make_pair(self, kind: str, role: str, url: str) -> SimpleNamespace:
        return _conn(*self.socket(kind, role, url))


class NnofiBatchAdapter(NnofiAdapter):
    """nnofi's batch API: send_many(list of buffers) and recv_many(), one
    native call for many messages (PUSH/PULL only: a REQ has one request
    in flight)."""
    name = "nnofi-batch"
    kinds = ("pipeline",)

    def make_pair(self, kind: str, role: str, url: str) -> SimpleNamespace:
        sock, real = self.socket(kind, role, url)
        conn = _conn(sock, real)
        conn.send_batch, conn.recv_batch = sock.send_many, sock.recv_many
        return conn


class PyzmqAdapter:
    name, module, dist = "pyzmq", "zmq", "pyzmq"
    transports = ("tcp", "ipc", "inproc")
    kinds = ("reqrep", "pipeline")

    def __init__(self) -> None:
        import zmq

        self.zmq = zmq
        self.ctx: zmq.Context[Any] = zmq.Context.instance()  # one per process: inproc needs it shared

    def version(self) -> str:
        return f"{self.zmq.__version__} (libzmq {self.zmq.zmq_version()})"

    def make_pair(self, kind: str, role: str, url: str) -> SimpleNamespace:
        z = self.zmq
        sock = self.ctx.socket(getattr(z, SOCKET_TYPES[kind, role].upper()))
        sock.setsockopt(z.RCVTIMEO, TIMEOUT_MS)
        sock.setsockopt(z.SNDTIMEO, TIMEOUT_MS)
        sock.setsockopt(z.LINGER, 1000)
        if role == "client":
            sock.connect(url)
            return _conn(sock, url)
        if url.startswith("tcp://") and url.endswith(":0"):
            url = url[:-1] + "*"  # zmq's spelling of "any free port"
        sock.bind(url)
        return _conn(sock, sock.getsockopt_string(z.LAST_ENDPOINT))


class PynngAdapter:
    name, module, dist = "pynng", "pynng", "pynng"
    transports = ("tcp", "ipc", "inproc")
    kinds = ("reqrep", "pipeline")

    def __init__(self) -> None:
        import pynng

        self.pynng = pynng

    def version(self) -> str:
        return importlib.metadata.version("pynng")

    def make_pair(self, kind: str, role: str, url: str) -> SimpleNamespace:
        p = self.pynng
        cls = {"req": p.Req0, "rep": p.Rep0, "push": p.Push0, "pull": p.Pull0}[SOCKET_TYPES[kind, role]]
        sock = cls(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)
        sock.recv_max_size = 0  # unlimited, like the others (nng's default is 1 MiB: 4 MiB and up would fail)
        if role == "client":
            sock.dial(url, block=False)  # asynchronous, like the others' connect
            return _conn(sock, url)
        listener = sock.listen(url)
        if url.startswith("tcp://") and url.endswith(":0"):
            url = "tcp://" + str(listener.local_address)
        return _conn(sock, url)


ADAPTERS = {a.name: a for a in (NnofiAdapter, NnofiBatchAdapter, PyzmqAdapter, PynngAdapter)}
