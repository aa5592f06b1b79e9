"""nnofi.Message: a received message, exposed without copying.

It exports the buffer protocol (memoryview(msg), numpy.frombuffer(msg)),
and the native message is freed when the Message and every view of it
are gone.
"""
from ._msgbuf import MsgBuf
from ._native import ffi, lib


class Message(MsgBuf):
    """Bytes of one received message, zero-copy."""

    __slots__ = ()

    @classmethod
    def _adopt(cls, result) -> "Message":
        owner = ffi.gc(result.msg, lib.nnofi_msg_free)
        return cls(owner, int(ffi.cast("uintptr_t", result.data)), result.len)

    @property
    def _native(self):
        return self.owner

    @property
    def header(self) -> bytes:
        """The SP header (backtrace, request id): only raw sockets keep it."""
        data = ffi.new("void **")
        n = lib.nnofi_msg_header(self.owner, data)
        return ffi.unpack(ffi.cast("char *", data[0]), n)

    @property
    def bytes(self) -> bytes:
        return memoryview(self).tobytes()

    def __bytes__(self) -> bytes:
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
