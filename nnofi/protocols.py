"""The ten socket types (nanomsg's scalability protocols) and devices."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Iterable, Optional, Union

from ._native import ffi, lib
from .options import SocketOptions
from .socket import Socket

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Pair(Socket):
    """One-to-one, both directions (nanomsg PAIR, protocol 16)."""

    _protocol = lib.NNOFI_PAIR


class Push(Socket):
    """Sends, load-balanced round-robin over connected Pulls (protocol 80)."""

    _protocol = lib.NNOFI_PUSH


class Pull(Socket):
    """Receives, fair-queued from connected Pushes (protocol 81)."""

    _protocol = lib.NNOFI_PULL


class Req(Socket):
    """Sends requests and receives their replies; resends after
    req_resend_ivl until answered (protocol 48)."""

    _protocol = lib.NNOFI_REQ


class Rep(Socket):
    """Receives requests and answers each on the pipe it came from (49)."""

    _protocol = lib.NNOFI_REP


class Pub(Socket):
    """Publishes to every subscriber; a slow one misses messages, the
    publisher never waits (protocol 32)."""

    _protocol = lib.NNOFI_PUB


class Sub(Socket):
    """Receives what it subscribed to, by byte prefix (protocol 33).
    Nothing arrives until subscribe() is called; b"" subscribes to all."""

    _protocol = lib.NNOFI_SUB

    def __init__(
        self,
        *,
        topics: Optional[Union[bytes, str, Iterable[Union[bytes, str]]]] = None,
        bind: Optional[Union[str, Iterable[str]]] = None,
        connect: Optional[Union[str, Iterable[str]]] = None,
        raw: bool = False,
        **options: Unpack[SocketOptions],
    ) -> None:
        super().__init__(bind=bind, connect=connect, raw=raw, **options)
        if topics is not None:
            for topic in [topics] if isinstance(topics, (bytes, str)) else topics:
                self.subscribe(topic)

    def subscribe(self, prefix: Union[bytes, str]) -> None:
        """Receive messages whose body starts with prefix (str: UTF-8)."""
        self._topic(lib.NNOFI_OPT_SUBSCRIBE, prefix, "subscribe")

    def unsubscribe(self, prefix: Union[bytes, str]) -> None:
        self._topic(lib.NNOFI_OPT_UNSUBSCRIBE, prefix, "unsubscribe")

    def _topic(self, opt: int, prefix: Union[bytes, str], what: str) -> None:
        if isinstance(prefix, str):
            prefix = prefix.encode()
        if not isinstance(prefix, (bytes, bytearray, memoryview)):
            raise TypeError(f"{what} takes bytes or str, not {type(prefix).__name__}")
        data = bytes(prefix)
        rc = lib.nnofi_setopt_bytes(self._sock, opt, data, len(data))
        if rc == errno.EINVAL:
            raise ValueError(f"not subscribed to {data!r}")
        self._check(rc, what)


class Surveyor(Socket):
    """Asks every respondent; answers count until survey_time ms pass,
    then recv raises Timeout (protocol 98)."""

    _protocol = lib.NNOFI_SURVEYOR


class Respondent(Socket):
    """Answers surveys, each on the pipe it came from (protocol 99)."""

    _protocol = lib.NNOFI_RESPONDENT


class Bus(Socket):
    """Every message goes to every directly connected peer (protocol 112)."""

    _protocol = lib.NNOFI_BUS


def device(a: Socket, b: Optional[Socket] = None) -> None:
    """Forward messages between two raw sockets, both ways, until one of
    them is closed (like nn_device); with one socket, a reflector. Runs in
    the calling thread with the GIL released: start it in a thread."""
    for sock in (a, b):
        if sock is not None and not sock.raw:
            raise ValueError(f"device needs raw sockets (raw=True), got {sock!r}")
    rc = lib.nnofi_device(a._sock, b._sock if b is not None else ffi.NULL)
    if rc == errno.EINVAL:
        raise ValueError(f"{type(a).__name__} and {type(b or a).__name__} are not peers; a device joins e.g. Rep with Req")
    if rc:
        a._check(rc, "device")
