"""Exceptions. Every error from the core is an nnofi.Error carrying the
errno-style code; the subclasses also derive from the matching builtin
so `except TimeoutError` works as a user expects."""
import errno as _errno
from typing import Dict, Type


class Error(Exception):
    """Base of every nnofi error; .errno is the core's code (0 if none)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


class Timeout(Error, TimeoutError):
    """A send or receive did not complete within its timeout."""

    errno: int  # always the core's code (OSError's may be None)


class Again(Error, BlockingIOError):
    """block=False and the operation would have to wait."""

    errno: int  # always the core's code (OSError's may be None)


class Closed(Error):
    """The socket (or endpoint) is closed."""


class AddressInUse(Error):
    """Another socket already listens on this address."""


class BadURL(Error, ValueError):
    """The URL is malformed or names an unknown transport."""


class MessageTooLarge(Error):
    """A message exceeds recv_max_size."""


class BadState(Error):
    """Not valid now, e.g. Rep.send before a request was received (EFSM)."""


class NotSupported(Error):
    """The socket type cannot do this, e.g. Pull.send."""


_BY_ERRNO: Dict[int, Type[Error]] = {
    _errno.ETIMEDOUT: Timeout,
    _errno.EAGAIN: Again,
    _errno.EBADF: Closed,
    _errno.EADDRINUSE: AddressInUse,
    _errno.EMSGSIZE: MessageTooLarge,
    _errno.EPROTO: BadState,
    _errno.ENOTSUP: NotSupported,
    _errno.ENOPROTOOPT: NotSupported,
}


def from_errno(code: int, what: str, detail: str) -> Error:
    cls = _BY_ERRNO.get(code, Error)
    return cls(f"{what}: {detail}", code)
