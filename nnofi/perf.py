"""`make bench` / `nnofi perf`: REQ/REP round-trip latency and PUSH/PULL
throughput of nnofi beside pyzmq and pynng, measured in one run on one
machine, the peer in a second process (inproc: a thread).

    python -m nnofi.perf [--sizes 64,1048576] [--transports tcp,ipc,ofi]
                         [--libs nnofi,pyzmq,pynng] [--json out.json]

Latency is the median over repeats of the mean round trip of a repeat;
throughput is what the receiver measured from its first message to its
last. A library that is not installed gets a row saying so.
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

TIMEOUT_MS = 10000
REPEATS = 5
SEND_SECONDS = 1.0
END = b"end"


# ---- one adapter per library: make(kind, url, bind) -> socket, real url ----


class _Nnofi:
    name = "nnofi"

    def __init__(self) -> None:
        import nnofi

        self.mod = nnofi

    def make(self, kind: str, url: str, bind: bool):
        cls = {"req": self.mod.Req, "rep": self.mod.Rep, "push": self.mod.Push, "pull": self.mod.Pull}[kind]
        sock = cls(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS, recv_max_size=-1)
        real = sock.bind(url).url if bind else (sock.connect(url) and url)
        return sock, real

    def version(self) -> str:
        return self.mod.__version__


class _Pyzmq:
    name = "pyzmq"

    def __init__(self) -> None:
        import zmq

        self.zmq = zmq
        self.ctx = zmq.Context.instance()

    def make(self, kind: str, url: str, bind: bool):
        z = self.zmq
        sock = self.ctx.socket({"req": z.REQ, "rep": z.REP, "push": z.PUSH, "pull": z.PULL}[kind])
        sock.setsockopt(z.RCVTIMEO, TIMEOUT_MS)
        sock.setsockopt(z.SNDTIMEO, TIMEOUT_MS)
        sock.setsockopt(z.LINGER, 2000)
        if not bind:
            sock.connect(url)
            return sock, url
        if url.startswith("tcp://") and url.endswith(":0"):
            port = sock.bind_to_random_port(url[: url.rindex(":")])
            return sock, f"{url[: url.rindex(':')]}:{port}"
        sock.bind(url)
        return sock, url

    def version(self) -> str:
        return self.zmq.__version__


class _Pynng:
    name = "pynng"

    def __init__(self) -> None:
        import pynng

        self.pynng = pynng

    def make(self, kind: str, url: str, bind: bool):
        p = self.pynng
        cls = {"req": p.Req0, "rep": p.Rep0, "push": p.Push0, "pull": p.Pull0}[kind]
        sock = cls(recv_timeout=TIMEOUT_MS, send_timeout=TIMEOUT_MS)
        sock.recv_max_size = 0
        if not bind:
            sock.dial(url, block=True)
            return sock, url
        listener = sock.listen(url)
        if url.startswith("tcp://") and url.endswith(":0"):
            return sock, "tcp://" + str(listener.local_address)
        return sock, url

    def version(self) -> str:
        return getattr(self.pynng, "__version__", "?")


LIBS = {"nnofi": _Nnofi, "pyzmq": _Pyzmq, "pynng": _Pynng}


def _adapter(name: str):
    try:
        return LIBS[name]()
    except ImportError:
        return None


# ---- the far side ---------------------------------------------------------


def _peer(lib: str, mode: str, url: str, size: int, count: int, report) -> None:
    """Run in the peer process (or thread): REP echo, or PULL and report."""
    adapter = _adapter(lib)
    if mode == "latency":
        sock, _ = adapter.make("rep", url, bind=False)
        try:
            for _ in range(count):
                sock.send(sock.recv())
        finally:
            sock.close()
        return
    sock, _ = adapter.make("pull", url, bind=False)
    try:
        sock.recv()  # the sender's go
        first, n = None, 0
        while sock.recv() != END:
            n += 1
            if first is None:
                first = time.perf_counter()
        report.send((n, time.perf_counter() - first if first else 0.0))
    finally:
        sock.close()


def _start_peer(transport: str, args: tuple):
    if transport == "inproc":
        import threading

        t = threading.Thread(target=_peer, args=args, daemon=True)
        t.start()
        return t
    p = mp.get_context("spawn").Process(target=_peer, args=args, daemon=True)
    p.start()
    return p


def _stop_peer(peer) -> None:
    peer.join(30)
    if hasattr(peer, "kill") and peer.is_alive():
        peer.kill()


# ---- measurements ---------------------------------------------------------


def _url(lib: str, transport: str, tmp: str, tag: str) -> Optional[str]:
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    if transport == "ipc":
        return f"ipc://{tmp}/{lib}-{tag}.ipc"
    if transport == "inproc":
        return f"inproc://perf-{lib}-{tag}" if lib != "pynng" else None
    if transport.startswith("ofi"):
        provider = transport.split("+", 1)[1] if "+" in transport else "tcp"
        return f"ofi://127.0.0.1:0@{provider}" if lib == "nnofi" else None
    return None


def _rounds(size: int) -> int:
    return max(20, min(2000, int(50_000_000 / max(size, 1) / REPEATS)))


def latency(adapter, transport: str, size: int, tmp: str) -> Optional[float]:
    """Median round trip in microseconds."""
    url = _url(adapter.name, transport, tmp, f"lat{size}")
    if url is None:
        return None
    rounds, warmup = _rounds(size), 50
    sock, real = adapter.make("req", url, bind=True)
    peer = _start_peer(transport, (adapter.name, "latency", real, size, warmup + rounds * REPEATS, None))
    msg = b"x" * size
    try:
        for _ in range(warmup):
            sock.send(msg)
            sock.recv()
        means = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            for _ in range(rounds):
                sock.send(msg)
                sock.recv()
            means.append((time.perf_counter() - t0) / rounds * 1e6)
        return statistics.median(means)
    finally:
        _stop_peer(peer)
        sock.close()


def throughput(adapter, transport: str, size: int, tmp: str) -> Optional[float]:
    """Messages per second, as the receiver saw them arrive; the sender
    sends for SEND_SECONDS, then an end marker."""
    url = _url(adapter.name, transport, tmp, f"thr{size}")
    if url is None:
        return None
    sock, real = adapter.make("push", url, bind=True)
    mine, theirs = mp.Pipe()
    peer = _start_peer(transport, (adapter.name, "throughput", real, size, 0, theirs))
    msg = b"x" * size
    try:
        sock.send(b"go")
        until = time.perf_counter() + SEND_SECONDS
        while time.perf_counter() < until:
            for _ in range(100):
                sock.send(msg)
        sock.send(END)
        if not mine.poll(TIMEOUT_MS / 1000):
            raise TimeoutError("receiver did not report")
        count, elapsed = mine.recv()
        return (count - 1) / elapsed if elapsed > 0 and count > 1 else None
    finally:
        _stop_peer(peer)
        sock.close()


# ---- the run ----------------------------------------------------------------


def machine() -> Dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}


def run(libs: List[str], transports: List[str], sizes: List[int]) -> List[Dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnofi-perf-") as tmp:
        for transport in transports:
            for size in sizes:
                for lib in libs:
                    adapter = _adapter(lib)
                    row: Dict[str, Any] = {"library": lib, "transport": transport, "size": size}
                    if adapter is None:
                        row["note"] = "not installed"
                    elif _url(lib, transport, tmp, "x") is None:
                        continue  # e.g. pyzmq has no ofi://
                    else:
                        row["version"] = adapter.version()
                        try:
                            row["latency_us"] = latency(adapter, transport, size, tmp)
                            mps = throughput(adapter, transport, size, tmp)
                            row["msgs_per_s"] = mps
                            row["mb_per_s"] = mps * size / 1e6 if mps else None
                        except Exception as exc:  # a failing peer is a row, not a crash
                            row["note"] = f"failed: {type(exc).__name__}: {exc}"
                    rows.append(row)
                    print(f"  measured {lib} {transport} {size} B", file=sys.stderr, flush=True)
    return rows


def _reference(row: Dict[str, Any], rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    for r in rows:
        if r["library"] == "pyzmq" and r["transport"] in (row["transport"], "tcp") and r["size"] == row["size"]:
            if r["transport"] == row["transport"] or row["transport"].startswith("ofi"):
                return r
    return None


def _format_row(row: Dict[str, Any], rows: List[Dict[str, Any]]) -> str:
    def num(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    ref = _reference(row, rows)
    lat_ratio = thr_ratio = "-"
    if ref and row.get("latency_us") and ref.get("latency_us"):
        lat_ratio = f"{row['latency_us'] / ref['latency_us']:.2f}x"
    if ref and row.get("msgs_per_s") and ref.get("msgs_per_s"):
        thr_ratio = f"{row['msgs_per_s'] / ref['msgs_per_s']:.2f}x"
    return (
        f"{row['library']:7} {row['transport']:8} {row['size']:>9} "
        f"{num(row.get('latency_us'), '10.1f')} {num(row.get('msgs_per_s'), '12.0f')} "
        f"{num(row.get('mb_per_s'), '9.1f')} {lat_ratio:>9} {thr_ratio:>9}  {row.get('note', '')}"
    )


HEADER = (
    f"{'library':7} {'transport':8} {'size':>9} {'rtt_us':>10} {'msgs/s':>12} {'MB/s':>9} "
    f"{'rtt/pyzmq':>9} {'thr/pyzmq':>9}"
)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nnofi perf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,1048576", help="message sizes in bytes, comma-separated")
    parser.add_argument("--transports", default="tcp,ipc,inproc,ofi+tcp", help="tcp, ipc, inproc, ofi+PROVIDER")
    parser.add_argument("--libs", default="pyzmq,pynng,nnofi")
    parser.add_argument("--json", help="write the results and the machine here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    libs = args.libs.split(",")
    m = machine()
    rows = run(libs, args.transports.split(","), sizes)
    print(f"# {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}")
    print(f"# rtt: REQ/REP round trip (median of {REPEATS} repeats); msgs/s: PUSH/PULL for {SEND_SECONDS:g} s")
    print("# ratios against pyzmq over the same transport (ofi rows: against pyzmq over tcp)")
    print(HEADER)
    for row in rows:
        print(_format_row(row, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "command": " ".join(sys.argv), "results": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
