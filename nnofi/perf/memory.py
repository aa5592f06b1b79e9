"""Issue 7's memory check: send one big numpy array (1 GiB by default)
over ofi+shm and see how much each side's peak RSS grows beyond the array.

Two spawned processes per run. The sender makes the array (every page
touched), sends it with Push.send, and waits for the receiver's ack; the
receiver takes it into an array of its own. Each side reads its RSS before
it makes its array and its peak RSS (ru_maxrss, VmHWM) at the end: growth
beyond the array = peak - before - array size. A copy of the message
anywhere on a side shows as about one more array.

Three runs (VARIANTS): a writable array (what np.full gives; send()
copies a buffer it may not keep) received with recv_into(array) (the
body is read straight into the array); a
read-only one (flags.writeable = False: send() may keep a reference
instead of copying) received with recv_msg() (the message is the array's
memory, np.frombuffer(msg)); and the writable array lent with
send(copy=False) (the caller leaves it alone until the Tracker says done),
received with recv_msg()."""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mpc
import resource
import time
from multiprocessing.connection import Connection
from typing import Any, Dict, List

from .transports import ofi_host

LIMIT_BYTES = 64 << 20  # issue 7: less than 64 MiB beyond the array
TIMEOUT_MS = 60_000  # one transfer of the whole array, on a busy machine too
PATTERN = 7  # every byte of the array; the receiver checks one per page


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# (how the sender sends, how the receiver receives, the sides that copy by
# design), one run each. The first run's sender copies: send() copies a
# writable buffer it may not keep (pyzmq's copy=True does too). That side
# is the reference the zero-copy sends are read against, not a floor; its
# receiver's recv_into() reads the body straight into the array, and is.
VARIANTS = (("send(writable array)", "recv_into(array)", ("sender",)), ("send(read-only array)", "recv_msg()", ()),
            ("send(writable array, copy=False)", "recv_msg()", ()))


def _receiver(transport: str, size: int, how: str, ctl: Connection[Any, Any], report: Connection[Any, Any]) -> None:
    import numpy as np

    import nnofi

    pull = None
    try:
        with nnofi.Pull(recv_timeout=TIMEOUT_MS, recv_max_size=-1) as pull:
            ctl.send(pull.bind(_url(transport)).url)
            before = _rss()
            if how == "recv_into(array)":
                array = np.empty(size, dtype=np.uint8)
                got = pull.recv_into(array)
            else:
                msg = pull.recv_msg()  # kept alive until the peak is read
                # through a memoryview (no copy): numpy's stubs take a Message
                # (the buffer protocol) as a buffer only from Python 3.12 on
                array = np.frombuffer(memoryview(msg), dtype=np.uint8)
                got = array.size
            if got != size:
                raise RuntimeError(f"received {got} bytes, expected {size}")
            if not (array[::4096] == PATTERN).all():
                raise RuntimeError("the array arrived with other bytes than were sent")
            ctl.send("got it")
            report.send(("receiver", _peak_rss() - before))
    except BaseException as exc:  # noqa: B036 - any failure is the check's result
        report.send(("error", f"receiver: {type(exc).__name__}: {exc}{_moved(pull)}"))


def _sender(size: int, how: str, ctl: Connection[Any, Any], report: Connection[Any, Any]) -> None:
    import numpy as np

    import nnofi

    sock = None
    try:
        url = ctl.recv()
        with nnofi.Push(send_timeout=TIMEOUT_MS, connect=url) as push:
            sock = push
            before = _rss()
            array = np.full(size, PATTERN, dtype=np.uint8)
            if how == "send(read-only array)":
                array.flags.writeable = False
            t0 = time.perf_counter()
            if how == "send(writable array, copy=False)":
                tracker = push.send(array, copy=False)
            else:
                push.send(array)
            if not ctl.poll(TIMEOUT_MS / 1000):
                raise TimeoutError("no ack from the receiver")
            ctl.recv()
            if how == "send(writable array, copy=False)" and not tracker.wait(TIMEOUT_MS / 1000):
                raise TimeoutError("the lent array was never released")
            report.send(("seconds", time.perf_counter() - t0))
            report.send(("sender", _peak_rss() - before))
    except BaseException as exc:  # noqa: B036
        report.send(("error", f"sender: {type(exc).__name__}: {exc}{_moved(sock)}"))


def _moved(sock: Any) -> str:
    """The socket's counters that moved, to tell where a failed run stopped."""
    if sock is None:
        return ""
    return " (stats: " + ", ".join(f"{k} {v}" for k, v in sock.stats.items() if v) + ")"


def _url(transport: str) -> str:
    provider = transport.split("+", 1)[1]
    return f"ofi://{ofi_host(provider)}:0@{provider}"


def measure_rss(size: int = 1 << 30, transport: str = "ofi+shm") -> Dict[str, Any]:
    """{"size", "transport", "limit", "runs": [...]}: per run (VARIANTS)
    the sender's and the receiver's call, "copies" (the sides that copy by
    design, not held to the limit), their peak RSS growth beyond the
    array in bytes ("sender_growth_beyond", "receiver_growth_beyond"),
    "seconds" from send to the receiver's ack, or "error" saying why."""
    runs: List[Dict[str, Any]] = []
    for send_how, recv_how, copies in VARIANTS:
        run: Dict[str, Any] = {"sender_call": send_how, "receiver_call": recv_how, "copies": list(copies)}
        run.update(_run(size, transport, send_how, recv_how))
        runs.append(run)
    return {"size": size, "transport": transport, "limit": LIMIT_BYTES, "runs": runs}


def _run(size: int, transport: str, send_how: str, recv_how: str) -> Dict[str, Any]:
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    report_r, report_w = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=_receiver, args=(transport, size, recv_how, a, report_w), name="perf-rss-receiver"),
             ctx.Process(target=_sender, args=(size, send_how, b, report_w), name="perf-rss-sender")]
    for p in procs:
        p.start()
    report_w.close()
    got: Dict[str, Any] = {}
    deadline = time.monotonic() + 30 + 2 * TIMEOUT_MS / 1000
    try:
        while len(got) < 3 and "error" not in got:
            if not mpc.wait([report_r], deadline - time.monotonic()):
                got["error"] = "timed out (killed)"
                break
            what, value = report_r.recv()
            got[what] = value
    except EOFError:
        got.setdefault("error", "a side exited without a result")
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        report_r.close()
    if "error" in got:
        return {"error": got["error"]}
    return {"sender_growth_beyond": got["sender"] - size, "receiver_growth_beyond": got["receiver"] - size,
            "seconds": got["seconds"], "GB_per_s": size / got["seconds"] / 1e9}
