"""Socket options: name -> (native id, help). Times are milliseconds and
-1 means infinite/unlimited, as in nanomsg, nng and pyzmq."""
from typing import Dict, Tuple, TypedDict

from ._native import lib

OPTIONS: Dict[str, Tuple[int, str]] = {
    "send_timeout": (lib.NNOFI_OPT_SEND_TIMEOUT, "ms a blocking send may wait (-1: forever)"),
    "recv_timeout": (lib.NNOFI_OPT_RECV_TIMEOUT, "ms a blocking receive may wait (-1: forever)"),
    "recv_max_size": (
        lib.NNOFI_OPT_RECV_MAX_SIZE,
        "largest message accepted from a peer, in bytes, SP header words (backtrace) included "
        "(default 1048576; -1: no limit; 0: empty messages only, as in nanomsg). Over tcp, ipc "
        "and ofi a larger frame, or rendezvous announce, closes that connection (counted in "
        "frames_oversize) before any memory is allocated or registered for it. inproc is not "
        "limited, as in nng: its messages come from this process, passed by pointer",
    ),
    "send_buffer": (lib.NNOFI_OPT_SEND_BUFFER, "bytes queued for sending"),
    "recv_buffer": (lib.NNOFI_OPT_RECV_BUFFER, "bytes received ahead of recv()"),
    "reconnect_ivl": (lib.NNOFI_OPT_RECONNECT_IVL, "ms before redialing a lost peer"),
    "reconnect_ivl_max": (
        lib.NNOFI_OPT_RECONNECT_IVL_MAX,
        "upper bound of exponential redial backoff, ms (0: no backoff)",
    ),
    "linger": (lib.NNOFI_OPT_LINGER, "ms close() waits for queued messages"),
    "req_resend_ivl": (lib.NNOFI_OPT_REQ_RESEND_IVL, "ms before REQ resends an unanswered request"),
    "survey_time": (lib.NNOFI_OPT_SURVEY_TIME, "ms a SURVEYOR collects answers (default 1000)"),
    "spin_us": (
        lib.NNOFI_OPT_SPIN_US,
        "microseconds a waiting call polls before sleeping (default 50 on multi-core, env NNOFI_SPIN_US)",
    ),
    "rendezvous_min": (
        lib.NNOFI_OPT_RENDEZVOUS_MIN,
        "ofi: messages of at least this many bytes are read by the peer with fi_read, no copy "
        "(default 131072; -1: always copy through send buffers)",
    ),
    "mr_cache_max": (
        lib.NNOFI_OPT_MR_CACHE_MAX,
        "ofi: bytes of memory registrations a connection keeps cached (default 1 GiB)",
    ),
    "ipc_permissions": (
        lib.NNOFI_OPT_IPC_PERMISSIONS,
        "ipc: permission bits of the socket files of listeners bound after it is set, umask "
        "not applied (default 0o600: only the owner may connect; 0o660 lets the group in)",
    ),
    "tcp_keepalive": (
        lib.NNOFI_OPT_TCP_KEEPALIVE,
        "tcp: ms of silence on a connection made after it is set before TCP keepalive probes the "
        "peer, every fifth of that, 3 unanswered ending the connection (default 10000; 0: off), "
        "so a peer whose host died or whose side was reset does not leave a half-open pipe",
    ),
    "ofi_rma": (
        lib.NNOFI_OPT_OFI_RMA,
        "ofi: 1 lets connections made after it is set use RMA where the provider has it (default); "
        "0 never (both directions copy, as with a provider without FI_RMA)",
    ),
}


class SocketOptions(TypedDict, total=False):
    """OPTIONS as keyword arguments of a socket, e.g. Req(recv_timeout=100),
    for type checkers (tests/typing checks that the names agree)."""

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


STATS = (
    "msgs_sent",
    "msgs_recv",
    "bytes_sent",
    "bytes_recv",
    "pipes_opened",
    "pipes_closed",
    "pipes_broken",
    "msgs_dropped",
    # why a connection or message was refused (bad input is counted here)
    "handshakes_rejected",  # not an SP header, or a protocol that is no peer
    "handshake_timeouts",  # connected but sent no SP header in time
    "frames_oversize",  # length over recv_max_size: the connection is closed
    "frames_malformed",  # e.g. an ipc frame type other than 0x01
    "headers_malformed",  # SP backtrace missing or longer than 8 hops
    "unexpected_msgs",  # a message a peer of this protocol never sends
    # ofi://: the registration cache, and messages sent/received by rendezvous
    "mr_hits",
    "mr_misses",
    "mr_evictions",
    "mr_bytes_registered",
    "rendezvous_sent",
    "rendezvous_recv",
    # a listener's accept() failed for want of fds or memory (it pauses, then retries)
    "accept_errors",
    # sendmsg calls on tcp/ipc connections (a burst of small messages shares one)
    "writes",
    # ofi://: rendezvous bodies read straight into recv()'s bytes or recv_into()'s buffer (no copy)
    "rendezvous_in_place",
)
