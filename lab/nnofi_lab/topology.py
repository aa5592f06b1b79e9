"""Topologies: one YAML file per lab (lab/topologies/NAME.yaml) read into
dataclasses, with errors that name the file and the field.

    name: laptop                  # defaults to the file's stem
    backend: docker               # local | netns | docker | ssh
    subnet: 172.31.77.0/24        # netns, docker: the lab network
    providers: [tcp, "tcp;ofi_rxm", verbs, "verbs;ofi_rxm", shm]
    nodes:
      - {name: node1, address: 172.31.77.11}
      - {name: node2, address: 172.31.77.12, providers: [tcp]}   # per-node override

Backend keys: docker `image`; ssh `user`, `identity`, `ssh_config`,
`provided_by` (a lab whose nodes run the sshd, brought up first), and a
per-node `host` (what ssh dials; defaults to the address). Every backend:
`python` (the interpreter on the nodes), per node too.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

BACKENDS = ("local", "netns", "docker", "ssh")
# The providers a lab runs its ofi:// tests on unless the topology says.
DEFAULT_PROVIDERS = ["tcp", "tcp;ofi_rxm", "udp;ofi_rxd", "verbs", "verbs;ofi_rxm", "shm"]
TOPOLOGY_DIR = Path(__file__).resolve().parent.parent / "topologies"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")

_TOP_KEYS = {"name", "backend", "description", "subnet", "providers", "nodes", "python",
             "image", "user", "identity", "ssh_config", "provided_by", "rxe"}
_NODE_KEYS = {"name", "address", "providers", "python", "host"}


class TopologyError(ValueError):
    """A topology file that cannot be used, and why."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    address: str  # the IPv4 address tests bind and connect to
    providers: List[str]  # the providers this node is expected to offer
    python: Optional[str] = None  # None: the backend's default
    host: Optional[str] = None  # ssh: what to dial (default: address)


@dataclass(frozen=True)
class Topology:
    name: str
    backend: str
    nodes: List[NodeSpec]
    providers: List[str] = field(default_factory=lambda: list(DEFAULT_PROVIDERS))
    description: str = ""
    subnet: Optional[str] = None
    python: Optional[str] = None
    image: str = "nnofi-node:latest"
    user: str = "root"
    identity: Optional[str] = None
    ssh_config: Optional[str] = None
    provided_by: Optional[str] = None
    rxe: bool = False
    source: str = ""  # the file it came from

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"lab {self.name!r} has no node {name!r} (it has {[n.name for n in self.nodes]})")

    def shared_providers(self) -> List[str]:
        """The providers every node is expected to offer, in the lab's order."""
        return [p for p in self.providers if all(p in n.providers for n in self.nodes)]

    def resized(self, count: int) -> "Topology":
        """The same lab with `count` nodes: extra ones get the next names
        (nodeN) and addresses after the last node's."""
        if count < 1:
            raise TopologyError(f"{self.name}: a lab needs at least one node, not {count}")
        if self.backend == "ssh" and count > len(self.nodes):
            raise TopologyError(f"{self.name}: an ssh lab has the hosts its file lists ({len(self.nodes)}), "
                                f"it cannot grow to {count}")
        nodes = list(self.nodes[:count])
        last = ipaddress.IPv4Address(self.nodes[-1].address)
        while len(nodes) < count:
            last += 1
            if self.subnet and last not in ipaddress.IPv4Network(self.subnet):
                raise TopologyError(f"{self.name}: {count} nodes do not fit in subnet {self.subnet}")
            nodes.append(NodeSpec(name=f"node{len(nodes) + 1}", address=str(last),
                                  providers=list(self.providers)))
        return dataclasses.replace(self, nodes=nodes)


def find(name_or_path: str) -> Path:
    """The file of a topology: a path, or a name in lab/topologies (or in
    $NNOFI_LAB_TOPOLOGIES, a colon-separated list of directories)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not p.is_file():
            raise TopologyError(f"no topology file {name_or_path}")
        return p
    dirs = [Path(d) for d in os.environ.get("NNOFI_LAB_TOPOLOGIES", "").split(":") if d] + [TOPOLOGY_DIR]
    for d in dirs:
        for ext in (".yaml", ".yml"):
            if (d / (name_or_path + ext)).is_file():
                return d / (name_or_path + ext)
    known = sorted({f.stem for d in dirs if d.is_dir() for f in d.glob("*.y*ml")})
    raise TopologyError(f"no topology named {name_or_path!r}: known are {', '.join(known) or 'none'} "
                        f"(in {', '.join(map(str, dirs))}), or give a path to a .yaml file")


def names() -> List[str]:
    return sorted(f.stem for f in TOPOLOGY_DIR.glob("*.yaml"))


def load(name_or_path: str) -> Topology:
    path = find(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TopologyError(f"{path}: not valid YAML: {e}") from None
    return parse(data, source=str(path), default_name=path.stem)


def parse(data, source: str = "<topology>", default_name: str = "lab") -> Topology:
    """Validate a topology given as plain data (what the YAML holds)."""
    def err(where, msg):
        return TopologyError(f"{source}: {where}: {msg}")

    if not isinstance(data, dict):
        raise TopologyError(f"{source}: a topology is a mapping (name, backend, nodes, ...), "
                            f"not {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise err(", ".join(sorted(unknown)), f"unknown key(s); the keys are {', '.join(sorted(_TOP_KEYS))}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise err("name", f"{name!r} is not a lab name (lower-case letters, digits, - and _, at most 24)")
    backend = data.get("backend")
    if backend not in BACKENDS:
        raise err("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")

    def str_list(value, where):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise err(where, f"expected a list of provider names, got {value!r}")
        return list(value)

    providers = str_list(data.get("providers", DEFAULT_PROVIDERS), "providers")
    subnet = data.get("subnet")
    net = None
    if subnet is not None:
        try:
            net = ipaddress.IPv4Network(str(subnet))
        except ValueError as e:
            raise err("subnet", f"{subnet!r} is not an IPv4 network ({e})") from None
    elif backend in ("netns", "docker"):
        raise err("subnet", f"a {backend} lab needs a subnet (e.g. 10.77.0.0/24)")

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise err("nodes", "expected a non-empty list of nodes")
    nodes: List[NodeSpec] = []
    seen_names: Dict[str, int] = {}
    seen_addrs: Dict[str, int] = {}
    for i, n in enumerate(raw_nodes):
        where = f"nodes[{i}]"
        if not isinstance(n, dict):
            raise err(where, f"a node is a mapping with name and address, not {n!r}")
        unknown = set(n) - _NODE_KEYS
        if unknown:
            raise err(where, f"unknown key(s) {', '.join(sorted(unknown))}; a node has {', '.join(sorted(_NODE_KEYS))}")
        nname = n.get("name")
        if not isinstance(nname, str) or not _NODE_NAME.match(nname):
            raise err(f"{where}.name", f"{nname!r} is not a node name")
        if nname in seen_names:
            raise err(f"{where}.name", f"{nname!r} is already nodes[{seen_names[nname]}]")
        seen_names[nname] = i
        addr = n.get("address")
        try:
            ip = ipaddress.IPv4Address(str(addr))
        except ValueError:
            raise err(f"{where}.address", f"{addr!r} is not an IPv4 address") from None
        if str(ip) in seen_addrs:
            raise err(f"{where}.address", f"{ip} is already the address of nodes[{seen_addrs[str(ip)]}]")
        seen_addrs[str(ip)] = i
        if backend == "local" and not ip.is_loopback:
            raise err(f"{where}.address", f"a local lab's nodes live in 127.0.0.0/8, not {ip}")
        if net is not None and ip not in net:
            raise err(f"{where}.address", f"{ip} is not in the lab's subnet {net}")
        if net is not None and backend in ("netns", "docker") and ip in (net.network_address, net.broadcast_address, next(net.hosts())):
            raise err(f"{where}.address", f"{ip} is reserved in {net} (network, broadcast or the bridge's .1)")
        nprov = str_list(n["providers"], f"{where}.providers") if "providers" in n else list(providers)
        python = n.get("python")
        if python is not None and (not isinstance(python, str) or "//" in python):
            raise err(f"{where}.python", f"{python!r} is not an interpreter command (and may not contain //)")
        nodes.append(NodeSpec(name=nname, address=str(ip), providers=nprov, python=python,
                              host=str(n["host"]) if "host" in n else None))

    python = data.get("python")
    if python is not None and (not isinstance(python, str) or "//" in python):
        raise err("python", f"{python!r} is not an interpreter command (and may not contain //)")
    for key in ("image", "user", "identity", "ssh_config", "provided_by", "description"):
        if key in data and not isinstance(data[key], str):
            raise err(key, f"expected a string, got {data[key]!r}")
    if backend != "ssh":
        for key in ("identity", "ssh_config", "provided_by"):
            if key in data:
                raise err(key, f"only an ssh lab has {key}")
    rxe = data.get("rxe", False)
    if not isinstance(rxe, bool):
        raise err("rxe", f"expected true or false, got {rxe!r}")
    kwargs = {k: data[k] for k in ("image", "user", "identity", "ssh_config", "provided_by", "description")
              if k in data}
    return Topology(name=name, backend=backend, nodes=nodes, providers=providers,
                    subnet=str(net) if net else None, python=python, rxe=rxe, source=source, **kwargs)
