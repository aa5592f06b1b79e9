"""asyncio on every socket: await sock.arecv(), await sock.asend(data).

A coroutine waits on the socket's readiness fds (fileno() for receiving,
send_fileno() for sending) with loop.add_reader, then makes the ordinary
call with block=False. Messages move only in that non-blocking call, so a
cancelled arecv has taken nothing off the socket and a cancelled asend has
sent nothing; a message is never half received or half sent. The socket's
recv_timeout and send_timeout apply as in the blocking calls (nnofi.Timeout),
and asyncio.wait_for works too.
"""
import asyncio
import errno
import os
from typing import TYPE_CHECKING, Any, Callable, List, Optional, TypeVar

from .errors import Again, Timeout
from .message import Message

T = TypeVar("T")


class _Readiness:
    """The tasks of one event loop waiting for one fd to poll readable.

    asyncio takes one reader per fd, so the fd has one for all of them:
    readiness wakes them all and each tries its call again (the fds may
    poll readable without a message after all; a retry that finds none
    waits again). The reader is only registered while someone waits, so a
    socket nobody awaits costs the loop nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self._waiters: List["asyncio.Future[None]"] = []

    @property
    def busy(self) -> bool:
        return bool(self._waiters)

    async def wait(self, deadline: Optional[float]) -> None:
        """Until the fd polls readable or the loop's clock reaches
        deadline (None: no limit)."""
        fut: "asyncio.Future[None]" = self.loop.create_future()
        if not self._waiters:
            self.loop.add_reader(self.fd, self._ready)
        self._waiters.append(fut)
        timer = None if deadline is None else self.loop.call_at(deadline, _wake, fut)
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._forget(fut)

    def _ready(self) -> None:
        self.loop.remove_reader(self.fd)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            _wake(fut)

    def _forget(self, fut: "asyncio.Future[None]") -> None:
        """A waiter leaves early (timed out or cancelled)."""
        if fut in self._waiters:
            self._waiters.remove(fut)
            if not self._waiters:
                self.loop.remove_reader(self.fd)


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncioMixin:
    """The asyncio half of nnofi.Socket: asend, asend_msg, arecv, arecv_msg.

    Sockets that cannot send (Pull, Sub) or receive (Push, Pub) raise what
    their send or recv raise (NotSupported), as does a call in the wrong
    protocol state (BadState); a closed socket raises Closed, also in the
    coroutines waiting on it when it closes."""

    if TYPE_CHECKING:
        # what nnofi.Socket provides
        recv_timeout: int
        send_timeout: int

        def send(self, data: Any, block: bool = True) -> None: ...
        def send_msg(self, msg: Message, block: bool = True) -> None: ...
        def recv(self, block: bool = True) -> bytes: ...
        def recv_msg(self, block: bool = True) -> Message: ...
        def fileno(self) -> int: ...
        def send_fileno(self) -> int: ...

    _aio_recv: Optional[_Readiness] = None
    _aio_send: Optional[_Readiness] = None

    async def asend(self, data: Any) -> None:
        """Send bytes or any buffer, like send(). Waits while the peers have
        no room (as send() blocks), up to send_timeout. The buffer is read
        when the message goes: leave it unchanged until asend returns; it
        may be reused after."""
        return await self._when_ready(lambda: self.send(data, block=False), True, "send")

    async def asend_msg(self, msg: Message) -> None:
        """Send a received Message on (no copy), like send_msg()."""
        return await self._when_ready(lambda: self.send_msg(msg, block=False), True, "send")

    async def arecv(self) -> bytes:
        """Receive one message as bytes, like recv(); waits up to recv_timeout."""
        return await self._when_ready(lambda: self.recv(block=False), False, "recv")

    async def arecv_msg(self) -> Message:
        """Receive one message as an nnofi.Message (zero copy), like recv_msg()."""
        return await self._when_ready(lambda: self.recv_msg(block=False), False, "recv")

    async def _when_ready(self, attempt: Callable[[], T], sending: bool, what: str) -> T:
        """attempt() (a non-blocking call) until it does not raise Again,
        waiting for the readiness fd between tries."""
        try:
            return attempt()  # no trip through the loop when it can go now
        except Again:
            pass
        loop = asyncio.get_running_loop()
        timeout_ms = self.send_timeout if sending else self.recv_timeout
        deadline = None if timeout_ms < 0 else loop.time() + timeout_ms / 1000
        readiness = self._readiness(loop, sending)
        while True:
            await readiness.wait(deadline)
            try:
                return attempt()
            except Again:
                if deadline is not None and loop.time() >= deadline:
                    raise Timeout(f"{what}: {os.strerror(errno.ETIMEDOUT)}", errno.ETIMEDOUT) from None

    def _readiness(self, loop: asyncio.AbstractEventLoop, sending: bool) -> _Readiness:
        current = self._aio_send if sending else self._aio_recv
        if current is not None and current.loop is loop:
            return current
        if current is not None and current.busy:
            raise RuntimeError(f"{self!r} is awaited in another event loop; a socket serves one loop at a time")
        made = _Readiness(loop, self.send_fileno() if sending else self.fileno())
        if sending:
            self._aio_send = made
        else:
            self._aio_recv = made
        return made
