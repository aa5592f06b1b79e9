"""netns (root): every node is a network namespace nnofi-LAB-nodeN with
lo and an eth0 (a veth) on a bridge. The bridge lives in a namespace of
its own (nnofi-LAB-switch), so the host's firewall (Docker's FORWARD DROP
with br_netfilter) never sees the lab's traffic and the host's links stay
untouched. Node processes run the host's Python (same filesystem) under
`ip netns exec`. `down` kills every process in the namespaces and deletes
them, which deletes the veths and the bridge with them."""
from __future__ import annotations

import ipaddress
import os
import shutil
import signal

from .base import MARK, NODE_MARK, Backend, default_python, kill_pids, marked_pids, sh, signal_pids


def ns_name(topo, node) -> str:
    return f"nnofi-{topo.name}-{node.name}"


def switch_name(topo) -> str:
    return f"nnofi-{topo.name}-switch"


def _namespaces():
    out = sh(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _ns_pids(ns):
    out = sh(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]


class NetnsBackend(Backend):
    name = "netns"

    def unavailable(self):
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "no `ip` command (iproute2)"
        r = sh(["ip", "netns", "list"], check=False)
        if r.returncode != 0:
            return f"`ip netns` does not work here: {r.stderr.strip()}"
        return None

    def up(self, topo, log, rxe=False):
        why = self.unavailable()
        if why:
            raise RuntimeError(f"netns backend: {why}")
        have = _namespaces()
        prefix = ipaddress.IPv4Network(topo.subnet).prefixlen
        sw = switch_name(topo)
        if sw not in have:
            sh(["ip", "netns", "add", sw])
            sh(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])
            sh(["ip", "-n", sw, "link", "set", "br0", "up"])
            sh(["ip", "-n", sw, "link", "set", "lo", "up"])
        for i, n in enumerate(topo.nodes, 1):
            ns = ns_name(topo, n)
            if ns in have:
                sh(["ip", "-n", ns, "link", "set", "eth0", "up"])  # a node a fault left stopped
                continue
            sh(["ip", "netns", "add", ns])
            port = f"veth{i}"
            sh(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw])
            sh(["ip", "-n", sw, "link", "set", port, "master", "br0", "up"])
            sh(["ip", "-n", ns, "addr", "add", f"{n.address}/{prefix}", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        if rxe:
            from ..rxe import rxe_unavailable
            why = rxe_unavailable()
            log(f"  RXE=1: {why}; verbs tests will skip" if why else
                "  RXE=1: rxe devices in network namespaces are not set up by this backend (use docker)")

    def down(self, topo, log):
        have = _namespaces()
        mine = [ns_name(topo, n) for n in topo.nodes] + [switch_name(topo)]
        # namespaces of this lab beyond the topology's nodes (an `up --nodes 5`)
        mine += sorted(ns for ns in have if ns.startswith(f"nnofi-{topo.name}-node") and ns not in mine)
        pids = sorted({p for ns in mine if ns in have for p in _ns_pids(ns)} | set(marked_pids(topo.name)))
        kill_pids(pids, log, "node")
        for ns in mine:
            if ns in have:
                sh(["ip", "netns", "del", ns])
                log(f"  deleted namespace {ns}")

    def status(self, topo):
        have = _namespaces()
        rows = []
        for n in topo.nodes:
            ns = ns_name(topo, n)
            if ns not in have:
                rows.append({"node": n.name, "address": n.address, "state": "down", "detail": f"no namespace {ns}"})
                continue
            addrs = sh(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"], check=False).stdout
            link = sh(["ip", "-n", ns, "-o", "link", "show", "dev", "eth0"], check=False).stdout
            why = (f": eth0 lacks {n.address}" if f"{n.address}/" not in addrs else
                   ": eth0 is down (a node stopped by a fault)" if ",UP" not in link else "")
            rows.append({"node": n.name, "address": n.address, "state": "broken" if why else "up",
                         "detail": f"netns {ns}{why}"})
        return rows

    def gateway_spec(self, topo, node):
        return (f"popen//python=ip netns exec {ns_name(topo, node)} "
                f"env {MARK}={topo.name} {NODE_MARK}={node.name} {default_python(topo, node)}")

    # -- faults: the host's nft and tc run inside the node's namespace; a
    # stopped node has every process in its namespace killed (the kernel
    # closes their connections, as with docker kill), then its link down:
    # a dead host answers nothing, not even a refusal
    def net_unavailable(self, topo):
        missing = [tool for tool in ("nft", "tc") if shutil.which(tool) is None]
        return f"no {' or '.join(missing)} on this machine (nftables, iproute2)" if missing else None

    def node_exec(self, topo, node, argv, input=None, timeout=30):
        return sh(["ip", "netns", "exec", ns_name(topo, node)] + argv, check=False, timeout=timeout, input=input)

    def stop_node(self, topo, node):
        ns = ns_name(topo, node)
        signal_pids(_ns_pids(ns), signal.SIGKILL, wait_gone=5)
        sh(["ip", "-n", ns, "link", "set", "eth0", "down"])

    def start_node(self, topo, node):
        sh(["ip", "-n", ns_name(topo, node), "link", "set", "eth0", "up"])

    def freeze_node(self, topo, node):
        signal_pids(_ns_pids(ns_name(topo, node)), signal.SIGSTOP)

    def thaw_node(self, topo, node):
        signal_pids(_ns_pids(ns_name(topo, node)), signal.SIGCONT)

    def testinfra_host(self, topo, node):
        import testinfra.host
        return testinfra.host.Host(NetnsTestinfraBackend(ns_name(topo, node)))


def _testinfra_backend_class():
    from testinfra.backend import base

    class _Netns(base.BaseBackend):
        """testinfra commands run in a network namespace (same filesystem)."""
        NAME = "netns"

        def __init__(self, namespace, *args, **kwargs):
            self.namespace = namespace
            super().__init__(namespace, *args, **kwargs)

        def run(self, command, *args, **kwargs):
            cmd = self.get_command(command, *args)
            out = self.run_local("ip netns exec %s /bin/sh -c %s", self.namespace, cmd)
            out.command = self.encode(cmd)
            return out

    return _Netns


def NetnsTestinfraBackend(namespace):  # noqa: N802 - a class made on first use
    return _testinfra_backend_class()(namespace)

