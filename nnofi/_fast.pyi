# nnofi._fast (native/python/fast.c): Socket's send/recv of small messages
# and its batch calls, past cffi. `sock` is the address of a native
# nnofi_sock (Socket._addr); a failure comes back as its errno (an int),
# never raised, so the caller picks the exception.
from collections.abc import Iterable

from _typeshed import ReadableBuffer

def init(api: int, /) -> None:
    """Takes the address of the core's nnofi_fast_api table (lib.nnofi_fast_api())."""

def send(sock: int, data: object, flags: int, keep_min: int, /) -> int:
    """0, an errno, or -1: not sent here (data is no buffer, or a read-only
    one of keep_min bytes or more, which the caller may lend the core)."""

def recv(sock: int, flags: int, /) -> bytes | int:
    """The message, or an errno."""

def send_many(sock: int, buffers: Iterable[ReadableBuffer], flags: int, /) -> tuple[int, int]:
    """(0 or an errno, how many messages went)."""

def recv_many(sock: int, max_count: int, max_bytes: int, flags: int, /) -> list[bytes] | int:
    """Up to max_count messages (max_bytes in all), or an errno."""
