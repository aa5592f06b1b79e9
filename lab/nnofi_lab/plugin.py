"""pytest plugin (entry point pytest11 `nnofi_lab`): `pytest --lab TOPOLOGY`.

Fixtures:
  lab            the Lab (session; skips the test without --lab)
  nodes          its Node handles; node_a, node_b, node_c: the first three
  lab_transport  "tcp", "ipc" or "ofi+PROVIDER", a parameter over
                 --lab-transports (default tcp,ofi) and the providers the lab's
                 nodes share; skips (with the reason) a provider a node lacks,
                 and shm and ipc across nodes (they reach one node)
  lab_url        lab_url(node) -> a fresh URL of the test's transport on node
  lab_port       lab_port() -> a fresh port (unique per xdist worker)
Markers: @pytest.mark.same_node: the test's ends are processes of one node
(node.process(1)), so shm is tested too. @pytest.mark.lab_exclusive: the
test kills or pauses nodes (lab.kill, lab.pause), which hits every test on
them: it runs while no other lab test does (LabLock: the others hold it
shared, this one alone), in any worker and any run on the same lab.
Without --lab the lab tests are skipped ("no --lab given"); with it, the
controller brings the lab up if it is down, and down again at the end
(unless --lab-keep).
"""
from __future__ import annotations

import os

import pytest

_STATE = {}


def pytest_addoption(parser):
    g = parser.getgroup("nnofi-lab", "nnofi's multi-node lab")
    g.addoption("--lab", metavar="TOPOLOGY", default=None,
                help="run the lab tests on this lab: a name in lab/topologies (local, netns, laptop, "
                     "laptop-ssh, ...) or a .yaml path")
    g.addoption("--lab-keep", action="store_true",
                help="leave up a lab this run had to bring up (default: bring it down again)")
    g.addoption("--lab-timeout", type=float, default=60.0, metavar="S",
                help="longest a remote call may run before its node process is killed (default 60)")
    g.addoption("--lab-providers", default=os.environ.get("NNOFI_LAB_PROVIDERS"), metavar="P,P",
                help="these providers, the topology's or not (a node lacking one skips, saying so); "
                     "default: the topology's; env NNOFI_LAB_PROVIDERS")
    g.addoption("--lab-transports", default=os.environ.get("NNOFI_LAB_TRANSPORTS", "tcp,ofi"), metavar="T,T",
                help="what lab_transport runs over: tcp, ipc (same-node tests only), ofi (with each provider); "
                     "default tcp,ofi; env NNOFI_LAB_TRANSPORTS")


def _topology(config):
    name = config.getoption("--lab")
    if not name:
        return None
    if "topology" not in _STATE:
        from . import lab, topology
        if name == "auto":  # what `lab up` chose last, else what this machine can run
            from .backends.base import lab_root
            from .cli import choose
            cur = lab_root() / "current"
            name = cur.read_text().strip() if cur.exists() else choose(lambda s: None)
        try:
            topo = topology.load(name)
        except topology.TopologyError as e:
            raise pytest.UsageError(f"--lab {name}: {e}") from None
        count = lab.saved_node_count(topo.name)
        _STATE["topology"] = topo.resized(count) if count and count != len(topo.nodes) else topo
    return _STATE["topology"]


def _providers(config):
    from .topology import DEFAULT_PROVIDERS
    topo = _topology(config)
    provs = topo.providers if topo else DEFAULT_PROVIDERS
    wanted = config.getoption("--lab-providers")
    return wanted.split(",") if wanted else provs


def _transports(config):
    """lab_transport's values: "tcp", "ipc", "ofi+PROVIDER" per provider."""
    kinds = config.getoption("--lab-transports").split(",")
    unknown = set(kinds) - {"tcp", "ipc", "ofi"}
    if unknown:
        raise pytest.UsageError(f"--lab-transports: {', '.join(sorted(unknown))}: the transports are tcp, ipc, ofi")
    return [t for k in kinds for t in ([f"ofi+{p}" for p in _providers(config)] if k == "ofi" else [k])]


def pytest_configure(config):
    config.addinivalue_line("markers", "same_node: the test's ends are processes of one lab node")
    config.addinivalue_line("markers", "lab_exclusive: the test kills or pauses lab nodes; no other lab test "
                                       "runs meanwhile")
    _topology(config)  # a bad --lab is a usage error at once


def pytest_report_header(config):
    topo = _topology(config)
    if topo:
        return (f"nnofi lab: {topo.name} ({topo.backend}, {topo.source}): "
                + ", ".join(f"{n.name}={n.address}" for n in topo.nodes))
    return None


def _controller(config):
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session):
    config = session.config
    topo = _topology(config)
    if topo is None or not _controller(config):
        return
    from .lab import Lab
    lab = Lab(topo)
    why = lab.backend.unavailable()
    if why:
        raise pytest.UsageError(f"--lab {topo.name}: the {topo.backend} backend is not usable here: {why}")
    tr = config.pluginmanager.get_plugin("terminalreporter")
    log = (lambda s: tr.write_line(s)) if tr else print
    if topo.provided_by:  # an ssh lab on another lab's nodes: that one first
        provider = Lab.load(topo.provided_by)
        if not provider.is_up():
            log(f"nnofi lab: bringing up {provider.topology.name} ({provider.topology.backend}) for {topo.name}")
            provider.up(log)
            _STATE["brought_up_provider"] = provider
    if not lab.is_up():
        log(f"nnofi lab: bringing up {topo.name} ({topo.backend})")
        lab.up(log)
        _STATE["brought_up"] = lab
    else:
        lab.faults.heal_if_idle(log)  # what a killed run left would break this run's tests
        lab.close()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    for key in ("brought_up", "brought_up_provider"):
        lab = _STATE.pop(key, None)
        if lab is not None and not session.config.getoption("--lab-keep"):
            lab.down(lambda s: None)


def pytest_generate_tests(metafunc):
    if "lab_transport" in metafunc.fixturenames:
        values = _transports(metafunc.config)
        metafunc.parametrize("lab_transport", values, indirect=True,
                             ids=[v.replace("+", "-") for v in values])


@pytest.fixture(scope="session")
def lab(request):
    topo = _topology(request.config)
    if topo is None:
        pytest.skip("no --lab given")
    from .lab import Lab
    the_lab = Lab(topo, timeout=request.config.getoption("--lab-timeout"))
    yield the_lab
    the_lab.close()


@pytest.fixture(scope="session")
def nodes(lab):
    return lab.nodes


def _nth(lab, i):
    if len(lab.nodes) <= i:
        pytest.skip(f"the test needs {i + 1} nodes; lab {lab.topology.name} has {len(lab.nodes)}")
    return lab.nodes[i]


@pytest.fixture
def node_a(lab):
    return _nth(lab, 0)


@pytest.fixture
def node_b(lab):
    return _nth(lab, 1)


@pytest.fixture
def node_c(lab):
    return _nth(lab, 2)


@pytest.fixture
def lab_transport(request, lab):
    transport = request.param
    if transport == "ipc" and request.node.get_closest_marker("same_node") is None:
        pytest.skip("ipc reaches only processes of one node (a Unix socket file); this test spans nodes")
    if transport.startswith("ofi+"):
        provider = transport[4:]
        same = request.node.get_closest_marker("same_node") is not None
        if provider == "shm" and not same:
            pytest.skip("shm reaches only processes of one node (shared memory); this test spans nodes")
        why = lab.missing(provider, lab.nodes[:1] if same else None)
        if why:
            pytest.skip(why)
    return transport


@pytest.fixture
def lab_port(lab):
    return lab.ports.next


@pytest.fixture
def lab_url(lab, lab_transport):
    def url(node, port=None):
        return lab.url(lab_transport, node, port)
    return url


@pytest.fixture(autouse=True)
def _lab_guard(request):
    """A lab test holds the lab's LabLock (alone if marked lab_exclusive)
    for its run; after it, nothing it spawned may still run (else it is
    killed, and the test errors)."""
    if "lab" not in request.fixturenames:
        yield
        return
    the_lab = request.getfixturevalue("lab")
    exclusive = request.node.get_closest_marker("lab_exclusive") is not None
    with the_lab.faults.lock.hold(exclusive):
        the_lab.faults.exclusive = exclusive
        try:
            yield
            _no_leftovers(the_lab)
        finally:
            the_lab.faults.exclusive = False


def _no_leftovers(the_lab):
    left = []
    for n in the_lab.nodes:
        for proc in [n] + list(n._others.values()):  # noqa: SLF001
            running = proc.running()
            if running:
                left += running
                proc.reset("left running by the test")
    if left:
        pytest.fail(f"the test left tasks running (now killed): {left}", pytrace=False)
