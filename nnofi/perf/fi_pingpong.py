"""The physical reference for ofi+PROVIDER rows: libfabric's own
fi_pingpong (Debian's libfabric-bin), "library" fi_pingpong in the table.

A server and a client process per run (`-p PROVIDER -e msg`, for shm
`-e rdm`), pinned to two CPUs (both busy-poll), the control port picked
free for each run, every run killed at its deadline; a probe run, then
`repeats` runs of about seconds/repeats each. Latency is the median round
trip (twice its usec/xfer, see parse_fi_pingpong); MB/s is its ping-pong
bandwidth, one message in flight, not a stream like PUSH/PULL."""
from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import statistics
import subprocess
import time
from typing import Any, Dict, List, Optional

from . import budget
from .transports import ofi_device, ofi_provider

FI_PINGPONG = "fi_pingpong"
FI_PINGPONG_EP = {"shm": "rdm"}  # endpoint type per provider (shm has no FI_EP_MSG); others: msg
FI_PINGPONG_RUN_TIMEOUT_S = 30.0  # one server+client run (the cell as a whole: budget.cell_timeout)
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
        port: int = s.getsockname()[1]
        return port


def _why(side: str, proc: subprocess.Popen[str], out: str, err: str) -> str:
    """One line saying why a fi_pingpong process failed: its last words."""
    said = [line.strip() for line in (err or "").splitlines() + (out or "").splitlines() if line.strip()]
    return f"{side} exit {proc.returncode}: {said[-1] if said else '(no output)'}"


def _kill(proc: Optional[subprocess.Popen[str]]) -> None:
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
        return [self.taskset, "-c", str(self.cpus[side])] if self.cpus and self.taskset else []

    def command(self, provider: str, size: int, iters: int) -> List[str]:
        argv = [self.exe, "-p", provider, "-e", FI_PINGPONG_EP.get(provider, "msg"),
                "-S", str(size), "-I", str(iters)]
        device = ofi_device("verbs") if provider == "verbs" else None
        if device:  # the RDMA device, not the first of any kind
            argv += ["-d", device[0]]
        return argv

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
        deadline = time.monotonic() + budget.cell_timeout(opts["seconds"])
        probe_iters, lo, hi = budget.fi_pingpong_iterations(size)
        probe = self.run_once(provider, size, probe_iters, deadline)
        repeats, seconds = opts["repeats"], opts["seconds"]
        iters = max(lo, min(hi, int(seconds / repeats * 1e6 / probe["rtt_us"])))
        enough = time.monotonic() + 3 * (seconds + 0.5 * repeats)  # 0.5 s: a run's start-up, about
        runs: List[Dict[str, Any]] = []
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


def _spawn(argv: List[str]) -> subprocess.Popen[str]:
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
