# nnofi._fast (native/python/fast.c): SocketCore, nnofi.Socket's base with
# send() and recv() in C, and the batch calls past cffi. `sock` is the
# address of a native nnofi_sock (Socket._addr); a batch call's failure
# comes back as its errno (an int), never raised, so the caller picks the
# exception.
from collections.abc import Callable, Iterable
from typing import Any, Literal, Optional, overload

from _typeshed import ReadableBuffer

from .socket import Tracker

ZERO_COPY_MIN: int
"""Read-only buffers of this many bytes or more are lent to the core, not copied."""

def init(api: int, retained: dict[int, Any], reap: Callable[[], None], /) -> None:
    """Takes the address of the core's nnofi_fast_api table
    (lib.nnofi_fast_api()), and nnofi.socket's retained buffers and the
    function that drops those the core let go."""

class SocketCore:
    @overload
    def send(self, data: Any, block: bool = True, *, copy: Literal[True] = True) -> None: ...
    @overload
    def send(self, data: Any, block: bool = True, *, copy: Literal[False]) -> Tracker: ...
    @overload
    def send(self, data: Any, block: bool = True, *, copy: bool = True) -> Optional[Tracker]: ...
    def recv(self, block: bool = True) -> bytes: ...
    def _attach(self, sock: int, /) -> None: ...

def send_many(sock: int, buffers: Iterable[ReadableBuffer], flags: int, /) -> tuple[int, int]:
    """(0 or an errno, how many messages went)."""

def recv_many(sock: int, max_count: int, max_bytes: int, flags: int, /) -> list[bytes] | int:
    """Up to max_count messages (max_bytes in all), or an errno."""
