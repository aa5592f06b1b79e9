"""The lab harness itself, on the local backend: runs in every `make test`
(no --lab needed). Topology validation, node.run/spawn results, remote
exceptions with their traceback, timeouts, what cannot be shipped."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnofi_lab import Lab, LabTimeout, RemoteError, ShippingError, TopologyError, topology, transport_url
from nnofi_lab.ports import Ports

ROOT = Path(__file__).resolve().parents[2]

# A lab of its own (not `local`), so `lab down` of the local lab never
# touches a test run, and the other way round.
HARNESS = {"name": "harness", "backend": "local",
           "nodes": [{"name": "h1", "address": "127.0.0.21"}, {"name": "h2", "address": "127.0.0.22"}]}


@pytest.fixture(scope="module")
def hlab():
    with Lab(topology.parse(HARNESS, source="harness"), timeout=20) as lab:
        yield lab


# -- topologies -----------------------------------------------------------------
@pytest.mark.parametrize("name", topology.names())
def test_shipped_topologies_load(name):
    t = topology.load(name)
    assert t.name == name and t.nodes and t.backend in topology.BACKENDS


def test_the_four_backends_are_shipped():
    backends = {topology.load(n).backend for n in topology.names()}
    assert backends == {"local", "netns", "docker", "ssh"}


@pytest.mark.parametrize("change, error", [
    ({"backend": "vagrant"}, "backend: 'vagrant' is not one of local, netns, docker, ssh"),
    ({"nodes": []}, "nodes: expected a non-empty list"),
    ({"nodes": [{"name": "a", "address": "127.0.0.300"}]}, "nodes[0].address: '127.0.0.300' is not an IPv4 address"),
    ({"nodes": [{"name": "a", "address": "10.0.0.1"}]}, "a local lab's nodes live in 127.0.0.0/8"),
    ({"nodes": [{"name": "a", "address": "127.0.0.2"}, {"name": "a", "address": "127.0.0.3"}]},
     "nodes[1].name: 'a' is already nodes[0]"),
    ({"nodes": [{"name": "a", "address": "127.0.0.2"}, {"name": "b", "address": "127.0.0.2"}]},
     "nodes[1].address: 127.0.0.2 is already the address of nodes[0]"),
    ({"nodes": [{"name": "a", "address": "127.0.0.2", "cpu": 4}]}, "nodes[0]: unknown key(s) cpu"),
    ({"providers": "tcp"}, "providers: expected a list of provider names"),
    ({"colour": "red"}, "colour: unknown key(s)"),
    ({"name": "Bad Name"}, "name: 'Bad Name' is not a lab name"),
    ({"identity": "~/.ssh/id"}, "identity: only an ssh lab has identity"),
])
def test_topology_errors_name_the_field(change, error):
    data = dict(HARNESS, **change)
    with pytest.raises(TopologyError) as e:
        topology.parse(data, source="bad.yaml")
    assert str(e.value).startswith("bad.yaml: ") and error in str(e.value), str(e.value)


def test_docker_and_netns_need_a_subnet_that_holds_the_nodes():
    with pytest.raises(TopologyError, match="subnet: a docker lab needs a subnet"):
        topology.parse({"backend": "docker", "nodes": [{"name": "a", "address": "10.0.0.5"}]})
    with pytest.raises(TopologyError, match=r"10.1.0.5 is not in the lab's subnet 10.0.0.0/24"):
        topology.parse({"backend": "netns", "subnet": "10.0.0.0/24", "nodes": [{"name": "a", "address": "10.1.0.5"}]})


def test_unknown_topology_lists_the_known_ones():
    with pytest.raises(TopologyError, match="no topology named 'nope': known are .*laptop.*local"):
        topology.load("nope")


def test_invalid_yaml(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("backend: [local\n")
    with pytest.raises(TopologyError, match="broken.yaml: not valid YAML"):
        topology.load(str(f))


def test_resized_adds_nodes_after_the_last_address():
    t = topology.load("netns").resized(5)
    assert [n.name for n in t.nodes] == ["node1", "node2", "node3", "node4", "node5"]
    assert [n.address for n in t.nodes][3:] == ["10.77.0.14", "10.77.0.15"]
    assert len(topology.load("netns").resized(2).nodes) == 2
    with pytest.raises(TopologyError, match="cannot grow"):
        topology.load("cluster").resized(9)


def test_shared_providers_and_urls():
    t = topology.parse(dict(HARNESS, providers=["tcp", "shm"],
                            nodes=[{"name": "a", "address": "127.0.0.2"},
                                   {"name": "b", "address": "127.0.0.3", "providers": ["tcp"]}]))
    assert t.shared_providers() == ["tcp"]
    assert transport_url("tcp", "10.0.0.1", 5) == "tcp://10.0.0.1:5"
    assert transport_url("ofi+tcp;ofi_rxm", "10.0.0.1", 5) == "ofi://10.0.0.1:5@tcp;ofi_rxm"
    assert transport_url("ipc", "10.0.0.1", 5) == "ipc:///tmp/nnofi-lab-10.0.0.1-5.ipc"


def test_ports_are_disjoint_per_xdist_worker():
    a, b = Ports("gw0", base=20000), Ports("gw1", base=20000)
    pa = {a.next() for _ in range(Ports("gw0").span)}
    pb = {b.next() for _ in range(10)}
    assert len(pa) == a.span and not pa & pb


# -- running code on nodes --------------------------------------------------------
def add(x, y=0):
    return x + y


def values():
    return {"bytes": b"\x00\xff", "list": [1, 2.5, None, True], "tuple": ("a", 1), "set": {1, 2}}


def divide(x):
    return helper_divide(1, x)


def helper_divide(a, b):
    return a / b


def raise_nnofi_timeout():
    import nnofi
    with nnofi.Pair(recv_timeout=10) as p:
        p.bind("inproc://harness-timeout")
        p.recv()


def where():
    import os
    import socket
    return os.getpid(), socket.gethostname()


def sleep(seconds):
    import time
    time.sleep(seconds)
    return "woke"


def echo_twice(ctl, prefix):
    first = ctl.recv(timeout=10)
    ctl.send(prefix + first)
    ctl.send(prefix + ctl.recv(timeout=10))
    return "done"


def uses_missing_module():
    import this_module_does_not_exist_anywhere  # noqa: F401


def returns_object():
    return object()


def test_run_returns_values(hlab):
    h1 = hlab.nodes[0]
    assert h1.run(add, 2, y=3) == 5
    assert h1.run(values) == values()


def test_run_on_two_nodes_is_two_processes(hlab):
    (p1, _), (p2, _) = [n.run(where) for n in hlab.nodes]
    assert p1 != p2 and os.getpid() not in (p1, p2)
    assert hlab.nodes[0].process(1).run(where)[0] not in (p1, p2)


def test_remote_exception_has_the_remote_traceback(hlab):
    with pytest.raises(RemoteError) as e:
        hlab.nodes[1].run(divide, 0)
    err = e.value
    assert err.kind == "ZeroDivisionError" and err.node == "h2" and err.func == "divide"
    tb = err.remote_traceback
    assert f'File "{__file__}"' in tb and "in helper_divide" in tb and "return a / b" in tb, tb
    assert "division by zero" in str(err) and "on node h2" in str(err)
    assert hlab.nodes[1].run(divide, 4) == 0.25  # the node lives on


def test_remote_nnofi_exception_keeps_its_type_name(hlab):
    with pytest.raises(RemoteError) as e:
        hlab.nodes[0].run(raise_nnofi_timeout)
    assert e.value.kind.endswith("Timeout"), e.value.kind


def test_timeout_kills_the_call_and_the_node_recovers(hlab):
    h1 = hlab.nodes[0]
    pid = h1.pid
    t0 = time.monotonic()
    with pytest.raises(LabTimeout, match="sleep on node h1 still running after 1"):
        h1.run(sleep, 60, timeout=1)
    assert time.monotonic() - t0 < 10
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "the timed-out node process still runs"
    assert h1.run(sleep, 0) == "woke" and h1.pid != pid


def test_spawn_talks_through_ctl(hlab):
    t = hlab.nodes[1].spawn(echo_twice, "re:")
    t.send("one")
    assert t.recv() == "re:one"
    t.send("two")
    assert t.recv() == "re:two"
    assert t.result(timeout=10) == "done"


def test_recv_times_out_without_killing(hlab):
    t = hlab.nodes[1].spawn(echo_twice, "x")
    with pytest.raises(LabTimeout, match="no message within 0.2s"):
        t.recv(timeout=0.2)
    t.send("a")
    assert t.recv() == "xa"
    t.send("b")
    assert t.recv() == "xb" and t.result() == "done"


def test_missing_module_on_the_node(hlab):
    with pytest.raises(RemoteError, match="No module named 'this_module_does_not_exist_anywhere'"):
        hlab.nodes[0].run(uses_missing_module)


def test_what_cannot_be_shipped(hlab):
    h1 = hlab.nodes[0]
    local = 3

    def closure():
        return local
    with pytest.raises(ShippingError, match="uses variables of an enclosing function"):
        h1.run(closure)
    with pytest.raises(ShippingError, match="lambda"):
        h1.run(lambda: 1)
    with pytest.raises(ShippingError, match="arguments of add cannot be sent"):
        h1.run(add, object())
    with pytest.raises(RemoteError, match="the result .object. cannot be sent back"):
        h1.run(returns_object)


def test_status_of_the_local_backend(hlab):
    assert hlab.is_up()
    assert [r["address"] for r in hlab.status()] == ["127.0.0.21", "127.0.0.22"]
    assert hlab.nodes[0].offers("tcp")


def test_lab_tests_skip_without_lab():
    # -P: the cwd (the source tree) must not shadow PYTHONPATH's build
    # (test-asan's sanitized one)
    safe_path = ["-P"] if sys.version_info >= (3, 11) else []
    r = subprocess.run([sys.executable, *safe_path, "-m", "pytest", "-q", "-p", "no:xdist", "-rs",
                        str(ROOT / "tests" / "lab" / "test_lab_pair.py")],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no --lab given" in r.stdout and "passed" not in r.stdout, r.stdout


def test_cli_status_prints_the_table():
    env = dict(os.environ, NNOFI_LAB_TOPOLOGIES=str(ROOT / "lab" / "topologies"))
    r = subprocess.run([sys.executable, "-m", "nnofi_lab", "status", "--topology", "local"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node1  127.0.0.11  up" in r.stdout and "tcp" in r.stdout, r.stdout


def test_auto_falls_back_to_netns_then_local(monkeypatch):
    from nnofi_lab import cli
    from nnofi_lab.backends.docker import DockerBackend
    from nnofi_lab.backends.netns import NetnsBackend
    said = []
    monkeypatch.setattr(DockerBackend, "unavailable", lambda self: "no Docker engine (test)")
    monkeypatch.setattr(NetnsBackend, "unavailable", lambda self: None)
    assert cli.choose(said.append) == "netns"
    monkeypatch.setattr(NetnsBackend, "unavailable", lambda self: "network namespaces need root")
    assert cli.choose(said.append) == "local"
    assert said == ["backend docker not usable: no Docker engine (test); falling back",
                    "backend: netns (topology netns)",
                    "backend docker not usable: no Docker engine (test); falling back",
                    "backend netns not usable: network namespaces need root; falling back",
                    "backend: local (topology local)"]
