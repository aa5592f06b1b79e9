# nnofi._msgbuf (native/python/msgbuf.c): the base of nnofi.Message.
from typing import Any

class MsgBuf:
    """Zero-copy view of native memory kept alive by an owner object."""

    def __init__(self, owner: Any, address: int, length: int) -> None: ...
    @property
    def owner(self) -> Any:
        """What keeps the bytes alive (a cffi pointer freed by ffi.gc)."""
    def __len__(self) -> int: ...
    # the buffer protocol (a C slot: Python 3.12 and later name it __buffer__),
    # so memoryview(msg) and numpy.frombuffer(msg) type-check
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
