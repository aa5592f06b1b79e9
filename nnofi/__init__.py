"""nnofi: nanomsg's scalability protocols over inproc, ipc, tcp and
libfabric, with a C core.

    import nnofi
    with nnofi.Rep(bind="tcp://127.0.0.1:5555") as rep, \\
         nnofi.Req(connect="tcp://127.0.0.1:5555") as req:
        req.send(b"ping")
        rep.send(rep.recv() + b" pong")
        print(req.recv())
"""
from . import _native  # noqa: F401  (loads libfabric, which takes SIGINT over: see _sigint)
from ._sigint import restore_keyboard_interrupt

restore_keyboard_interrupt()

from .errors import (
    AddressInUse,
    Again,
    BadState,
    BadURL,
    Closed,
    Error,
    MessageTooLarge,
    NotSupported,
    Timeout,
)
from .message import Message
from .protocols import Bus, Pair, Pub, Pull, Push, Rep, Req, Respondent, Sub, Surveyor, device
from .socket import Endpoint, Socket, Tracker

__version__ = "0.1.0"

__all__ = [
    "AddressInUse",
    "Bus",
    "Pub",
    "Respondent",
    "Sub",
    "Surveyor",
    "device",
    "Again",
    "BadState",
    "BadURL",
    "Closed",
    "Endpoint",
    "Error",
    "Message",
    "MessageTooLarge",
    "NotSupported",
    "Pair",
    "Pull",
    "Push",
    "Rep",
    "Req",
    "Socket",
    "Timeout",
    "Tracker",
]
