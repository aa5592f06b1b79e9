"""A lab: a topology, its backend, and a Node handle per node."""
from __future__ import annotations

import itertools
from typing import Callable, Dict, List, Optional

import execnet

from . import backends, topology
from .backends.base import state_dir
from .faults import Faults
from .node import DEFAULT_TIMEOUT, LabError, Node
from .ports import Ports

VERBS_REASON = ("no RDMA device: no HCA and no rxe soft-RoCE device here "
                "(`make lab-up RXE=1` makes one where the host kernel has rdma_rxe)")


def transport_url(transport: str, address: str, port: int) -> str:
    """tcp -> tcp://ADDR:PORT; ofi+PROVIDER -> ofi://ADDR:PORT@PROVIDER;
    ipc -> a socket file in the node's /tmp named after ADDR and PORT."""
    if transport == "tcp":
        return f"tcp://{address}:{port}"
    if transport == "ipc":
        return f"ipc:///tmp/nnofi-lab-{address}-{port}.ipc"
    if transport.startswith("ofi+"):
        return f"ofi://{address}:{port}@{transport[4:]}"
    raise ValueError(f"no lab transport {transport!r} (tcp, ipc or ofi+PROVIDER)")


def saved_node_count(name: str) -> Optional[int]:
    f = state_dir(name) / "nodes"
    try:
        return int(f.read_text().strip())
    except (OSError, ValueError):
        return None


class Lab:
    def __init__(self, topo: topology.Topology, timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float = 60.0) -> None:
        self.topology = topo
        self.backend = backends.get(topo.backend)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.group = execnet.Group()
        self.gateway_ids = itertools.count()
        self.nodes: List[Node] = [Node(self, spec, i) for i, spec in enumerate(topo.nodes)]
        self.ports = Ports()
        self.faults = Faults(self)

    @classmethod
    def load(cls, name_or_path: str, nodes: Optional[int] = None, **kwargs) -> "Lab":
        """The lab of a topology; with as many nodes as `lab up --nodes N`
        made, unless nodes says."""
        topo = topology.load(name_or_path)
        count = nodes or saved_node_count(topo.name)
        if count and count != len(topo.nodes):
            topo = topo.resized(count)
        return cls(topo, **kwargs)

    def __repr__(self) -> str:
        return f"<Lab {self.topology.name} ({self.topology.backend}, {len(self.nodes)} nodes)>"

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"lab {self.topology.name} has no node {name!r}")

    # -- the lab's life ---------------------------------------------------------
    def up(self, log: Callable[[str], None] = print, rxe: bool = False) -> None:
        self.backend.up(self.topology, log, rxe=rxe or self.topology.rxe)
        (state_dir(self.topology.name) / "nodes").write_text(f"{len(self.nodes)}\n")
        self.faults.heal(log)  # a lab that was up may carry a killed run's faults

    def down(self, log: Callable[[str], None] = print) -> None:
        self.close()
        if self.backend.keeps_node_state:  # docker and netns nodes go, their rules with them
            self.faults.heal(log)
        self.backend.down(self.topology, log)
        try:
            (state_dir(self.topology.name) / "nodes").unlink()
        except FileNotFoundError:
            pass

    def status(self) -> List[Dict[str, str]]:
        return self.backend.status(self.topology)

    def is_up(self) -> bool:
        return self.backend.is_up(self.topology)

    def close(self) -> None:
        """Stop every node process this Lab started."""
        for n in self.nodes:
            try:
                n.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                pass
        try:
            self.group.terminate(timeout=5)
        except Exception:  # noqa: BLE001
            pass

    # -- what tests use ---------------------------------------------------------
    def url(self, transport: str, node: Node, port: Optional[int] = None) -> str:
        return transport_url(transport, node.address, self.ports.next() if port is None else port)

    def missing(self, provider: str, nodes: Optional[List[Node]] = None) -> Optional[str]:
        """Why provider cannot be tested on these nodes (default: all), or None."""
        lacking = [n.name for n in (nodes or self.nodes) if not n.offers(provider)]
        if not lacking:
            return None
        why = VERBS_REASON if provider.split(";")[0] == "verbs" else "fi_getinfo does not offer it"
        return f"{provider} not on {', '.join(lacking)}: {why}"

    # -- faults (faults.py): context managers that undo themselves on exit --------
    def partition(self, a: Node, b: Node, mode: str = "drop", ports=None):
        """a and b cannot reach each other (mode "reset": TCP resets)."""
        return self.faults.partition(a, b, mode=mode, ports=ports)

    def isolate(self, a: Node, mode: str = "drop", ports=None):
        """a reaches no other node."""
        return self.faults.isolate(a, mode=mode, ports=ports)

    def loss(self, a: Node, b: Optional[Node] = None, percent: int = 10, ports=None):
        """A random percent of the packets between a and b is lost."""
        return self.faults.loss(a, b, percent=percent, ports=ports)

    def cap_bandwidth(self, a: Node, b: Optional[Node] = None, rate="8mbit", ports=None):
        """The links between a and b carry at most rate each way."""
        return self.faults.cap_bandwidth(a, b, rate=rate, ports=ports)

    def delay(self, a: Node, b: Optional[Node] = None, ms: float = 50, jitter_ms: float = 0, ports=None):
        """Packets between a and b wait ms (netem)."""
        return self.faults.delay(a, b, ms=ms, jitter_ms=jitter_ms, ports=ports)

    def kill(self, node: Node):
        """node is down inside the block and started again on exit."""
        return self.faults.kill(node)

    def restart(self, node: Node) -> None:
        self.faults.restart(node)

    def pause(self, node: Node):
        """node's processes are frozen inside the block."""
        return self.faults.pause(node)
