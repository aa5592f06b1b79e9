"""The timing loops, run inside a cell's processes (cells.py): REQ/REP
round trips and PUSH/PULL throughput timed to the receiver's ack. The
nanomsg C driver (nanomsg_driver.c) runs the same loops in C.

A conn is what adapters.make_pair returns (a SimpleNamespace: send, recv,
close, url, and send_batch/recv_batch for batch adapters); ctl is the
multiprocessing Pipe end to the peer's process."""
from __future__ import annotations

import statistics
import time
from multiprocessing.connection import Connection
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Tuple

from . import budget
from .budget import MARK, STOP, TIMEOUT_MS

# ---- latency: REQ/REP round trips -----------------------------------------


def echo_server(conn: SimpleNamespace, size: int) -> None:
    """REP: send every request back until STOP."""
    recv, send, n = conn.recv, conn.send, len(STOP)
    while True:
        m = recv()
        send(m)
        if len(m) == n and m == STOP:
            return


def measure_latency(conn: SimpleNamespace, size: int, repeats: int, seconds: float) -> Dict[str, Any]:
    """REQ: warm up, then `repeats` repeats of up to seconds/repeats (and
    ROUNDS round trips); the median of the repeats' mean round trips, in
    microseconds."""
    send, recv, clock = conn.send, conn.recv, time.perf_counter_ns
    msg = b"x" * size
    least = budget.latency_warmup(size)
    until = clock() + int(budget.WARMUP_S * 1e9)
    for i in range(max(least, 200)):
        send(msg)
        if len(recv()) != size:
            raise RuntimeError("the echo came back with a different size")
        if i + 1 >= least and clock() > until:
            break
    chunk = max(1, min(20, 2_000_000 // max(size, 1)))  # round trips between clock reads
    per_repeat = int(seconds / repeats * 1e9)
    means: List[float] = []
    for _ in range(repeats):
        n, t0 = 0, clock()
        stop = t0 + per_repeat
        while n < budget.ROUNDS:
            for _ in range(chunk):
                send(msg)
                recv()
            n += chunk
            if clock() > stop:
                break
        means.append((clock() - t0) / n / 1000)
    send(STOP)
    recv()
    return {"latency_us": statistics.median(means), "latency_repeats_us": means}


# ---- throughput: PUSH/PULL, timed to the receiver's ack -------------------


def sink_server(conn: SimpleNamespace, size: int, ctl: Connection[Any, Any], phases: int = 1) -> None:
    """PULL: count messages and bytes; at each MARK report them on ctl.
    A warm-up phase, then `phases` measured ones. A batch conn (nnofi-batch)
    takes them with recv_batch: MARK is the last of its batch, because the
    sender waits for its ack before it sends more."""
    batch = getattr(conn, "recv_batch", None)
    for _ in range(1 + phases):
        if batch is not None:
            ctl.send(_count_batches(batch, size))
        else:
            ctl.send(_count(conn.recv))


def _count(recv: Callable[[], bytes]) -> Tuple[int, int]:
    count = nbytes = 0
    n_mark = len(MARK)
    while True:
        m = recv()
        k = len(m)
        if k == n_mark and m == MARK:
            return count, nbytes
        count += 1
        nbytes += k


def _count_batches(recv_batch: Callable[[int, int], List[bytes]], size: int) -> Tuple[int, int]:
    max_count, max_bytes = budget.batch_recv_limits(size)
    count = nbytes = 0
    while True:
        got = recv_batch(max_count, max_bytes)
        if got[-1] == MARK:
            got.pop()
            count += len(got)
            nbytes += sum(map(len, got))
            return count, nbytes
        count += len(got)
        nbytes += sum(map(len, got))


def await_ack(ctl: Connection[Any, Any], what: str, timeout_ms: int = TIMEOUT_MS) -> Any:
    if not ctl.poll(timeout_ms / 1000):
        raise TimeoutError(f"no {what} from the peer within {timeout_ms} ms")
    return ctl.recv()


def measure_throughput(conn: SimpleNamespace, size: int, seconds: float, ctl: Connection[Any, Any],
                       repeats: int = 1) -> Dict[str, Any]:
    """PUSH: a warm-up burst the receiver acks, then `repeats` phases each
    sending for seconds/repeats (or budget.phase_max_msgs), then MARK; a
    phase's clock stops when the receiver acks having received it all. The
    median of the phases' rates. A batch conn sends with send_batch."""
    send, clock = conn.send, time.perf_counter_ns
    msg = b"x" * size
    send_batch = getattr(conn, "send_batch", None)
    per_call = budget.batch_send_count(size) if send_batch else 1  # messages per send call
    msgs = [msg] * per_call
    chunk = max(1, min(100, 1_000_000 // max(size * per_call, 1)))  # send calls between clock reads
    warm = budget.throughput_warmup(size)
    for _ in range(warm):
        send(msg)
    send(MARK)
    if await_ack(ctl, "warm-up ack")[0] != warm:
        raise RuntimeError("the receiver lost warm-up messages")
    most = budget.phase_max_msgs(size)
    per_phase = int(seconds / repeats * 1e9)
    rates: List[float] = []
    total, elapsed_s = 0, 0.0
    for _ in range(repeats):
        n, t0 = 0, clock()
        stop = t0 + per_phase
        while n < most:
            if send_batch is None:  # the plain loop: nothing but send() per message
                for _ in range(chunk):
                    send(msg)
            else:
                for _ in range(chunk):
                    send_batch(msgs)
            n += chunk * per_call
            if clock() > stop:
                break
        send(MARK)
        count, nbytes = await_ack(ctl, "phase ack")
        elapsed = (clock() - t0) / 1e9
        if count != n or nbytes != n * size:
            raise RuntimeError(f"sent {n} messages, the receiver counted {count} ({nbytes} bytes)")
        rates.append(n / elapsed)
        total += n
        elapsed_s += elapsed
    rate = statistics.median(rates)
    return {"msgs_per_s": rate, "MB_per_s": rate * size / 1e6, "thr_msgs": total,
            "thr_seconds": elapsed_s, "thr_repeats_msgs_per_s": rates}
