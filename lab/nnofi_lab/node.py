"""Node handles: run Python functions on a lab node through an execnet
gateway, get their results back, and their exceptions with the node's
traceback; every wait has a deadline.

    node.run(func, *args, timeout=None, **kwargs) -> func's return value
    task = node.spawn(func, *args, **kwargs)       # runs in the background
    task.recv(timeout) / task.send(obj)            # func(ctl, ...) talks to the test
    task.result(timeout)                           # its return value, or RemoteError
    node.process(1)                                # a second process on the same node
    node.host                                      # a testinfra Host of the node
"""
from __future__ import annotations

import linecache
import threading
import time
from typing import Any, List, Optional

import execnet

from . import remote_runner, shipping

DEFAULT_TIMEOUT = 60.0


class LabError(RuntimeError):
    """The lab itself failed: a node unreachable, a gateway gone."""


class LabTimeout(LabError, TimeoutError):
    """A remote call did not finish in time (its node process was killed)."""


class RemoteError(Exception):
    """An exception raised by a function running on a node. `kind` is its
    type's name (e.g. "ZeroDivisionError", "nnofi.errors.Timeout"),
    `remote_traceback` the node's traceback, rendered with this side's
    source lines."""

    def __init__(self, node: str, func: str, kind: str, message: str, frames, text: str = ""):
        self.node, self.func, self.kind, self.message = node, func, kind, message
        self.frames = [tuple(f) for f in frames]
        self.remote_text = text
        super().__init__(str(self))

    @property
    def remote_traceback(self) -> str:
        lines = ["Traceback on node %s (most recent call last):" % self.node]
        for filename, lineno, name, line in self.frames:
            lines.append(f'  File "{filename}", line {lineno}, in {name}')
            line = line or linecache.getline(filename, lineno).strip()
            if line:
                lines.append(f"    {line}")
        lines.append(f"{self.kind}: {self.message}" if self.message else self.kind)
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message} (on node {self.node}, in {self.func})\n{self.remote_traceback}"


class Task:
    """A function running on a node (from Node.spawn)."""

    def __init__(self, node: "Node", func, channel, timeout: float) -> None:
        self.node = node
        self.name = func.__name__
        self._channel = channel
        self._timeout = timeout
        self._messages: List[Any] = []
        self._final = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "done" if self._final else "running"
        return f"<Task {self.name} on {self.node.name} {state}>"

    def _next(self, timeout: float, what: str) -> None:
        """Receive one item into _messages or _final."""
        try:
            item = self._channel.receive(timeout)
        except self._channel.TimeoutError:
            raise LabTimeout(f"{self.name} on node {self.node.name}: no {what} within {timeout:.3g}s") from None
        except (EOFError, OSError, self._channel.RemoteError) as e:
            self._final = ("gone", str(e) or type(e).__name__)
            return
        if item[0] == "msg":
            self._messages.append(item[1])
        else:
            self._final = item

    def _raise_final(self) -> Any:
        kind = self._final[0]
        if kind == "ok":
            return self._final[1]
        if kind == "err":
            _, etype, message, frames, text = self._final
            raise RemoteError(self.node.name, self.name, etype, message, frames, text)
        raise LabError(f"{self.name} on node {self.node.name}: the node's process went away ({self._final[1]})")

    def done(self) -> bool:
        if self._final is None:
            with self._lock:
                while self._final is None:
                    try:
                        self._next(0, "result")
                    except LabTimeout:
                        break
        return self._final is not None

    def recv(self, timeout: Optional[float] = None) -> Any:
        """The next object the function sent with ctl.send(). If it ended
        instead, its exception (or a LabError saying it returned)."""
        wait = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._lock:
            while not self._messages and self._final is None:
                self._next(max(0.0, deadline - time.monotonic()), "message")
            if self._messages:
                return self._messages.pop(0)
        self._raise_final()
        raise LabError(f"{self.name} on node {self.node.name} returned without sending a message")

    def send(self, obj: Any) -> None:
        """Give the function an object (it takes it with ctl.recv())."""
        try:
            self._channel.send(obj)
        except (OSError, ValueError) as e:
            raise LabError(f"{self.name} on node {self.node.name}: cannot send ({e})") from None

    def result(self, timeout: Optional[float] = None) -> Any:
        """Wait for the function's return value; a RemoteError if it
        raised; LabTimeout (and the node's process killed) if it is still
        running after timeout seconds."""
        wait = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._lock:
            while self._final is None:
                try:
                    self._next(max(0.0, deadline - time.monotonic()), "result")
                except LabTimeout:
                    self.node.reset(f"{self.name} still running after {wait}s")
                    raise LabTimeout(f"{self.name} on node {self.node.name} still running after {wait}s: "
                                     "its node process was killed") from None
        return self._raise_final()


def _whoami():
    import os
    import socket
    import sys
    return {"pid": os.getpid(), "hostname": socket.gethostname(), "python": sys.executable}


def _fabric():
    import nnofi.fabric
    return sorted({(p.provider, p.ep_type) for p in nnofi.fabric.providers()})


def _kill(pid):
    import os
    import signal
    os.kill(pid, signal.SIGKILL)


class Node:
    """One process on one lab node (node.process(k) gives another)."""

    def __init__(self, lab, spec, index: int, process: int = 0) -> None:
        self.lab = lab
        self.spec = spec
        self.index = index
        self.process_index = process
        self.name = spec.name if process == 0 else f"{spec.name}/{process}"
        self.address = spec.address
        self._gw = None
        self._info = None
        self._fabric = None
        self._host = None
        self._tasks: List[Task] = []
        self._others = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.address} ({self.lab.topology.backend})>"

    @property
    def spec_string(self) -> str:
        return self.lab.backend.gateway_spec(self.lab.topology, self.spec)

    def _make_gateway(self, gid: str):
        spec = f"{self.spec_string}//id={gid}"
        try:
            return self.lab.group.makegateway(spec)
        except Exception as e:  # noqa: BLE001 - execnet raises many kinds
            raise LabError(f"node {self.name}: cannot start a gateway ({spec}): {e}") from None

    def gateway(self):
        with self._lock:
            if self._gw is not None and _exited(self._gw):  # killed with its node (a fault)
                self.lost("its process exited")
            if self._gw is None:
                gid = f"{self.lab.topology.name}-{self.name}-{next(self.lab.gateway_ids)}"
                gw = self._make_gateway(gid)
                ch = gw.remote_exec(remote_runner)
                ch.send({"bundle": shipping.bundle(_whoami), "args": [], "kwargs": {}, "ctl": False})
                try:
                    item = ch.receive(self.lab.connect_timeout)
                except Exception as e:  # noqa: BLE001
                    gw.exit()
                    raise LabError(f"node {self.name}: the gateway does not answer ({e})") from None
                if item[0] != "ok":
                    raise LabError(f"node {self.name}: the gateway cannot run Python: {item}")
                self._gw, self._info = gw, item[1]
            return self._gw

    @property
    def python(self) -> str:
        """The node's interpreter (its sys.executable)."""
        self.gateway()
        return self._info["python"]

    @property
    def hostname(self) -> str:
        self.gateway()
        return self._info["hostname"]

    @property
    def pid(self) -> int:
        self.gateway()
        return self._info["pid"]

    def spawn(self, func, *args, timeout: Optional[float] = None, **kwargs) -> Task:
        """Start func(*args, **kwargs) on the node (func(ctl, *args, ...)
        when its first parameter is named ctl); returns a Task."""
        bundle = shipping.bundle(func)
        ch = self.gateway().remote_exec(remote_runner)
        try:
            ch.send({"bundle": bundle, "args": list(args), "kwargs": kwargs, "ctl": shipping.wants_ctl(func)})
        except Exception as e:  # noqa: BLE001 - execnet's DumpError for odd arguments
            ch.close()
            raise shipping.ShippingError(f"arguments of {func.__name__} cannot be sent to a node ({e}): pass "
                                         "str, bytes, numbers, None, bool, or lists/tuples/dicts of them") from None
        task = Task(self, func, ch, self.lab.timeout if timeout is None else timeout)
        with self._lock:
            self._tasks = [t for t in self._tasks if t._final is None]
            self._tasks.append(task)
        return task

    def run(self, func, *args, timeout: Optional[float] = None, **kwargs) -> Any:
        """func(*args, **kwargs) on the node; its return value."""
        return self.spawn(func, *args, timeout=timeout, **kwargs).result()

    def running(self) -> List[Task]:
        with self._lock:
            return [t for t in self._tasks if not t.done()]

    def process(self, k: int = 1) -> "Node":
        """Another process on the same node (k = 1, 2, ...): for tests whose
        ends must be in different processes of one node (shm)."""
        if k == 0:
            return self
        base = self if self.process_index == 0 else self.lab.node(self.spec.name)
        with base._lock:
            if k not in base._others:
                base._others[k] = Node(self.lab, self.spec, self.index, process=k)
            return base._others[k]

    def fabric(self) -> List[tuple]:
        """(provider, endpoint type) pairs libfabric offers on the node."""
        if self._fabric is None:
            self._fabric = [tuple(p) for p in self.run(_fabric)]
        return self._fabric

    def offers(self, provider: str) -> bool:
        return any(p == provider for p, _ in self.fabric())

    @property
    def host(self):
        """A testinfra Host for the node (package, socket, file, ...)."""
        if self._host is None:
            self._host = self.lab.backend.testinfra_host(self.lab.topology, self.spec)
        return self._host

    def reset(self, why: str = "") -> None:
        """Kill the node's process (and whatever runs in it); the next call
        starts a fresh one."""
        with self._lock:
            gw, info, self._gw, self._info = self._gw, self._info, None, None
            tasks, self._tasks = self._tasks, []
        if gw is None:
            return
        for t in tasks:
            if t._final is None:
                t._final = ("gone", f"killed: {why}" if why else "killed")
        try:
            killer = self._make_gateway(f"{gw.id}-killer")
            try:
                killer.remote_exec(remote_runner).send(
                    {"bundle": shipping.bundle(_kill), "args": [info["pid"]], "kwargs": {}, "ctl": False})
                time.sleep(0.1)
            finally:
                killer.exit()
                _reap(killer)
        except Exception:  # noqa: BLE001 - the process may be gone already
            pass
        _reap(gw)

    def lost(self, why: str) -> None:
        """Forget a process that died with its node (a fault killed it):
        its tasks end as gone, the next call starts a fresh one."""
        with self._lock:
            gw, self._gw, self._info = self._gw, None, None
            tasks, self._tasks = self._tasks, []
        for t in tasks:
            if t._final is None:
                t._final = ("gone", why)
        if gw is not None:
            _reap(gw)

    def close(self) -> None:
        """Stop the node's process: politely if nothing runs, else by kill."""
        for other in list(self._others.values()):
            other.close()
        with self._lock:
            gw = self._gw
        if gw is None:
            return
        if self.running():
            self.reset("closed with tasks running")
            return
        with self._lock:
            self._gw = None
        try:
            gw.exit()
        except Exception:  # noqa: BLE001
            pass
        _reap(gw)


def _exited(gw) -> bool:
    """Has the gateway's local process (popen, docker exec, ssh) ended?"""
    popen = getattr(getattr(gw, "_io", None), "popen", None)
    return popen is not None and popen.poll() is not None


def _reap(gw, timeout: float = 5.0) -> None:
    """Wait for the gateway's local process (popen, docker exec, ssh);
    kill it after timeout."""
    popen = getattr(getattr(gw, "_io", None), "popen", None)
    if popen is None:
        return
    try:
        popen.wait(timeout)
    except Exception:  # noqa: BLE001
        popen.kill()
        try:
            popen.wait(timeout)
        except Exception:  # noqa: BLE001
            pass
    try:
        gw._group._unregister(gw)  # noqa: SLF001 - keep the group's list short
    except Exception:  # noqa: BLE001
        pass
