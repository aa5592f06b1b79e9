"""How long and how much each measurement may run, by message size.

Every measurement (a latency or a throughput cell) gets about `seconds`,
whatever the size: small messages then get many rounds, big ones few.
What must shrink by hand with size are the fixed costs: warm-ups, the
bytes a throughput phase may put in flight (pyzmq queues up to 1000
messages: at 64 MiB that would be 64 GiB), and fi_pingpong's iterations."""
from typing import Tuple

TIMEOUT_MS = 5000  # every blocking send/recv of every library
MARK = b"!mark"  # ends a throughput phase (payloads are b"x" * size)
STOP = b"!stop"  # ends the latency echo

ROUNDS = 5000  # latency: round trips per repeat at most
THR_MAX_MSGS = 3_000_000  # throughput: messages per phase at most
PHASE_MAX_BYTES = 512 << 20  # throughput: payload bytes per phase at most (at least MIN_MSGS messages)
MIN_MSGS = 4
LAT_WARMUP_BYTES = 8 << 20
THR_WARMUP_BYTES = 16 << 20
WARMUP_S = 0.3  # latency warm-up: at most this long once the minimum rounds are done
BATCH_MAX_SIZE = 16 << 10  # nnofi-batch rows (send_many/recv_many): small messages, where batching pays

KiB, MiB = 1 << 10, 1 << 20
# Issue 7: 64 B to 64 MiB, powers of 4.
SIZES = tuple(64 << (2 * i) for i in range(11))


def _clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))


def latency_warmup(size: int) -> int:
    """Round trips before the latency is timed."""
    return _clamp(LAT_WARMUP_BYTES // max(size, 1), 2, 200)


def throughput_warmup(size: int) -> int:
    """Messages (acknowledged by the receiver) before the throughput is timed."""
    return _clamp(THR_WARMUP_BYTES // max(size, 1), 2, 1000)


def phase_max_msgs(size: int) -> int:
    """Messages one throughput phase may send, whatever its time budget."""
    return _clamp(PHASE_MAX_BYTES // max(size, 1), MIN_MSGS, THR_MAX_MSGS)


def cell_timeout(seconds: float) -> float:
    """A whole cell's deadline (process start-up included): a hung cell
    costs this much of the sweep's budget, so it is kept short."""
    return 20.0 + 4 * seconds


def fi_pingpong_iterations(size: int) -> Tuple[int, int, int]:
    """(probe, least, most) iterations of one fi_pingpong run: a probe to
    learn the round trip, then runs sized to the time budget within bounds."""
    return (_clamp((64 << 20) // max(size, 1), 3, 2000), _clamp((256 << 20) // max(size, 1), 3, 20), 1_000_000)


def batch_send_count(size: int) -> int:
    """nnofi-batch: messages per send_many: at most 1024 and 64 KiB of payload
    (1024 x 64 B, the floor's row); bigger batches gain nothing more (256 KiB
    ones measured the same on 2026-12-07)."""
    return _clamp((64 << 10) // max(size, 1), 1, 1024)


def batch_recv_limits(size: int) -> Tuple[int, int]:
    """nnofi-batch: (max_count, max_bytes) per recv_many. recv_many allocates
    max_bytes on every call, so ask for what max_count messages can fill."""
    return 4096, _clamp(4096 * size, 256 << 10, 4 << 20)
