"""local: every node is a process on this machine with an address of its
own in 127.0.0.0/8 (Linux routes all of it to lo), so tests still cross
addresses. Nothing to create; `down` stops leftover node processes."""
from __future__ import annotations

import signal
import socket

from .base import MARK, NODE_MARK, Backend, default_python, kill_pids, marked_pids, signal_pids


class LocalBackend(Backend):
    name = "local"

    def up(self, topo, log, rxe=False):
        for n in topo.nodes:
            with socket.socket() as s:
                try:
                    s.bind((n.address, 0))
                except OSError as e:
                    raise RuntimeError(f"{n.name}: cannot bind {n.address}: {e}") from None
        if rxe:
            log("  RXE=1: the local backend has no network devices of its own; verbs tests will skip")

    def down(self, topo, log):
        kill_pids(marked_pids(topo.name), log, "node")

    def status(self, topo):
        pids = marked_pids(topo.name)
        return [{"node": n.name, "address": n.address, "state": "up",
                 "detail": f"{len(pids)} lab process(es) on this machine" if pids else "loopback"}
                for n in topo.nodes]

    def gateway_spec(self, topo, node):
        return f"popen//python=env {MARK}={topo.name} {NODE_MARK}={node.name} {default_python(topo, node)}"

    # A node is its processes: kill and pause act on those marked for it.
    # Its network is this machine's loopback, so no rules go there.
    def net_unavailable(self, topo):
        return ("the local backend's nodes share this machine's loopback: a rule there would touch the "
                "host itself (the netns and docker labs have a network of their own)")

    def stop_node(self, topo, node):
        signal_pids(marked_pids(topo.name, node.name), signal.SIGKILL, wait_gone=5)

    def freeze_node(self, topo, node):
        signal_pids(marked_pids(topo.name, node.name), signal.SIGSTOP)

    def thaw_node(self, topo, node):
        signal_pids(marked_pids(topo.name, node.name), signal.SIGCONT)

    def testinfra_host(self, topo, node):
        import testinfra
        return testinfra.get_host("local://")
