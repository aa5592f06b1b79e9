"""What every backend does: bring a lab's nodes up and down, say how they
are, name the execnet gateway and the testinfra host of a node."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

MARK = "NNOFI_LAB"  # environment variable that marks a lab's node processes
NODE_MARK = "NNOFI_LAB_NODE"  # ... and names the node each one runs for
Log = Callable[[str], None]


def repo_root() -> Optional[Path]:
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "lab").is_dir() else None


def lab_root() -> Path:
    base = os.environ.get("NNOFI_LAB_STATE")
    if base:
        root = Path(base)
    elif repo_root() is not None:
        root = repo_root() / "build" / "lab"
    else:
        root = Path.home() / ".cache" / "nnofi-lab"
    root.mkdir(parents=True, exist_ok=True)
    return root


def state_dir(lab: str) -> Path:
    """build/lab/LAB in the repository (or $NNOFI_LAB_STATE/LAB): keys,
    ssh_config, the state a `lab up` leaves for `status` and `down`."""
    d = lab_root() / lab
    d.mkdir(parents=True, exist_ok=True)
    return d


def sh(cmd: List[str], check: bool = True, timeout: float = 60, input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run a command with a deadline; a clear error if it fails. System
    tools (ip, nft, tc, docker) run without a sanitizer preloaded for the
    tests (`make test-asan`): it is nnofi that is under test, not them."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd)}: no answer within {timeout}s") from None
    except FileNotFoundError:
        raise RuntimeError(f"{cmd[0]}: command not found") from None
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
    return r


def marked_pids(lab: str, node: Optional[str] = None) -> List[int]:
    """Processes of this pid namespace started for lab (their environment
    has NNOFI_LAB=lab), or for one node of it, except this one."""
    want = {f"{MARK}={lab}".encode()} | ({f"{NODE_MARK}={node}".encode()} if node else set())
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if want <= set(f.read().split(b"\0")):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def signal_pids(pids: List[int], sig: int, wait_gone: float = 0.0) -> None:
    """Send sig to pids; with wait_gone, wait (bounded) until they are gone."""
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait_gone
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Running or stopped; a zombie (dead, its parent not told yet) is not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_pids(pids: List[int], log: Log, what: str, timeout: float = 5.0) -> None:
    if not pids:
        return
    log(f"  stopping {len(pids)} {what} process(es): {' '.join(map(str, pids))}")
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def default_python(topo, node) -> str:
    return node.python or topo.python or sys.executable


class Backend:
    name = "?"
    keeps_node_state = False  # do nodes (and fault rules on them) outlive `down`? (ssh hosts)

    def unavailable(self) -> Optional[str]:
        """Why this backend cannot run here, or None."""
        return None

    def up(self, topo, log: Log, rxe: bool = False) -> None:
        raise NotImplementedError

    def down(self, topo, log: Log) -> None:
        raise NotImplementedError

    def status(self, topo) -> List[Dict[str, str]]:
        """One {"node", "address", "state", "detail"} per node."""
        raise NotImplementedError

    def is_up(self, topo) -> bool:
        return all(s["state"] == "up" for s in self.status(topo))

    def gateway_spec(self, topo, node) -> str:
        raise NotImplementedError

    def testinfra_host(self, topo, node):
        raise NotImplementedError

    # -- fault injection (faults.py): what a backend can do to its nodes ----------
    def net_unavailable(self, topo) -> Optional[str]:
        """Why nft and tc rules cannot be put on this lab's nodes, or None."""
        return f"the {self.name} backend cannot change a node's network"

    def node_exec(self, topo, node, argv: List[str], input: Optional[str] = None,
                  timeout: float = 30) -> subprocess.CompletedProcess:
        """Run argv as root in the node's network namespace (nft, tc, ip)."""
        raise NotImplementedError

    def stop_node(self, topo, node) -> None:
        """Kill everything the node runs, as a crash would."""
        raise NotImplementedError

    def start_node(self, topo, node) -> None:
        """Bring a stopped node back (its processes start on the next call)."""

    def freeze_node(self, topo, node) -> None:
        raise NotImplementedError

    def thaw_node(self, topo, node) -> None:
        raise NotImplementedError
