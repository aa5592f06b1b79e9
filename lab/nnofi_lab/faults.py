"""Fault injection on lab nodes. Each fault is a context manager that
undoes itself on exit, also when the block raises:

    with lab.partition(a, b): ...          # a and b cannot reach each other
    with lab.partition(a, b, mode="reset") # ... and every attempt is answered by a TCP reset
    with lab.isolate(a): ...               # a reaches no other node
    with lab.kill(a): ...                  # a is down (a crash); started again on exit
    lab.restart(a)                         # the same, at once
    with lab.pause(a): ...                 # a's processes frozen (docker pause, SIGSTOP)
    with lab.cap_bandwidth(a, b, "8mbit"): # tc htb on the links between a and b
    with lab.loss(a, b, percent=10): ...   # nft drops a random 10% of their packets
    with lab.delay(a, b, ms=50): ...       # tc netem, where the kernel has it

How:
- Cuts and loss are nft rules in a table of their own on each node they
  touch, in the input hook: a packet leaves its sender and dies on
  arrival, as on a broken wire (dropping in the output hook would fail the
  sender's own call with EPERM instead, which no real partition does).
- Bandwidth and delay shape each node's egress: a tc htb root qdisc (handle
  4e4e:, "NN") with a class per fault, u32 filters choosing its packets
  (u32 is the one classifier every kernel here has), and a netem leaf for
  delay. netem is probed on the node; where it is missing, delay raises
  FaultUnavailable with tc's reason and tests skip with it.
- kill and pause act on a whole node through its backend: docker kill and
  start (same address, same disk) or pause; netns: link down and every
  process in the namespace killed, or all of them SIGSTOPped; local and
  ssh: the lab's processes of that node killed or stopped.

Scope. Nodes are shared by the tests pytest-xdist runs at once, so network
faults match ports: by default only this worker's range of the lab's Ports
allocator (every lab URL a test makes is in it, and no other worker's is),
so a partition cuts this test's connections and no one else's; `ports="all"`
cuts everything. kill and pause cannot be scoped: they take the whole node.
A test that makes them must be marked `@pytest.mark.lab_exclusive`; the
lab's pytest plugin then runs it under an exclusive lock (LabLock) while
every other lab test holds it shared, and these methods refuse to run
without it when there are several workers.
"""
from __future__ import annotations

import errno
import fcntl
import itertools
import os
import re
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .backends.base import state_dir
from .node import LabError, LabTimeout

TABLE_PREFIX = "nnofi_lab_"  # nft tables made by faults
QDISC = "4e4e"  # handle of the htb root qdisc made by faults ("NN")
NET_FAULTS = ("partition", "isolate", "loss", "cap_bandwidth", "delay")
NODE_FAULTS = ("kill", "restart", "pause")


class FaultUnavailable(LabError):
    """This fault cannot be made on this lab; the message says why (a test
    skips with it)."""


class LabBusy(LabTimeout):
    """The lab's lock was not free in time."""


# -- rules, as text -------------------------------------------------------------
PortRange = Optional[Tuple[int, int]]  # first and last port; None: every port


def port_blocks(first: int, last: int) -> List[Tuple[int, int]]:
    """[first, last] as (value, mask) blocks, the way u32 matches ports."""
    blocks = []
    while first <= last:
        size = first & -first if first else 1 << 16
        while size > last - first + 1:
            size //= 2
        blocks.append((first, 0xFFFF & ~(size - 1)))
        first += size
    return blocks


def input_rules(peers: Sequence[str], ports: PortRange, action: str, percent: int = 100) -> List[str]:
    """nft rules (input hook) for packets from peers on ports. action: drop,
    or reset (TCP segments answered by a reset, so both ends see the
    connection refused or broken; resets themselves pass, or the sender
    would never learn; UDP dropped). percent < 100: that share at random."""
    src = "ip saddr { %s }" % ", ".join(peers)
    sides = [""] if ports is None else [f"th sport {ports[0]}-{ports[1]} ", f"th dport {ports[0]}-{ports[1]} "]
    chance = f"numgen random mod 100 < {percent} " if percent < 100 else ""
    if action == "drop":
        proto = "" if ports is None else "meta l4proto { tcp, udp } "
        return [f"{src} {proto}{side}{chance}drop" for side in sides]
    if action == "reset":
        return ([f"{src} meta l4proto tcp {side}tcp flags & rst == 0 {chance}reject with tcp reset" for side in sides]
                + [f"{src} meta l4proto udp {side}{chance}drop" for side in sides])
    raise ValueError(f"no partition mode {action!r}: drop or reset")


def nft_table(name: str, rules: Sequence[str]) -> str:
    """An nft script making table inet NAME with rules in its input chain
    (ahead of any filter of the node's own: priority -10)."""
    body = "\n".join(f"    {r}" for r in rules)
    return (f"table inet {name} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n"
            f"{body}\n  }}\n}}\n")


def parse_rate(rate) -> int:
    """Bits per second from 8000000, "8mbit", "500kbit", "1gbit", "2mbps"."""
    if isinstance(rate, int):
        return rate
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?\s*", str(rate).lower())
    if not m:
        raise ValueError(f"rate {rate!r}: a number of bits/s, or like 8mbit, 500kbit, 2mbps (bytes)")
    unit = m.group(2) or "bit"
    scale = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}.get(unit) or \
        8 * {"bps": 1, "kbps": 10**3, "mbps": 10**6, "gbps": 10**9}[unit]
    return int(float(m.group(1)) * scale)


def tc_class_script(dev: str, minor: int, bits: int, dsts: Sequence[str], ports: PortRange,
                    netem: Optional[str]) -> str:
    """tc -batch lines: an htb class of rate bits, a netem leaf if asked,
    and u32 filters sending it the packets to dsts (on ports)."""
    cls = f"{QDISC}:{minor:x}"
    quantum = min(200000, max(1514, bits // 80))  # bytes per round: >= a frame, as htb wants
    lines = [f"class add dev {dev} parent {QDISC}: classid {cls} htb rate {bits}bit ceil {bits}bit quantum {quantum}"]
    if netem:
        lines.append(f"qdisc add dev {dev} parent {cls} handle {minor:x}: netem {netem}")
    ports_match = [""] if ports is None else [f" match ip {side} {value} 0x{mask:04x}"
                                              for side in ("sport", "dport") for value, mask in port_blocks(*ports)]
    for dst in dsts:
        for match in ports_match:
            lines.append(f"filter add dev {dev} parent {QDISC}: protocol ip prio {minor} u32 "
                         f"match ip dst {dst}/32{match} flowid {cls}")
    return "\n".join(lines) + "\n"


# -- the lock that keeps node-wide faults away from other tests ---------------------
class LabLock:
    """Shared by every lab test, exclusive for one that kills or pauses
    nodes; held across processes (xdist workers, two runs on one lab) with
    flock on files in the lab's state directory. Everyone passes a
    turnstile first, which a waiting writer holds, so a stream of shared
    holders cannot starve it. Waits are bounded."""

    def __init__(self, directory: Path, timeout: float = 600.0) -> None:
        self.main = directory / "faults.lock"
        self.turnstile = directory / "faults.turnstile"
        self.timeout = timeout

    @contextmanager
    def hold(self, exclusive: bool, timeout: Optional[float] = None) -> Iterator[None]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        gate = _flock(self.turnstile, fcntl.LOCK_EX, deadline)
        try:
            main = _flock(self.main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
        finally:
            os.close(gate)
        try:
            yield
        finally:
            os.close(main)


def _flock(path: Path, how: int, deadline: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
        if time.monotonic() > deadline:
            os.close(fd)
            raise LabBusy(f"waited too long for {path} (another test holds the lab)")
        time.sleep(0.02)


@contextmanager
def _locked(path: Path, timeout: float = 60.0) -> Iterator[None]:
    fd = _flock(path, fcntl.LOCK_EX, time.monotonic() + timeout)
    try:
        yield
    finally:
        os.close(fd)


# -- the faults -------------------------------------------------------------------------
class Faults:
    """The faults of one Lab (lab.faults; Lab has the same methods)."""

    def __init__(self, lab) -> None:
        self.lab = lab
        self.exclusive = False  # set by the plugin while this test holds the lab alone
        # one set of locks per set of machines: an ssh lab on another lab's nodes shares that lab's
        self._locks = state_dir(lab.topology.provided_by or lab.topology.name)
        self.lock = LabLock(self._locks)
        self._serial = itertools.count(1)
        self._netem: Dict[str, Optional[str]] = {}
        self._devs: Dict[Tuple[str, str], str] = {}

    @property
    def _topo(self):
        return self.lab.topology

    @property
    def _backend(self):
        return self.lab.backend

    # -- what can be done here ------------------------------------------------
    def unavailable(self, fault: str, nodes: Sequence = ()) -> Optional[str]:
        """Why fault cannot be made on these nodes of this lab, or None."""
        if fault in NODE_FAULTS:
            return None
        if fault not in NET_FAULTS:
            raise ValueError(f"no fault {fault!r}: one of {', '.join(NET_FAULTS + NODE_FAULTS)}")
        why = self._backend.net_unavailable(self._topo)
        if why or fault != "delay":
            return why
        for n in nodes or self.lab.nodes:
            why = self._netem_unavailable(n)
            if why:
                return why
        return None

    def _require(self, fault: str, nodes: Sequence) -> None:
        why = self.unavailable(fault, nodes)
        if why:
            raise FaultUnavailable(f"{fault} on lab {self._topo.name}: {why}")

    def _netem_unavailable(self, node) -> Optional[str]:
        if node.spec.name not in self._netem:
            r = self._exec(node, ["tc", "qdisc", "add", "dev", "lo", "root", "handle", "4e4f:", "netem", "delay", "1ms"],
                           check=False)
            if r.returncode == 0:
                self._exec(node, ["tc", "qdisc", "del", "dev", "lo", "root", "handle", "4e4f:"], check=False)
                self._netem[node.spec.name] = None
            else:
                self._netem[node.spec.name] = (f"tc netem does not work on {node.spec.name}: `tc qdisc add ... netem` "
                                               f"says {(r.stderr or r.stdout).strip()!r} (the kernel needs sch_netem)")
        return self._netem[node.spec.name]

    # -- network faults ----------------------------------------------------------
    @contextmanager
    def partition(self, a, b, mode: str = "drop", ports=None) -> Iterator[None]:
        """a and b cannot reach each other (on ports: default, this
        worker's; "all": every port). mode "drop": silence, connections
        survive a short cut; "reset": TCP resets, connections break and
        redials are refused until the cut heals."""
        self._require("partition", [a, b])
        scope = self._ports(ports)
        with self._rules({a: input_rules([b.address], scope, mode),
                          b: input_rules([a.address], scope, mode)}, scope):
            yield

    @contextmanager
    def isolate(self, a, mode: str = "drop", ports=None) -> Iterator[None]:
        """a reaches no other node, and none reaches it."""
        self._require("isolate", [a])
        scope = self._ports(ports)
        others = self._others(a)
        rules = {n: input_rules([a.address], scope, mode) for n in others}
        rules[a] = input_rules([n.address for n in others], scope, mode)
        with self._rules(rules, scope):
            yield

    @contextmanager
    def loss(self, a, b=None, percent: int = 10, ports=None) -> Iterator[None]:
        """A random percent of the packets between a and b (or every other
        node) is lost, each way: nft's random numbers, no netem needed."""
        if not 0 < percent <= 100:
            raise ValueError(f"loss percent {percent}: 1 to 100")
        self._require("loss", [a] + ([b] if b else []))
        scope = self._ports(ports)
        peers = [b] if b else self._others(a)
        rules = {p: input_rules([a.address], scope, "drop", percent) for p in peers}
        rules[a] = input_rules([p.address for p in peers], scope, "drop", percent)
        with self._rules(rules, scope):
            yield

    @contextmanager
    def cap_bandwidth(self, a, b=None, rate="8mbit", ports=None) -> Iterator[None]:
        """The links between a and b (or every other node) carry at most
        rate each way (tc htb on each sender's egress)."""
        self._require("cap_bandwidth", [a] + ([b] if b else []))
        with self._shaped(a, b, parse_rate(rate), None, self._ports(ports)):
            yield

    @contextmanager
    def delay(self, a, b=None, ms: float = 50, jitter_ms: float = 0, ports=None) -> Iterator[None]:
        """Packets between a and b (or every other node) wait ms (+- jitter)
        each way; tc netem, so only where the nodes' kernel has it."""
        self._require("delay", [a] + ([b] if b else self._others(a)))
        netem = f"delay {ms}ms" + (f" {jitter_ms}ms" if jitter_ms else "")
        with self._shaped(a, b, 10**10, netem, self._ports(ports)):
            yield

    # -- node faults ---------------------------------------------------------------
    @contextmanager
    def kill(self, node) -> Iterator[None]:
        """node is down inside the block, as after a crash (nothing it ran
        says goodbye where the backend can help it), and up again on exit;
        its Node handles start fresh processes on their next call."""
        self._node_wide("kill", node)
        self._backend.stop_node(self._topo, node.spec)
        self._forget(node, "killed by lab.kill")
        try:
            yield
        finally:
            self._backend.start_node(self._topo, node.spec)

    def restart(self, node) -> None:
        """Kill node and start it again."""
        with self.kill(node):
            pass

    @contextmanager
    def pause(self, node) -> Iterator[None]:
        """Every process of node is frozen inside the block (its tasks too:
        do not wait on them there) and resumes on exit."""
        self._node_wide("pause", node)
        self._backend.freeze_node(self._topo, node.spec)
        try:
            yield
        finally:
            self._backend.thaw_node(self._topo, node.spec)

    # -- leftovers ---------------------------------------------------------------------
    def heal(self, log=print) -> None:
        """Undo what faults left on the lab's nodes (a run killed
        mid-fault): their nft tables and tc qdiscs, stopped and paused
        nodes. Every fault of every test: only when no test runs."""
        net = self._backend.net_unavailable(self._topo) is None
        for n in self.lab.nodes:
            for step in (self._backend.start_node, self._backend.thaw_node):
                try:
                    step(self._topo, n.spec)
                except Exception:  # noqa: BLE001 - not stopped, not paused: nothing to undo
                    pass
            if not net:
                continue
            undone = self._heal_net(n)
            if undone:
                log(f"  {n.name}: removed fault leftovers: {', '.join(undone)}")

    def heal_if_idle(self, log=print) -> bool:
        """heal(), unless a test (of any run) holds the lab: then say so."""
        try:
            with self.lock.hold(exclusive=True, timeout=0):
                self.heal(log)
                return True
        except LabBusy:
            log(f"lab {self._topo.name} is in use by a test run: its faults are left alone")
            return False

    def _heal_net(self, node) -> List[str]:
        undone = []
        for line in self._exec(node, ["nft", "list", "tables"], check=False).stdout.splitlines():
            name = line.split()[-1] if line.startswith("table inet ") else ""
            if name.startswith(TABLE_PREFIX):
                self._exec(node, ["nft", "delete", "table", "inet", name], check=False)
                undone.append(f"nft table {name}")
        for line in self._exec(node, ["tc", "qdisc", "show"], check=False).stdout.splitlines():
            m = re.match(rf"qdisc htb {QDISC}: dev (\S+) root", line)
            if m:
                self._exec(node, ["tc", "qdisc", "del", "dev", m.group(1), "root", "handle", f"{QDISC}:"], check=False)
                undone.append(f"tc qdisc {QDISC}: on {m.group(1)}")
        return undone

    # -- helpers ---------------------------------------------------------------------
    def _exec(self, node, argv: List[str], input: Optional[str] = None, check: bool = True):
        r = self._backend.node_exec(self._topo, node.spec, argv, input=input)
        if check and r.returncode != 0:
            raise LabError(f"{node.spec.name}: `{' '.join(argv)}` failed: {(r.stderr or r.stdout).strip()}")
        return r

    def _ports(self, ports) -> PortRange:
        if ports == "all":
            return None
        if ports is None:
            return self.lab.ports.first, self.lab.ports.first + self.lab.ports.span - 1
        if isinstance(ports, int):
            return ports, ports
        if isinstance(ports, range) and ports.step == 1 and len(ports):
            return ports.start, ports.stop - 1
        raise ValueError(f"ports {ports!r}: None (this worker's), 'all', a port, or a range")

    def _others(self, a) -> List:
        return [n for n in self.lab.nodes if n.spec.name != a.spec.name]

    def _name(self, ports: PortRange) -> str:
        return f"{TABLE_PREFIX}{ports[0] if ports else 'all'}_{os.getpid()}_{next(self._serial)}"

    @contextmanager
    def _rules(self, rules: Dict, ports: PortRange) -> Iterator[None]:
        """One nft table per node with its rules, deleted on exit."""
        name = self._name(ports)
        with ExitStack() as undo:
            for node, node_rules in rules.items():
                self._exec(node, ["nft", "-f", "-"], input=nft_table(name, node_rules))
                # a node killed meanwhile (docker) lost the table with its namespace
                undo.callback(self._exec, node, ["nft", "delete", "table", "inet", name], check=False)
            yield

    def _node_wide(self, fault: str, node) -> None:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
        if workers > 1 and not self.exclusive:
            raise LabError(f"lab.{fault}({node.name}) hits everything on the node, the tests of other pytest-xdist "
                           "workers too: mark the test @pytest.mark.lab_exclusive (it then runs alone)")

    def _forget(self, node, why: str) -> None:
        base = self.lab.node(node.spec.name)
        for handle in [base] + list(base._others.values()):  # noqa: SLF001
            handle.lost(why)

    def _dev(self, src, dst) -> str:
        """The device src reaches dst through."""
        key = (src.spec.name, dst.address)
        if key not in self._devs:
            out = self._exec(src, ["ip", "-o", "route", "get", dst.address]).stdout
            m = re.search(r"\bdev (\S+)", out)
            if not m:
                raise LabError(f"{src.spec.name}: no route to {dst.address}: {out.strip()}")
            self._devs[key] = m.group(1)
        return self._devs[key]

    def _minor(self) -> int:
        """A tc class id no other fault uses at once: this worker's slot
        (from its port range) in the high byte, a serial in the low."""
        slot = (self.lab.ports.first // self.lab.ports.span) % 64 + 1  # below 0x4e00: never the root's handle
        return slot << 8 | (next(self._serial) % 255 + 1)

    @contextmanager
    def _shaped(self, a, b, bits: int, netem: Optional[str], ports: PortRange) -> Iterator[None]:
        """Each sender's egress towards its peers through an htb class of
        rate bits (and a netem leaf); removed on exit."""
        peers = [b] if b else self._others(a)
        links = {a: peers}
        for p in peers:
            links[p] = [a]
        minor = self._minor()
        with ExitStack() as undo:
            for src, dsts in links.items():
                dev = self._dev(src, dsts[0])
                with self._tc_lock(src):
                    self._ensure_root(src, dev)
                    undo.callback(self._unshape, src, dev, minor)
                    self._exec(src, ["tc", "-batch", "-"],
                               input=tc_class_script(dev, minor, bits, [d.address for d in dsts], ports, netem))
            yield

    def _tc_lock(self, node):
        # the root qdisc is the node's, shared by every worker's faults
        return _locked(self._locks / f"tc-{node.spec.name}.lock")

    def _ensure_root(self, node, dev: str) -> None:
        shown = self._exec(node, ["tc", "qdisc", "show", "dev", dev]).stdout
        if f"qdisc htb {QDISC}: root" not in shown:
            # unclassified packets go htb's direct way: unshaped
            self._exec(node, ["tc", "qdisc", "add", "dev", dev, "root", "handle", f"{QDISC}:", "htb"])

    def _unshape(self, node, dev: str, minor: int) -> None:
        with self._tc_lock(node):
            for argv in (["filter", "del", "dev", dev, "parent", f"{QDISC}:", "prio", str(minor)],
                         ["class", "del", "dev", dev, "classid", f"{QDISC}:{minor:x}"]):
                self._exec(node, ["tc"] + argv, check=False)  # gone with a killed node
            if not self._exec(node, ["tc", "class", "show", "dev", dev], check=False).stdout.strip():
                self._exec(node, ["tc", "qdisc", "del", "dev", dev, "root", "handle", f"{QDISC}:"], check=False)
