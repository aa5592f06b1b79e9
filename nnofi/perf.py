"""`make bench` / `nnofi perf`: REQ/REP round-trip latency and PUSH/PULL
throughput of nnofi beside pyzmq and pynng, measured in one run on one
machine.

    python -m nnofi.perf [--sizes 64,1MiB] [--transports tcp,ipc,inproc,ofi+tcp,ofi+shm]
                         [--libs pyzmq,pynng,nnofi,fi_pingpong] [--repeats 5] [--seconds 1.5]
                         [--json out.json]

How each cell is measured (one library, transport and message size):

- Every measurement runs as two fresh processes started with the 'spawn'
  method: a server (REP or PULL) that binds, and a client (REQ or PUSH)
  that connects and times. A third channel, a multiprocessing Pipe, carries
  control between them (the bound URL, acks). inproc cells run the server
  as a thread in the client's process (inproc cannot cross processes).
- Latency: warm up, then `--repeats` repeats of up to ROUNDS round trips or
  --seconds/repeats seconds, whichever comes first; the cell's latency is the
  median of the repeats' mean round trips, in microseconds.
- Throughput: warm up (a burst the receiver acknowledges), then the client
  sends for up to --seconds (or THR_MAX_MSGS messages), then a marker; the
  receiver counts messages and bytes and acks the marker on the control pipe.
  The clock runs from the first send to that ack, so it times delivery, not
  queueing. The receiver's count must equal what was sent.
- Every socket has receive and send timeouts; the parent waits for each cell
  with a deadline and kills both processes when it passes, so the bench
  never hangs. A library that is not installed gets a row saying so.

The physical reference for ofi+PROVIDER rows is libfabric's own fi_pingpong
(Debian's libfabric-bin), "library" fi_pingpong in the table: a server and a
client process per run (`-p PROVIDER -e msg`, for shm `-e rdm`), pinned to
two CPUs (both busy-poll), the control port picked free for each run, every
run killed at its deadline; a probe run, then --repeats runs of about
--seconds/repeats each. Latency is the median round trip (twice its
usec/xfer, see parse_fi_pingpong); MB/s is its ping-pong bandwidth, one
message in flight, not a stream like PUSH/PULL. After the table come the
ratios issue 7 asks for (nnofi's ofi round trip against fi_pingpong over the
same provider and against pyzmq over tcp), with their floors. nnofi's ofi://
has no shm yet: its ofi+shm row shows the error its bind gives.

Each library sends bytes and receives bytes with its defaults (pyzmq: copy=True).
MB/s counts 10**6 bytes of payload per second.
"""
import argparse
import functools
import importlib.metadata
import importlib.util
import json
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

TIMEOUT_MS = 5000  # every blocking send/recv of every library
CELL_TIMEOUT_S = 45.0  # whole cell (both processes, spawn included)
WARMUP_ROUNDS = 200  # latency warm-up round trips (or WARMUP_S)
WARMUP_S = 0.3
ROUNDS = 5000  # latency: round trips per repeat at most
THR_WARMUP_BYTES = 16 << 20  # throughput warm-up burst (at most 1000 messages)
THR_MAX_MSGS = 3_000_000
MARK = b"!mark"  # throughput phase marker (payloads are b"x" * size)
STOP = b"!stop"  # ends the latency echo


# ---- one adapter per library ----------------------------------------------
#
# make_pair(kind, role, url) -> an object with send(bytes), recv() -> bytes,
# close() and url (the real address, e.g. the port a tcp://...:0 bind got).
# kind: "reqrep" or "pipeline"; role: "server" (REP / PULL, binds) or
# "client" (REQ / PUSH, connects). send and recv are the library's own bound
# methods, so the adapter adds nothing to the hot path.

SOCKET_TYPES = {("reqrep", "client"): "req", ("reqrep", "server"): "rep",
                ("pipeline", "client"): "push", ("pipeline", "server"): "pull"}


def _conn(sock, url: str, close=None) -> SimpleNamespace:
    return SimpleNamespace(send=sock.send, recv=sock.recv, close=close or sock.close, url=url)


class NnofiAdapter:
    name, module, dist = "nnofi", "nnofi", "nnofi"
    transports = ("tcp", "ipc", "inproc", "ofi")

    def __init__(self) -> None:
        import nnofi

        self.nnofi = nnofi

    def version(self) -> str:
        return self.nnofi.__version__

    def make_pair(self, kind: str, role: str, url: str) -> SimpleNamespace:
        cls = {"req": self.nnofi.Req, "rep": self.nnofi.Rep,
               "push": self.nnofi.Push, "pull": self.nnofi.Pull}[SOCKET_TYPES[kind, role]]
        sock = cls(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS, recv_max_size=-1)
        real = sock.bind(url).url if role == "server" else sock.connect(url).url
        return _conn(sock, real)


class PyzmqAdapter:
    name, module, dist = "pyzmq", "zmq", "pyzmq"
    transports = ("tcp", "ipc", "inproc")

    def __init__(self) -> None:
        import zmq

        self.zmq = zmq
        self.ctx = zmq.Context.instance()  # one per process: inproc needs it shared

    def version(self) -> str:
        return f"{self.zmq.__version__} (libzmq {self.zmq.zmq_version()})"

    def make_pair(self, kind: str, role: str, url: str) -> SimpleNamespace:
        z = self.zmq
        sock = self.ctx.socket(getattr(z, SOCKET_TYPES[kind, role].upper()))
        sock.setsockopt(z.RCVTIMEO, TIMEOUT_MS)
        sock.setsockopt(z.SNDTIMEO, TIMEOUT_MS)
        sock.setsockopt(z.LINGER, 1000)
        if role == "client":
            sock.connect(url)
            return _conn(sock, url)
        if url.startswith("tcp://") and url.endswith(":0"):
            url = url[:-1] + "*"  # zmq's spelling of "any free port"
        sock.bind(url)
        return _conn(sock, sock.getsockopt_string(z.LAST_ENDPOINT))


class PynngAdapter:
    name, module, dist = "pynng", "pynng", "pynng"
    transports = ("tcp", "ipc", "inproc")

    def __init__(self) -> None:
        import pynng

        self.pynng = pynng

    def version(self) -> str:
        return importlib.metadata.version("pynng")

    def make_pair(self, kind: str, role: str, url: str) -> SimpleNamespace:
        p = self.pynng
        cls = {"req": p.Req0, "rep": p.Rep0, "push": p.Push0, "pull": p.Pull0}[SOCKET_TYPES[kind, role]]
        sock = cls(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)
        sock.recv_max_size = 0  # unlimited, like the others (nng's default is 1 MiB)
        if role == "client":
            sock.dial(url, block=False)  # asynchronous, like the others' connect
            return _conn(sock, url)
        listener = sock.listen(url)
        if url.startswith("tcp://") and url.endswith(":0"):
            url = "tcp://" + str(listener.local_address)
        return _conn(sock, url)


ADAPTERS = {a.name: a for a in (NnofiAdapter, PyzmqAdapter, PynngAdapter)}


# ---- latency: REQ/REP round trips -----------------------------------------


def echo_server(conn, size: int) -> None:
    """REP: send every request back until STOP."""
    recv, send, n = conn.recv, conn.send, len(STOP)
    while True:
        m = recv()
        send(m)
        if len(m) == n and m == STOP:
            return


def measure_latency(conn, size: int, repeats: int, seconds: float) -> Dict[str, Any]:
    """REQ: median over repeats of the mean round trip, in microseconds."""
    send, recv, clock = conn.send, conn.recv, time.perf_counter_ns
    msg = b"x" * size
    until = clock() + int(WARMUP_S * 1e9)
    for i in range(WARMUP_ROUNDS):
        send(msg)
        if len(recv()) != size:
            raise RuntimeError("the echo came back with a different size")
        if i >= 10 and clock() > until:
            break
    chunk = max(1, min(20, 2_000_000 // max(size, 1)))  # round trips between clock reads
    budget = int(seconds / repeats * 1e9)
    means = []
    for _ in range(repeats):
        n, t0 = 0, clock()
        stop = t0 + budget
        while n < ROUNDS:
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


def sink_server(conn, size: int, ctl) -> None:
    """PULL: count messages and bytes; at each MARK report them on ctl.
    Two phases: warm-up, then the measured run."""
    recv, n_mark = conn.recv, len(MARK)
    for _ in range(2):
        count = nbytes = 0
        while True:
            m = recv()
            k = len(m)
            if k == n_mark and m == MARK:
                break
            count += 1
            nbytes += k
        ctl.send((count, nbytes))


def _await(ctl, what: str, timeout_ms: int = TIMEOUT_MS):
    if not ctl.poll(timeout_ms / 1000):
        raise TimeoutError(f"no {what} from the peer within {timeout_ms} ms")
    return ctl.recv()


def measure_throughput(conn, size: int, seconds: float, ctl) -> Dict[str, Any]:
    """PUSH: send for `seconds` (or THR_MAX_MSGS), then MARK; the clock stops
    when the receiver acks having received them all."""
    send, clock = conn.send, time.perf_counter_ns
    msg = b"x" * size
    warm = max(10, min(1000, THR_WARMUP_BYTES // max(size, 1)))
    for _ in range(warm):
        send(msg)
    send(MARK)
    if _await(ctl, "warm-up ack")[0] != warm:
        raise RuntimeError("the receiver lost warm-up messages")
    chunk = max(1, min(100, 1_000_000 // max(size, 1)))  # sends between clock reads
    n, t0 = 0, clock()
    stop = t0 + int(seconds * 1e9)
    while n < THR_MAX_MSGS:
        for _ in range(chunk):
            send(msg)
        n += chunk
        if clock() > stop:
            break
    send(MARK)
    count, nbytes = _await(ctl, "final ack")
    elapsed = (clock() - t0) / 1e9
    if count != n or nbytes != n * size:
        raise RuntimeError(f"sent {n} messages, the receiver counted {count} ({nbytes} bytes)")
    return {"msgs_per_s": n / elapsed, "MB_per_s": n * size / elapsed / 1e6,
            "thr_msgs": n, "thr_seconds": elapsed}


# ---- the two sides of a cell (each in its own process) --------------------

KINDS = {"latency": "reqrep", "throughput": "pipeline"}


def _server_side(lib: str, what: str, url: str, size: int, ctl, report) -> None:
    """Bind, tell the client where, serve; report errors to the parent."""
    conn = None
    try:
        conn = ADAPTERS[lib]().make_pair(KINDS[what], "server", url)
        ctl.send(conn.url)
        if what == "latency":
            echo_server(conn, size)
            _await(ctl, "goodbye")  # close only once the client has the last reply
        else:
            sink_server(conn, size, ctl)
    except BaseException as exc:  # noqa: B036 - any failure is the cell's result
        report.send(("error", f"server: {type(exc).__name__}: {exc}"))
    finally:
        if conn is not None:
            conn.close()


def _client_side(lib: str, what: str, transport: str, url: str, size: int, opts: Dict[str, Any],
                 ctl, server_ctl, report) -> None:
    """Connect to the server's URL, measure, report the result to the parent.
    inproc: the server runs here as a thread (server_ctl is its end)."""
    conn = None
    try:
        adapter = ADAPTERS[lib]()
        if transport == "inproc":
            threading.Thread(target=_server_side, args=(lib, what, url, size, server_ctl, report),
                             daemon=True).start()
        real = _await(ctl, "bound URL", 20000)  # the server's process may still be starting
        conn = adapter.make_pair(KINDS[what], "client", real)
        if what == "latency":
            result = measure_latency(conn, size, opts["repeats"], opts["seconds"])
            ctl.send("bye")
        else:
            result = measure_throughput(conn, size, opts["seconds"], ctl)
        result["version"] = adapter.version()
        report.send(("ok", result))
    except BaseException as exc:  # noqa: B036
        report.send(("error", f"client: {type(exc).__name__}: {exc}"))
    finally:
        if conn is not None:
            conn.close()


def run_cell(lib: str, what: str, transport: str, size: int, tmp: str, opts: Dict[str, Any]) -> Dict[str, Any]:
    """One measurement in two processes, bounded by CELL_TIMEOUT_S."""
    ctx = mp.get_context("spawn")
    url = address(lib, transport, tmp, f"{what}-{size}")
    client_ctl, server_ctl = ctx.Pipe()
    report_r, report_w = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=_client_side, name=f"perf-{lib}-client",
                         args=(lib, what, transport, url, size, opts, client_ctl, server_ctl, report_w))]
    if transport != "inproc":
        procs.append(ctx.Process(target=_server_side, name=f"perf-{lib}-server",
                                 args=(lib, what, url, size, server_ctl, report_w)))
    for p in procs:
        p.start()
    report_w.close()
    deadline = time.monotonic() + CELL_TIMEOUT_S
    outcome = ("error", f"timed out after {CELL_TIMEOUT_S:g} s (killed)")
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
        return outcome[1]
    return {"error": outcome[1]}


# ---- the physical reference: libfabric's fi_pingpong ------------------------

FI_PINGPONG = "fi_pingpong"
FI_PINGPONG_EP = {"shm": "rdm"}  # endpoint type per provider (shm has no FI_EP_MSG); others: msg
FI_PINGPONG_RUN_TIMEOUT_S = 30.0  # one server+client run (the cell as a whole: CELL_TIMEOUT_S)
FI_PINGPONG_ITERS = (20, 1_000_000)  # bounds of the iterations of one measured run
# fi_pingpong prints its result as a header and one line, e.g.
#   bytes   #sent   #ack     total       time     MB/sec    usec/xfer   Mxfers/sec
#   64      1k      =1k      125k        0.01s      9.43       6.78       0.15
# (libfabric 1.17; some versions lead with a "name" column, so columns are
# matched by name).
_FI_PINGPONG_HEADER = re.compile(r"^\s*(?:name\s+)?bytes\s+#sent\s+#ack\s+total\s+time\s+MB/sec\s+usec/xfer\s+Mxfers/sec\s*$")


class FiPingpongError(RuntimeError):
    pass


def parse_fi_pingpong(text: str) -> Dict[str, Any]:
    """The result line of fi_pingpong's output as numbers:
    {"seconds", "MB_per_s", "usec_per_xfer", "rtt_us"}.

    usec/xfer is ONE-WAY: util/pingpong.c calls show_perf(..., xfers_per_iter=2)
    and prints elapsed / iterations / 2, i.e. one iteration (ping + pong) counts
    as two transfers; the man page: "average time for transferring a message
    outbound (ping or pong)". So the round trip, the quantity our latency_us is
    (one REQ/REP send + recv), is 2 * usec/xfer. MB/sec is the bytes of both
    directions over the elapsed microseconds (10**6 B/s, like our MB_per_s),
    which equals size / usec_per_xfer: the bandwidth of one message in flight.
    Raises FiPingpongError if there is no result line or the peer did not
    acknowledge every ping."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not _FI_PINGPONG_HEADER.match(line):
            continue
        names = line.split()
        for row in lines[i + 1:]:
            values = row.split()
            if not values:
                continue
            if len(values) != len(names):
                raise FiPingpongError(f"fi_pingpong result line does not match its header: {row.strip()!r}")
            f = dict(zip(names, values))
            if not f["#ack"].startswith("="):
                raise FiPingpongError(f"fi_pingpong: {f['#sent']} sent, acked {f['#ack']} (not all pongs came back)")
            try:
                usec = float(f["usec/xfer"])
                result = {"seconds": float(f["time"].rstrip("s")), "MB_per_s": float(f["MB/sec"]),
                          "usec_per_xfer": usec, "rtt_us": 2 * usec}
            except ValueError:
                raise FiPingpongError(f"fi_pingpong result line unreadable: {row.strip()!r}") from None
            if usec <= 0:
                raise FiPingpongError(f"fi_pingpong reported {usec} usec/xfer (too few iterations?)")
            return result
    raise FiPingpongError("fi_pingpong printed no result line")


def _free_port() -> int:
    """A TCP port free right now on every address (the fi_pingpong server binds INADDR_ANY)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _why(side: str, proc: "subprocess.Popen", out: str, err: str) -> str:
    """One line saying why a fi_pingpong process failed: its last words."""
    said = [line.strip() for line in (err or "").splitlines() + (out or "").splitlines() if line.strip()]
    return f"{side} exit {proc.returncode}: {said[-1] if said else '(no output)'}"


def _kill(proc: Optional["subprocess.Popen"]) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        try:
            proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass


class FiPingpong:
    """Runs libfabric's fi_pingpong as a server and a client process on
    127.0.0.1. The server gets a fresh free control port (-B), the client
    connects to it (-P) from a port the kernel picks, so the two never ask for
    the same port; a server that lost its port to someone else is retried on a
    new one. Every process is killed when its deadline passes.

    Both sides busy-poll their completion queues, so where the machine has two
    CPUs or more the server and the client are pinned to two different ones:
    unpinned on a 2-core machine, the scheduler at times puts both spinners on
    one CPU and a round trip takes a time slice (seen: 64 B over shm, 1000
    iterations, 0.6 us one way pinned, 1.3 to 480 us unpinned, run to run)."""

    def __init__(self, exe: str) -> None:
        self.exe = exe
        self.taskset = shutil.which("taskset")
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.cpus = (cpus[0], cpus[1]) if len(cpus) >= 2 and self.taskset else None  # (server, client)

    def pinned(self, side: int) -> List[str]:
        """`taskset -c CPU` for side 0 (server) or 1 (client): pinned from
        exec on, so every thread libfabric starts is pinned too; taskset execs
        fi_pingpong in its own process, so a kill still reaches it."""
        return [self.taskset, "-c", str(self.cpus[side])] if self.cpus else []

    def command(self, provider: str, size: int, iters: int) -> List[str]:
        return [self.exe, "-p", provider, "-e", FI_PINGPONG_EP.get(provider, "msg"),
                "-S", str(size), "-I", str(iters)]

    def run_once(self, provider: str, size: int, iters: int, deadline: float) -> Dict[str, Any]:
        """One server + client run, both killed at `deadline` or after
        FI_PINGPONG_RUN_TIMEOUT_S, whichever comes first; the client's result."""
        started = time.monotonic()
        deadline = min(deadline, started + FI_PINGPONG_RUN_TIMEOUT_S)
        base = self.command(provider, size, iters)
        why = "?"
        for _ in range(3):  # a new port if another program took ours first
            port = _free_port()
            server = client = None
            try:
                server = _spawn(self.pinned(0) + base + ["-B", str(port)])
                while True:  # again while the server is not listening yet
                    client = _spawn(self.pinned(1) + base + ["-P", str(port), "127.0.0.1"])
                    while True:  # wait for the client, watching the server and the clock
                        try:
                            out, err = client.communicate(timeout=0.2)
                            break
                        except subprocess.TimeoutExpired:
                            if time.monotonic() > deadline:
                                raise FiPingpongError(f"timed out after {time.monotonic() - started:.1f} s "
                                                      f"(both killed): {' '.join(base[1:])}") from None
                            if server.poll():  # the server failed: whatever the client waits for won't come
                                client.kill()
                                out, err = client.communicate()
                                break
                    if client.returncode == 0:
                        return parse_fi_pingpong(out)
                    if "Connection refused" in err and server.poll() is None and time.monotonic() + 0.05 < deadline:
                        time.sleep(0.05)
                        continue
                    break
                why = _why("client", client, out, err)
                try:  # the server's reason, if it has one (it may as well be waiting still)
                    s_out, s_err = server.communicate(timeout=max(0.05, min(2.0, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    continue_with_new_port = False
                else:
                    if server.returncode:
                        why = f"{_why('server', server, s_out, s_err)}; {why}"
                    continue_with_new_port = "in use" in s_err  # EADDRINUSE: the port went to someone else
                if not continue_with_new_port:
                    raise FiPingpongError(why)
            finally:
                _kill(client)
                _kill(server)
        raise FiPingpongError(why)

    def measure(self, transport: str, size: int, opts: Dict[str, Any]) -> Dict[str, Any]:
        """A probe run to learn the round trip, then up to `repeats` runs each
        of about seconds/repeats; the medians of their round trips and MB/s.
        Repeats stop early (at least one done) once the cell has used three
        times its planned time, e.g. when the machine got busy after the probe."""
        provider = ofi_provider(transport)
        deadline = time.monotonic() + CELL_TIMEOUT_S
        probe = self.run_once(provider, size, max(10, min(2000, (256 << 20) // max(size, 1))), deadline)
        repeats, seconds = opts["repeats"], opts["seconds"]
        lo, hi = FI_PINGPONG_ITERS
        iters = max(lo, min(hi, int(seconds / repeats * 1e6 / probe["rtt_us"])))
        enough = time.monotonic() + 3 * (seconds + 0.5 * repeats)  # 0.5 s: a run's start-up, about
        runs = []
        while len(runs) < repeats and (not runs or time.monotonic() < enough):
            runs.append(self.run_once(provider, size, iters, deadline))
        rtts = [r["rtt_us"] for r in runs]
        return {"latency_us": statistics.median(rtts), "latency_repeats_us": rtts,
                "MB_per_s": statistics.median(r["MB_per_s"] for r in runs),
                "msgs_per_s": statistics.median(1e6 / r["usec_per_xfer"] for r in runs),
                "fi_pingpong_runs": len(runs), "fi_pingpong_iterations": iters,
                "fi_pingpong_command": " ".join(self.command(provider, size, iters)),
                "fi_pingpong_cpus": list(self.cpus) if self.cpus else None,
                "version": fi_pingpong_version()}


def _spawn(argv: List[str]) -> "subprocess.Popen":
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@functools.lru_cache(maxsize=None)
def fi_pingpong_version() -> Optional[str]:
    """libfabric's version as fi_info reports it (fi_pingpong has no --version)."""
    exe = shutil.which(FI_PINGPONG)
    if exe is None:
        return None
    fi_info = shutil.which("fi_info")
    if fi_info:
        try:
            out = subprocess.run([fi_info, "--version"], capture_output=True, text=True, timeout=10).stdout
            m = re.search(r"^libfabric:\s*(\S+)", out, re.M)
            if m:
                return f"libfabric {m.group(1)}"
        except (OSError, subprocess.SubprocessError):
            pass
    return "?"


def ofi_provider(transport: str) -> str:
    """ofi+PROVIDER -> PROVIDER (bare ofi: tcp)."""
    return transport.split("+", 1)[1] if "+" in transport else "tcp"


# ---- the run ----------------------------------------------------------------


def address(lib: str, transport: str, tmp: str, tag: str) -> Optional[str]:
    """A fresh address for one cell, or None if `lib` cannot use `transport`."""
    scheme = transport.split("+", 1)[0]
    if lib == FI_PINGPONG:
        return f"fi_pingpong -p {ofi_provider(transport)}" if scheme == "ofi" else None
    if scheme not in ADAPTERS[lib].transports:
        return None
    if scheme == "tcp":
        return "tcp://127.0.0.1:0"  # the server's bind picks a free port
    if scheme == "ipc":
        return f"ipc://{tmp}/{lib}-{tag}.ipc"
    if scheme == "inproc":
        return f"inproc://nnofi-perf-{lib}-{tag}"
    return f"ofi://127.0.0.1:0@{ofi_provider(transport)}"


def installed(lib: str) -> Optional[str]:
    """The library's version if it is installed here, else None (no import)."""
    if lib == FI_PINGPONG:
        return fi_pingpong_version()
    adapter = ADAPTERS[lib]
    if importlib.util.find_spec(adapter.module) is None:
        return None
    try:
        return importlib.metadata.version(adapter.dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine() -> Dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "os": platform.platform(), "python": platform.python_version(),
            "python_executable": sys.executable}


def run(libs: List[str], transports: List[str], sizes: List[int], opts: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnofi-perf-") as tmp:
        for transport in transports:
            for size in sizes:
                for lib in libs:
                    if address(lib, transport, tmp, "x") is None:
                        continue  # e.g. pyzmq has no ofi://
                    row: Dict[str, Any] = {"library": lib, "transport": transport, "size": size}
                    rows.append(row)
                    if installed(lib) is None:
                        row["note"] = ("not installed (Debian: libfabric-bin)" if lib == FI_PINGPONG
                                       else "not installed")
                        continue
                    if lib == FI_PINGPONG:
                        t0 = time.monotonic()
                        try:
                            row.update(FiPingpong(shutil.which(FI_PINGPONG)).measure(transport, size, opts))
                            row["note"] = ("ping-pong, server and client pinned to 2 CPUs; MB/s with 1 message in flight"
                                           if row.get("fi_pingpong_cpus") else "ping-pong; MB/s with 1 message in flight")
                            status = "ok"
                        except (FiPingpongError, OSError) as exc:
                            row["note"] = status = f"fi_pingpong failed: {exc}"
                        print(f"  {lib:11} {transport:8} {human(size):>7} {'pingpong':10} "
                              f"{time.monotonic() - t0:5.1f} s  {status}", file=sys.stderr, flush=True)
                        continue
                    failed: Dict[str, List[str]] = {}  # error -> the measurements that failed with it
                    for what in ("latency", "throughput"):
                        t0 = time.monotonic()
                        result = run_cell(lib, what, transport, size, tmp, opts)
                        status = "ok"
                        if "error" in result:
                            error = result.pop("error")
                            failed.setdefault(error, []).append(what)
                            status = f"{what} failed: {error}"
                        row.update(result)
                        print(f"  {lib:11} {transport:8} {human(size):>7} {what:10} "
                              f"{time.monotonic() - t0:5.1f} s  {short(status)}", file=sys.stderr, flush=True)
                    if failed:
                        row["note"] = "; ".join(f"{', '.join(whats)} failed: {error}" for error, whats in failed.items())
    for row in rows:
        ref = reference(row, rows)
        keys = [("latency_us", "latency_vs_pyzmq")]
        if row["library"] != FI_PINGPONG:  # its MB/s is ping-pong, not a stream: no like-for-like ratio
            keys.append(("msgs_per_s", "throughput_vs_pyzmq"))
        for key, ratio in keys:
            if ref is not None and row.get(key) and ref.get(key):
                row[ratio] = row[key] / ref[key]
    return rows


# References for nnofi's round trip over ofi+PROVIDER: fi_pingpong over the
# same provider, and pyzmq over tcp.
RTT_REFERENCES = ((FI_PINGPONG, None), ("pyzmq", "tcp"))
# Issue 7's floors, for 64 B round trips: at most this many times the
# reference's (other sizes and pairs get the ratio alone).
RTT_FLOORS = {("ofi+tcp", FI_PINGPONG): 1.5, ("ofi+tcp", "pyzmq"): 0.25, ("ofi+shm", FI_PINGPONG): 3.0}
FLOOR_SIZE = 64


def ratios(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """nnofi's ofi round trips against the references, one entry per nnofi
    ofi row and reference that is part of the run; "ratio" None (and "missing"
    saying why) when a side has no number."""
    def find(lib: str, transport: str, size: int) -> Optional[Dict[str, Any]]:
        return next((r for r in rows if r["library"] == lib and r["transport"] == transport
                     and r["size"] == size), None)

    out = []
    for row in rows:
        if row["library"] != "nnofi" or not row["transport"].startswith("ofi"):
            continue
        for ref_lib, ref_transport in RTT_REFERENCES:
            floor = RTT_FLOORS.get((row["transport"], ref_lib)) if row["size"] == FLOOR_SIZE else None
            ref_transport = ref_transport or row["transport"]
            ref = find(ref_lib, ref_transport, row["size"])
            if ref is None:
                continue  # that library or transport is not part of this run
            ref_name = ofi_provider(ref_transport) if ref_transport.startswith("ofi") else ref_transport
            entry: Dict[str, Any] = {
                "name": f"nnofi {row['transport']} {human(row['size'])} rtt / {ref_lib} {ref_name} rtt",
                "nnofi_us": row.get("latency_us"), "reference_us": ref.get("latency_us"),
                "floor": floor, "ratio": None}
            if entry["nnofi_us"] and entry["reference_us"]:
                entry["ratio"] = entry["nnofi_us"] / entry["reference_us"]
                entry["meets_floor"] = None if floor is None else entry["ratio"] <= floor
            else:
                lacking = row if not entry["nnofi_us"] else ref
                entry["missing"] = (f"no {lacking['library']} {lacking['transport']} {human(lacking['size'])} rtt"
                                    + (" (its row says why)" if lacking.get("note") else ""))
            out.append(entry)
    return out


def ratio_lines(entries: List[Dict[str, Any]]) -> str:
    if not entries:
        return ""
    width = max(len(e["name"]) for e in entries)
    lines = ["# ratios (issue 7): nnofi's ofi round trip against fi_pingpong over the same provider "
             "and against pyzmq over tcp; lower is better"]
    for e in entries:
        if e["ratio"] is None:
            lines.append(f"{e['name']:<{width}}  {'-':>7}  {e['missing']}")
        else:
            if e["floor"] is None:
                verdict = "(no floor)"
            else:
                verdict = ("meets" if e["meets_floor"] else "MISSES") + f" the floor <= {e['floor']:g}x"
            lines.append(f"{e['name']:<{width}}  {e['ratio']:6.2f}x  {verdict} "
                         f"({e['nnofi_us']:.1f} / {e['reference_us']:.1f} us)")
    return "\n".join(lines)


def reference(row: Dict[str, Any], rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """pyzmq's row for the same transport and size (ofi rows: pyzmq over tcp)."""
    transport = "tcp" if row["transport"].startswith("ofi") else row["transport"]
    for r in rows:
        if r["library"] == "pyzmq" and r["transport"] == transport and r["size"] == row["size"]:
            return r
    return None


# ---- output -------------------------------------------------------------------


def human(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return f"{size}B"


def parse_size(text: str) -> int:
    t = text.strip().lower().rstrip("b").rstrip("i")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


COLUMNS = (("library", 11, "s"), ("transport", 9, "s"), ("size", 7, "s"), ("latency_us", 10, ".1f"),
           ("msgs_per_s", 11, ".0f"), ("MB_per_s", 9, ".1f"), ("lat_vs_zmq", 10, ".2f"),
           ("thr_vs_zmq", 10, ".2f"))


def table(rows: List[Dict[str, Any]]) -> str:
    lines = ["  ".join(f"{name:<{w}}" if f == "s" else f"{name:>{w}}" for name, w, f in COLUMNS) + "  note"]
    for row in rows:
        values = {**row, "size": human(row["size"]), "lat_vs_zmq": row.get("latency_vs_pyzmq"),
                  "thr_vs_zmq": row.get("throughput_vs_pyzmq")}
        cells = []
        for name, w, f in COLUMNS:
            v = values.get(name)
            if f == "s":
                cells.append(f"{v:<{w}}")
            else:
                cells.append(f"{v:>{w}{f}}" if isinstance(v, (int, float)) else f"{'-':>{w}}")
        lines.append("  ".join(cells) + ("  " + short(row["note"]) if row.get("note") else ""))
    return "\n".join(lines)


def short(note: str, limit: int = 160) -> str:
    """A table-sized note: up to the end of the sentence that says why, or
    `limit` characters (the JSON keeps it whole)."""
    end = note.find(". ", 60)
    if 0 < end < limit:
        return note[:end + 1] + " ..."
    return note if len(note) <= limit else note[:limit - 4] + " ..."


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnofi.perf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,1MiB", help="message sizes, comma-separated: 64,4KiB,1MiB (default 64,1MiB)")
    parser.add_argument("--transports", default="tcp,ipc,inproc,ofi+tcp,ofi+shm",
                        help="tcp, ipc, inproc, ofi+PROVIDER (nnofi and fi_pingpong only) (default %(default)s)")
    parser.add_argument("--libs", default="pyzmq,pynng,nnofi,fi_pingpong",
                        help="fi_pingpong: libfabric's own ping-pong, the reference for ofi rows (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="latency repeats (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="time budget of each latency and each throughput measurement (default %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results and machine info here")
    args = parser.parse_args(argv)
    libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    known = list(ADAPTERS) + [FI_PINGPONG]
    unknown = [lib for lib in libs if lib not in known]
    if unknown:
        parser.error(f"unknown libraries {unknown}; known: {', '.join(known)}")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    opts = {"repeats": max(1, args.repeats), "seconds": args.seconds}

    m = machine()
    m["libraries"] = {lib: installed(lib) or "not installed" for lib in libs}
    started = time.monotonic()
    rows = run(libs, transports, sizes, opts)
    for row in rows:  # the version a measuring process reported is the more precise one
        if row.get("version"):
            m["libraries"][row["library"]] = row["version"]
    m["wall_seconds"] = round(time.monotonic() - started, 1)

    print(f"# {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}")
    print("# " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()))
    print(f"# latency_us: REQ/REP round trip, median of {opts['repeats']} repeats; "
          f"msgs_per_s, MB_per_s (10^6 B): PUSH/PULL for ~{opts['seconds']:g} s, timed to the receiver's ack")
    print("# lat_vs_zmq (lower is better), thr_vs_zmq (higher is better): against pyzmq over the same "
          "transport and size (ofi rows: pyzmq over tcp)")
    if FI_PINGPONG in libs:
        print("# fi_pingpong: libfabric's ping-pong (-e msg; shm: -e rdm), latency_us = 2 x its usec/xfer "
              f"(one-way), median of {opts['repeats']} runs; its MB/s has one message in flight")
    print(table(rows))
    rtt_ratios = ratios(rows)
    if rtt_ratios:
        print(ratio_lines(rtt_ratios))
    print(f"# {m['wall_seconds']} s in all", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "command": " ".join([sys.executable, "-m", "nnofi.perf"] + (argv or sys.argv[1:])),
                       "settings": {"timeout_ms": TIMEOUT_MS, "rounds_max": ROUNDS, **opts},
                       "results": rows, "ratios": rtt_ratios}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
