"""nnofi.Message: a received message, exposed without copying.

It exports the buffer protocol (memoryview(msg), numpy.frombuffer(msg)),
and the native message is freed when the Message and every view of it
are gone.
"""
from __future__ import annotations

import builtins  # the property Message.bytes hides the builtin in the class body
from typing import Any

from ._msgbuf import MsgBuf
from ._native import ffi, lib


class Message(MsgBuf):
    """Bytes of one received message, zero-copy."""

    __slots__ = ()

    @classmethod
    def _adopt(cls, result: Any) -> Message:
        """Take over the nnofi_msg of an nnofi_recv_result (a cffi pointer)."""
        owner = ffi.gc(result.msg, lib.nnofi_msg_free)
        return cls(owner, int(ffi.cast("uintptr_t", result.data)), result.len)

    @property
    def _native(self) -> Any:
        return self.owner

    @property
    def header(self) -> builtins.bytes:
        """The SP header (backtrace, request id): only raw sockets keep it."""
        data = ffi.new("void **")
        n = lib.nnofi_msg_header(self.owner, data)
        header: builtins.bytes = ffi.unpack(ffi.cast("char *", data[0]), n)
        return header

    @property
    def bytes(self) -> builtins.bytes:
        return memoryview(self).tobytes()

    def __bytes__(self) -> builtins.bytes:
        return memoryview(self).tobytes()

    def __eq__(self, other: object) -> bool:
        try:
            return memoryview(self) == memoryview(other)  # type: ignore[arg-type]
        except TypeError:
            return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = memoryview(self)[:16].tobytes()
        more = "..." if len(self) > 16 else ""
        return f"<nnofi.Message {len(self)} bytes {head!r}{more}>"
