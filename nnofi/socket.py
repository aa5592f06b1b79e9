"""Socket classes. Python does control (create, bind, options); send()
and recv() are C methods of the base, _fast.SocketCore, and wait with the
GIL released."""
from __future__ import annotations

import errno
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Union

from . import _fast
from ._asyncio import AsyncioMixin
from ._native import ffi, lib
from .errors import AddressInUse, BadURL, Closed, Error, NotSupported, from_errno
from .message import Message
from .options import OPTIONS, STATS, SocketOptions
from .url import explain as explain_url
from .url import explain_ipc_in_use, explain_ofi

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

# Anything with the buffer protocol. Any, not typing_extensions.Buffer:
# numpy's stubs give ndarray __buffer__ only from Python 3.12 on.
Buffer = Union[bytes, bytearray, memoryview, Any]

# Buffers the core keeps past a send call (zero-copy inproc), by handle,
# until nnofi_reap reports them released. Shared by all sockets.
_ZERO_COPY_MIN = _fast.ZERO_COPY_MIN
_retained: Dict[int, Any] = {}
_handles = itertools.count(1)
_reap_buf = ffi.new("uint64_t[]", 256)
_tls = threading.local()


def _reap() -> None:
    while True:
        n = lib.nnofi_reap(_reap_buf, 256)
        for i in range(n):
            _retained.pop(_reap_buf[i], None)
        if n < 256:
            return


_fast.init(lib.nnofi_fast_api(), _retained, _reap)


def _recv_result() -> Any:
    try:
        return _tls.result
    except AttributeError:
        _tls.result = ffi.new("nnofi_recv_result *")
        return _tls.result


class Endpoint:
    """A bound or connected address of a socket."""

    def __init__(self, sock: "Socket", ep_id: int, url: str, kind: str) -> None:
        self._sock = sock
        self.id = ep_id
        self.url = url
        self.kind = kind

    def close(self) -> None:
        """Stop listening/dialing and close this endpoint's connections."""
        if self._sock.closed:
            return
        lib.nnofi_endpoint_close(self._sock._sock, self.id)

    def __repr__(self) -> str:
        return f"<nnofi.Endpoint {self.kind} {self.url}>"


class Socket(_fast.SocketCore, AsyncioMixin):
    """Base of all socket types: Pair, Push, Pull, Req, Rep, Pub, Sub,
    Surveyor, Respondent, Bus. send() and recv() come from
    _fast.SocketCore (C)."""

    _protocol = 0

    # The options (options.OPTIONS), made properties after the class; named
    # here for type checkers (tests/typing checks the two lists agree).
    send_timeout: int
    recv_timeout: int
    recv_max_size: int
    send_buffer: int
    recv_buffer: int
    reconnect_ivl: int
    reconnect_ivl_max: int
    linger: int
    req_resend_ivl: int
    survey_time: int
    spin_us: int
    rendezvous_min: int
    mr_cache_max: int
    ipc_permissions: int
    tcp_keepalive: int
    ofi_rma: int

    def __init__(
        self,
        *,
        bind: Optional[Union[str, Iterable[str]]] = None,
        connect: Optional[Union[str, Iterable[str]]] = None,
        raw: bool = False,
        **options: Unpack[SocketOptions],
    ) -> None:
        if type(self) is Socket:
            raise TypeError("use a socket type: Pair, Push, Pull, Req, Rep, Pub, Sub, Surveyor, Respondent or Bus")
        out = ffi.new("nnofi_sock **")
        self._check(lib.nnofi_socket(self._protocol, 1 if raw else 0, out), "socket")
        self.raw = bool(raw)
        self._sock = ffi.gc(out[0], lib.nnofi_release)
        self._addr = int(ffi.cast("uintptr_t", self._sock))  # for nnofi._fast, alive with _sock
        self._attach(self._addr)
        self._closed = False
        self._endpoints: List[Endpoint] = []
        try:
            for name, value in options.items():
                if name not in OPTIONS:
                    raise TypeError(f"unknown option {name!r}; known: {', '.join(sorted(OPTIONS))}")
                setattr(self, name, value)
            for url in _as_list(bind):
                self.bind(url)
            for url in _as_list(connect):
                self.connect(url)
        except BaseException:
            self.close()
            raise

    # -- life cycle --------------------------------------------------------
    def close(self) -> None:
        """Close the socket; threads blocked in it raise Closed. Idempotent."""
        if not self._closed:
            self._closed = True
            lib.nnofi_close(self._sock)
            # Endpoints refer back to their socket: without this cycle the
            # native socket (its fds) goes at once, not at the next gc.
            self._endpoints.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ", ".join(e.url for e in self._endpoints) or "idle"
        return f"<nnofi.{type(self).__name__} {state}>"

    # -- endpoints -----------------------------------------------------------
    def bind(self, url: str) -> Endpoint:
        """Listen on url (tcp://HOST:0 picks a free port: see .url)."""
        return self._endpoint(lib.nnofi_bind, url, "bind")

    def connect(self, url: str) -> Endpoint:
        """Dial url; the connection is made (and remade) in the background."""
        return self._endpoint(lib.nnofi_connect, url, "connect")

    @property
    def endpoints(self) -> List[Endpoint]:
        return list(self._endpoints)

    def _endpoint(self, fn: Callable[..., int], url: str, kind: str) -> Endpoint:
        if not isinstance(url, str):
            raise TypeError(f"{kind} takes a URL string, not {type(url).__name__}")
        real = ffi.new("char[]", 512)
        ep_id = ffi.new("uint32_t *")
        rc = fn(self._sock, url.encode(), real, 512, ep_id)
        if rc:
            if rc in (errno.EINVAL, errno.EPROTONOSUPPORT, errno.ENAMETOOLONG, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise BadURL(f"{kind} {url!r}: {explain_url(url, kind)}", rc)
            if rc == errno.ENODEV and url.startswith("ofi://"):
                raise BadURL(f"{kind} {url!r}: {explain_ofi(url)}", rc)
            if rc == errno.EADDRINUSE and url.startswith("ipc://"):
                raise AddressInUse(f"{kind} {url!r}: {explain_ipc_in_use(url[len('ipc://'):])}", rc)
            if rc == errno.ENOTSUP and url.startswith("ofi://"):
                raise NotSupported(
                    f"{kind} {url!r}: that is an shm listener of this same process; libfabric's shm "
                    "cannot connect two endpoints of one process safely: use inproc:// within a process",
                    rc,
                )
            self._check(rc, f"{kind} {url!r}")
        ep = Endpoint(self, ep_id[0], ffi.string(real).decode(), kind)
        self._endpoints.append(ep)
        return ep

    # -- messages ------------------------------------------------------------
    # send(data, block=True, *, copy=True) and recv(block=True): SocketCore.

    def _send_slow(self, data: Buffer, flags: int, copy: bool) -> Optional[Tracker]:
        """send() of what SocketCore does not send itself: anything not a
        buffer (a TypeError), a big read-only buffer (lent to the core),
        and copy=False."""
        if not copy:
            return Tracker(self._send_buffer(data, flags, lend=True))
        self._send_buffer(data, flags, lend=False)
        return None

    def _send_buffer(self, data: Buffer, flags: int, lend: bool) -> int:
        """send()'s slow path: a big buffer that is immutable, or lent
        (copy=False), is kept by the core (no copy) until it reports the
        handle released (nnofi_reap); others are copied. Returns the
        handle kept (0: none)."""
        try:
            buf = ffi.from_buffer(data)
        except TypeError:
            raise TypeError(
                f"send takes bytes or another buffer (bytearray, memoryview, numpy array), "
                f"not {type(data).__name__}" + ("; encode the str first" if isinstance(data, str) else "")
            ) from None
        handle = 0
        if len(buf) < _ZERO_COPY_MIN or not (lend or _immutable(data)):
            rc = lib.nnofi_send(self._sock, buf, len(buf), flags, 0, _no_retain)
        else:
            handle = next(_handles)
            retained = ffi.new("int *")
            _retained[handle] = (data, buf)
            rc = lib.nnofi_send(self._sock, buf, len(buf), flags, handle, retained)
            if not retained[0]:
                _retained.pop(handle, None)
                handle = 0
        if _retained:
            _reap()
        if rc:
            self._check(rc, "send")
        return handle

    def send_msg(self, msg: Message, block: bool = True) -> None:
        """Send a received Message on, sharing its bytes (no copy). On raw
        sockets its SP header goes along: the way to write devices."""
        rc = lib.nnofi_send_msg(self._sock, msg._native, 0 if block else lib.NNOFI_DONTWAIT)
        if rc:
            self._check(rc, "send")

    def recv_msg(self, block: bool = True) -> Message:
        """Receive one message as an nnofi.Message (zero-copy buffer)."""
        res = _recv_result()
        rc = lib.nnofi_recv(self._sock, 0 if block else lib.NNOFI_DONTWAIT, res)
        if rc:
            self._check(rc, "recv")
        return Message._adopt(res)

    def recv_into(self, buffer: Buffer, block: bool = True) -> int:
        """Receive into a writable buffer; returns the message size (if it
        is larger than the buffer, the message was truncated). Over ofi, a
        big message whose body has not been read yet is read straight into
        the buffer, if it fits."""
        try:
            buf = ffi.from_buffer(buffer, require_writable=True)
        except (TypeError, BufferError):
            raise TypeError(f"recv_into needs a writable buffer (bytearray, numpy array), not {type(buffer).__name__}") from None
        size = ffi.new("size_t *")
        rc = lib.nnofi_recv_into(self._sock, buf, len(buf), 0 if block else lib.NNOFI_DONTWAIT, size)
        if rc:
            self._check(rc, "recv")
        return int(size[0])

    def send_many(self, buffers: Iterable[Buffer], block: bool = True) -> int:
        """Send many messages in one native call (over tcp and ipc they
        leave in few writes). Returns how many were sent; an error after
        the first is raised with .sent telling how many went."""
        rc, sent = _fast.send_many(self._addr, buffers, 0 if block else lib.NNOFI_DONTWAIT)
        if rc:
            try:
                self._check(rc, "send_many")
            except Error as exc:
                exc.sent = sent  # type: ignore[attr-defined]
                raise
        return sent

    def recv_many(self, max_count: int = 1024, max_bytes: int = 1 << 20, block: bool = True) -> List[bytes]:
        """Receive up to max_count messages in one native call: waits for the
        first like recv(), then takes those already here, up to max_bytes
        in all (a first message larger than that comes alone)."""
        got = _fast.recv_many(self._addr, max_count, max_bytes, 0 if block else lib.NNOFI_DONTWAIT)
        if type(got) is int:
            self._check(got, "recv_many")
        return got  # type: ignore[return-value]  # as in recv

    def fileno(self) -> int:
        """An fd that polls readable when recv() would not block."""
        fd = ffi.new("int *")
        self._check(lib.nnofi_recv_fd(self._sock, fd), "fileno")
        return int(fd[0])

    def send_fileno(self) -> int:
        """An fd that polls readable when send() would not block."""
        fd = ffi.new("int *")
        self._check(lib.nnofi_send_fd(self._sock, fd), "send_fileno")
        return int(fd[0])

    # -- state -----------------------------------------------------------------
    @property
    def stats(self) -> Dict[str, int]:
        """Counters: messages/bytes in and out, pipes opened/closed/broken..."""
        out = ffi.new("uint64_t[]", len(STATS))
        lib.nnofi_stats(self._sock, out, len(STATS))
        return {name: int(out[i]) for i, name in enumerate(STATS)}

    def _check(self, rc: int, what: str) -> None:
        if rc == 0:
            return
        if getattr(self, "_closed", False) and rc == errno.EBADF:
            raise Closed(f"{what}: socket is closed", rc)
        raise from_errno(rc, what, ffi.string(lib.nnofi_strerror(rc)).decode())


_no_retain = ffi.new("int *")


class Tracker:
    """What send(data, copy=False) returns: whether nnofi still reads the
    lent buffer (like pyzmq's MessageTracker)."""

    def __init__(self, handle: int) -> None:
        self._handle = handle

    @property
    def done(self) -> bool:
        """True once the buffer may be changed or freed."""
        if self._handle and _retained:
            _reap()
        return not self._handle or self._handle not in _retained

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Until done, or timeout seconds (None: no limit); returns done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0001
        while not self.done:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        return True


def _immutable(data: Any) -> bool:
    """Only a buffer nobody can change may be kept past send() (inproc
    hands the peer a pointer to it); a writable one is copied there."""
    if type(data) is bytes:
        return True
    view = data if isinstance(data, memoryview) else memoryview(data)
    return view.readonly


def _as_list(urls: Optional[Union[str, Iterable[str]]]) -> List[str]:
    if urls is None:
        return []
    if isinstance(urls, str):
        return [urls]
    return list(urls)


def _option_property(name: str, opt: int, doc: str) -> property:
    def get(self: Socket) -> int:
        value = ffi.new("int64_t *")
        self._check(lib.nnofi_getopt(self._sock, opt, value), f"get {name}")
        return int(value[0])

    def set(self: Socket, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} takes an int, not {type(value).__name__}")
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{name}={value} is out of range")
        rc = lib.nnofi_setopt(self._sock, opt, value)
        if rc == errno.EINVAL:
            raise ValueError(f"{name}={value} is out of range ({doc})")
        self._check(rc, f"set {name}")

    return property(get, set, doc=doc)


for _name, (_opt, _doc) in OPTIONS.items():
    setattr(Socket, _name, _option_property(_name, _opt, _doc))
