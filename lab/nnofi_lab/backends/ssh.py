"""ssh: every node is a host reached by ssh (a real cluster, or the
containers of another lab: `provided_by: laptop`). Node processes are
`python3` started over ssh by execnet (`ssh=HOST`); testinfra dials
ssh://USER@HOST with the same ssh_config. `up` checks that every host
answers (bringing up the providing lab first); `down` stops the lab's
processes on the hosts, and leaves the hosts alone."""
from __future__ import annotations

import os
import shlex
import signal
import time
from typing import Optional

from .base import MARK, NODE_MARK, Backend, sh, state_dir

# Signals the host's processes whose environment has all the given marks
# (NNOFI_LAB=lab, and NNOFI_LAB_NODE=node for one node); prints their pids.
_SIGNAL = """
import os
want, sig = set(%r), %d
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) == os.getpid():
        continue
    try:
        if want <= set(open("/proc/%%s/environ" %% p, "rb").read().split(b"\\0")):
            os.kill(int(p), sig)
            print(p)
    except OSError:
        pass
"""


def _signal_script(topo, node, sig) -> str:
    marks = [f"{MARK}={topo.name}".encode()] + ([f"{NODE_MARK}={node.name}".encode()] if node else [])
    return _SIGNAL % (marks, sig)


def ssh_config(topo) -> Optional[str]:
    """The ssh_config the lab's gateways and testinfra use, or None (the
    user's own ~/.ssh/config)."""
    if topo.ssh_config:
        return os.path.expanduser(topo.ssh_config)
    if topo.provided_by:
        from .docker import ssh_key
        ssh_key(topo.provided_by)
        return str(state_dir(topo.provided_by) / "ssh_config")
    if topo.identity:
        path = state_dir(topo.name) / "ssh_config"
        path.write_text("Host *\n"
                        f"  IdentityFile {os.path.expanduser(topo.identity)}\n"
                        "  IdentitiesOnly yes\n  BatchMode yes\n  ConnectTimeout 10\n"
                        "  ServerAliveInterval 5\n  ServerAliveCountMax 3\n")
        return str(path)
    return None


def target(topo, node) -> str:
    return f"{topo.user}@{node.host or node.address}"


def _ssh(topo, node, command, timeout=30, input=None):
    cfg = ssh_config(topo)
    cmd = ["ssh"] + (["-F", cfg] if cfg else []) + ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                                    target(topo, node), command]
    return sh(cmd, check=False, timeout=timeout, input=input)


class SshBackend(Backend):
    name = "ssh"

    def _provider(self, topo):
        if not topo.provided_by:
            return None
        from .. import topology
        from . import get
        prov = topology.load(topo.provided_by)
        return prov, get(prov.backend)

    def up(self, topo, log, rxe=False):
        prov = self._provider(topo)
        if prov is not None:
            ptopo, pbackend = prov
            log(f"  hosts provided by lab {ptopo.name} ({ptopo.backend}): bringing it up")
            pbackend.up(ptopo, log, rxe=rxe)
        elif rxe:
            log("  RXE=1: an ssh lab uses the hosts' own RDMA devices (real HCAs or rxe made there)")
        deadline = time.monotonic() + 30
        for n in topo.nodes:
            while True:
                r = _ssh(topo, n, "true", timeout=15)
                if r.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{n.name}: ssh {target(topo, n)} fails: {(r.stderr or r.stdout).strip()}")
                time.sleep(0.5)
        log(f"  ssh reaches {', '.join(target(topo, n) for n in topo.nodes)}")

    def down(self, topo, log):
        for n in topo.nodes:
            r = _ssh(topo, n, "python3 -", timeout=30, input=_signal_script(topo, None, signal.SIGKILL))
            if r.returncode != 0:
                log(f"  {n.name}: cannot reach it to stop lab processes: {(r.stderr or r.stdout).strip()[:200]}")
            elif r.stdout.split():
                log(f"  {n.name}: stopped lab process(es) {' '.join(r.stdout.split())}")
        if topo.provided_by:
            log(f"  the hosts belong to lab {topo.provided_by}: `python -m nnofi_lab down --topology "
                f"{topo.provided_by}` removes them")

    def status(self, topo):
        rows = []
        for n in topo.nodes:
            r = _ssh(topo, n, "hostname", timeout=15)
            ok = r.returncode == 0
            rows.append({"node": n.name, "address": n.address, "state": "up" if ok else "down",
                         "detail": f"ssh {target(topo, n)}: " + (r.stdout.strip() if ok else
                                                                 (r.stderr or r.stdout).strip()[:120])})
        return rows

    def gateway_spec(self, topo, node):
        cfg = ssh_config(topo)
        spec = f"ssh={target(topo, node)}"
        if cfg:
            spec += f"//ssh_config={cfg}"
        return spec + (f"//python=env {MARK}={topo.name} {NODE_MARK}={node.name} "
                       f"{node.python or topo.python or 'python3'}")

    # -- faults: nft and tc over ssh (root on the hosts); a stopped or paused
    # node is its lab processes killed or stopped: the host itself stays up
    keeps_node_state = True  # rules outlive the lab here: `down` heals first

    def net_unavailable(self, topo):
        if topo.user != "root":
            return f"nft and tc need root on the hosts; this lab logs in as {topo.user}"
        return None

    def node_exec(self, topo, node, argv, input=None, timeout=30):
        return _ssh(topo, node, shlex.join(argv), timeout=timeout, input=input)

    def _signal(self, topo, node, sig):
        r = _ssh(topo, node, "python3 -", timeout=30, input=_signal_script(topo, node, sig))
        if r.returncode != 0:
            raise RuntimeError(f"{node.name}: cannot signal its lab processes: {(r.stderr or r.stdout).strip()[:200]}")

    def stop_node(self, topo, node):
        self._signal(topo, node, signal.SIGKILL)

    def freeze_node(self, topo, node):
        self._signal(topo, node, signal.SIGSTOP)

    def thaw_node(self, topo, node):
        self._signal(topo, node, signal.SIGCONT)

    def testinfra_host(self, topo, node):
        import testinfra
        cfg = ssh_config(topo)
        return testinfra.get_host(f"ssh://{target(topo, node)}", ssh_config=cfg) if cfg else \
            testinfra.get_host(f"ssh://{target(topo, node)}")

