"""One measurement of a Python library ("a cell": one library, transport,
size, latency or throughput) in two fresh processes.

Both are started with the 'spawn' method: a server (REP or PULL) that
binds, and a client (REQ or PUSH) that connects and times. A
multiprocessing Pipe carries control between them (the bound URL, acks);
a second one carries the result (or the error) to the parent. inproc cells
run the server as a thread in the client's process (inproc cannot cross
processes). The parent waits with a deadline and kills both processes when
it passes, so the bench never hangs."""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mpc
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Dict, Optional, Tuple

from . import budget
from .adapters import ADAPTERS
from .measure import await_ack, echo_server, measure_latency, measure_throughput, sink_server
from .transports import ofi_host, ofi_provider, scheme

KINDS = {"latency": "reqrep", "throughput": "pipeline"}


def address(lib: str, transport: str, tmp: str, tag: str) -> Optional[str]:
    """A fresh address for one cell, or None if `lib` cannot use `transport`."""
    s = scheme(transport)
    if s not in ADAPTERS[lib].transports:
        return None
    if s == "tcp":
        return "tcp://127.0.0.1:0"  # the server's bind picks a free port
    if s == "ipc":
        return f"ipc://{tmp}/{lib}-{tag}.ipc"
    if s == "inproc":
        return f"inproc://nnofi-perf-{lib}-{tag}"
    provider = ofi_provider(transport)
    return f"ofi://{ofi_host(provider)}:0@{provider}"


def _server_side(lib: str, what: str, url: str, size: int, opts: Dict[str, Any],
                 ctl: Connection[Any, Any], report: Connection[Any, Any]) -> None:
    """Bind, tell the client where, serve; report errors to the parent."""
    conn = None
    try:
        conn = ADAPTERS[lib]().make_pair(KINDS[what], "server", url)
        ctl.send(conn.url)
        if what == "latency":
            echo_server(conn, size)
            await_ack(ctl, "goodbye")  # close only once the client has the last reply
        else:
            sink_server(conn, size, ctl, opts["repeats"])
    except BaseException as exc:  # noqa: B036 - any failure is the cell's result
        report.send(("error", f"server: {type(exc).__name__}: {exc}"))
    finally:
        if conn is not None:
            conn.close()


def _client_side(lib: str, what: str, transport: str, url: str, size: int, opts: Dict[str, Any],
                 ctl: Connection[Any, Any], server_ctl: Connection[Any, Any],
                 report: Connection[Any, Any]) -> None:
    """Connect to the server's URL, measure, report the result to the parent.
    inproc: the server runs here as a thread (server_ctl is its end)."""
    conn = None
    try:
        adapter = ADAPTERS[lib]()
        if transport == "inproc":
            threading.Thread(target=_server_side, args=(lib, what, url, size, opts, server_ctl, report),
                             daemon=True).start()
        real = await_ack(ctl, "bound URL", 20000)  # the server's process may still be starting
        conn = adapter.make_pair(KINDS[what], "client", real)
        if what == "latency":
            result = measure_latency(conn, size, opts["repeats"], opts["seconds"])
            ctl.send("bye")
        else:
            result = measure_throughput(conn, size, opts["seconds"], ctl, opts["repeats"])
        result["version"] = adapter.version()
        report.send(("ok", result))
    except BaseException as exc:  # noqa: B036
        report.send(("error", f"client: {type(exc).__name__}: {exc}"))
    finally:
        if conn is not None:
            conn.close()


def run_cell(lib: str, what: str, transport: str, size: int, tmp: str, opts: Dict[str, Any]) -> Dict[str, Any]:
    """One measurement in two processes, bounded by budget.cell_timeout.
    opts: {"repeats": int, "seconds": float}. The client's result, or
    {"error": why}."""
    ctx = mp.get_context("spawn")
    url = address(lib, transport, tmp, f"{what}-{size}")
    if url is None:
        return {"error": f"{lib} has no {transport}"}
    client_ctl, server_ctl = ctx.Pipe()
    report_r, report_w = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=_client_side, name=f"perf-{lib}-client",
                         args=(lib, what, transport, url, size, opts, client_ctl, server_ctl, report_w))]
    if transport != "inproc":
        procs.append(ctx.Process(target=_server_side, name=f"perf-{lib}-server",
                                 args=(lib, what, url, size, opts, server_ctl, report_w)))
    for p in procs:
        p.start()
    report_w.close()
    timeout = budget.cell_timeout(opts["seconds"])
    deadline = time.monotonic() + timeout
    outcome: Tuple[str, Any] = ("error", f"timed out after {timeout:g} s (killed)")
    try:
        while time.monotonic() < deadline:
            ready = mpc.wait([report_r, procs[0].sentinel], deadline - time.monotonic())
            if report_r in ready:
                outcome = report_r.recv()
                break
            if procs[0].sentinel in ready and not report_r.poll(0.5):
                outcome = ("error", f"client process died (exit code {procs[0].exitcode})")
                break
    except EOFError:
        outcome = ("error", "both processes exited without a result")
    finally:
        for p in procs:
            p.join(3 if outcome[0] == "ok" else 0.5)
            if p.is_alive():
                p.kill()
                p.join()
        report_r.close()
    if outcome[0] == "ok":
        result: Dict[str, Any] = outcome[1]
        return result
    return {"error": outcome[1]}
