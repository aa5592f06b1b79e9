"""nanomsg's own rows: Debian's libnanomsg driven by a small C program
(nanomsg_driver.c, next to this file), built on first use with

    cc -O2 -o build/bench/nanomsg_driver nanomsg_driver.c -lnanomsg

and rebuilt only when the source or that command changes (a stamp file
holds their hash). Where libnanomsg-dev (or a C compiler) is missing the
build fails and the rows say why. A cell runs the driver twice: a server
(rep / pull) that prints "ready" once bound, and a client (req / push)
that measures and prints its result as JSON; the acks of a throughput
phase go over a nanomsg PAIR on ipc://."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import budget
from .transports import scheme

SOURCE = Path(__file__).with_name("nanomsg_driver.c")
TRANSPORTS = ("tcp", "ipc")
MODES = {"latency": ("rep", "req"), "throughput": ("pull", "push")}


class NanomsgUnavailable(RuntimeError):
    """The driver cannot be built or run here (the message says why)."""


def build_command(out: Path) -> List[str]:
    cc = os.environ.get("CC") or shutil.which("cc") or "cc"
    return [cc, "-O2", "-std=c11", "-Wall", "-o", str(out), str(SOURCE), "-lnanomsg"]


def build(build_dir: str) -> Path:
    """The driver's path, built if it is missing or stale."""
    directory = Path(build_dir)
    exe = directory / "nanomsg_driver"
    stamp = directory / "nanomsg_driver.sha256"
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(build_command(exe)).encode()).hexdigest()
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return exe
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"nanomsg_driver.{os.getpid()}.tmp"  # then renamed: a concurrent build never sees half a file
    cmd = build_command(tmp)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NanomsgUnavailable(f"cannot run the C compiler ({cmd[0]}): {exc}") from None
    if done.returncode:
        tmp.unlink(missing_ok=True)
        if "nanomsg/" in done.stderr and "No such file" in done.stderr:
            raise NanomsgUnavailable("libnanomsg-dev is not installed (Debian: apt install libnanomsg-dev)")
        if "-lnanomsg" in done.stderr or "cannot find" in done.stderr:
            raise NanomsgUnavailable("libnanomsg is not installed (Debian: apt install libnanomsg-dev)")
        said = [line for line in done.stderr.splitlines() if line.strip()]
        raise NanomsgUnavailable(f"building the nanomsg driver failed: {said[-1] if said else done.returncode}")
    os.replace(tmp, exe)
    stamp_tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
    stamp_tmp.write_text(digest + "\n")
    os.replace(stamp_tmp, stamp)
    return exe


@functools.lru_cache(maxsize=None)
def version() -> Optional[str]:
    """libnanomsg's version (pkg-config), None if it is not installed."""
    try:
        out = subprocess.run(["pkg-config", "--modversion", "nanomsg"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return f"libnanomsg {out.stdout.strip()}"
    for lib_dir in ("/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/local/lib"):
        if any(Path(lib_dir).glob("libnanomsg.so*")):
            return "libnanomsg ?"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: Optional[subprocess.Popen[str]]) -> str:
    """Kill `proc` if it runs still; its stderr."""
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.kill()
    try:
        return proc.communicate(timeout=5)[1] or ""
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return ""


def _last_words(text: str) -> str:
    said = [line.strip() for line in text.splitlines() if line.strip()]
    return said[-1] if said else "(no output)"


class NanomsgDriver:
    def __init__(self, build_dir: str) -> None:
        self.exe = str(build(build_dir))

    def measure(self, what: str, transport: str, size: int, tmp: str, opts: Dict[str, Any]) -> Dict[str, Any]:
        """One cell: the client's JSON as a dict; NanomsgUnavailable-free,
        failures raise RuntimeError saying why."""
        if scheme(transport) not in TRANSPORTS:
            raise RuntimeError(f"the nanomsg driver has no {transport}")
        server_mode, client_mode = MODES[what]
        warm = budget.latency_warmup(size) if what == "latency" else budget.throughput_warmup(size)
        timeout = budget.cell_timeout(opts["seconds"])
        deadline = time.monotonic() + timeout
        why = "?"
        for attempt in range(3):  # a tcp port another program took first: again on a new one
            url = (f"tcp://127.0.0.1:{_free_port()}" if transport == "tcp"
                   else f"ipc://{tmp}/nanomsg-{what}-{size}-{attempt}.ipc")
            ctl = f"ipc://{tmp}/nanomsg-ctl-{what}-{size}-{attempt}.ipc"
            args = [url, ctl, str(size), str(opts["repeats"]), str(opts["seconds"]), str(warm),
                    str(budget.phase_max_msgs(size))]
            server = client = None
            try:
                server = subprocess.Popen([self.exe, server_mode] + args, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                assert server.stdout is not None  # stdout=PIPE
                bound = select.select([server.stdout], [], [], max(0.1, deadline - time.monotonic()))[0]
                if not bound or server.stdout.readline().strip() != "ready":  # bound (or failed: then EOF)
                    why = f"server: {_last_words(_stop(server))}"
                    if "in use" in why:
                        continue
                    raise RuntimeError(why)
                client = subprocess.Popen([self.exe, client_mode] + args, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    out, err = client.communicate(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise RuntimeError(f"timed out after {timeout:g} s (killed)") from None
                if client.returncode:
                    raise RuntimeError(f"client exit {client.returncode}: {_last_words(err)}")
                result: Dict[str, Any] = json.loads(out)
                return result
            finally:
                _stop(client)
                _stop(server)
        raise RuntimeError(why)
