"""pytest plugin (entry point pytest11 `nnofi_lab`): `pytest --lab TOPOLOGY`.

Fixtures:
  lab            the Lab (session; skips the test without --lab)
  nodes          its Node handles; node_a, node_b, node_c: the first three
  lab_transport  "tcp" or "ofi+PROVIDER", a parameter over the providers the
                 lab's nodes share; skips (with the reason) a provider a node
                 lacks, and shm across nodes (shared memory reaches one node)
  lab_url        lab_url(node) -> a fresh URL of the test's transport on node
  lab_port       lab_port() -> a fresh port (unique per xdist worker)
Marker: @pytest.mark.same_node: the test's ends are processes of one node
(node.process(1)), so shm is tested too.
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
                help="only these providers (default: the topology's; env NNOFI_LAB_PROVIDERS)")


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
    if wanted:
        provs = [p for p in provs if p in wanted.split(",")]
    return provs


def pytest_configure(config):
    config.addinivalue_line("markers", "same_node: the test's ends are processes of one lab node")
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
        lab.close()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    for key in ("brought_up", "brought_up_provider"):
        lab = _STATE.pop(key, None)
        if lab is not None and not session.config.getoption("--lab-keep"):
            lab.down(lambda s: None)


def pytest_generate_tests(metafunc):
    if "lab_transport" in metafunc.fixturenames:
        values = ["tcp"] + [f"ofi+{p}" for p in _providers(metafunc.config)]
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
def _lab_leftovers(request):
    """After a lab test: nothing it spawned may still run (else it is
    killed, and the test errors)."""
    yield
    if "lab" not in request.fixturenames:
        return
    the_lab = request.getfixturevalue("lab")
    left = []
    for n in the_lab.nodes:
        for proc in [n] + list(n._others.values()):  # noqa: SLF001
            running = proc.running()
            if running:
                left += running
                proc.reset("left running by the test")
    if left:
        pytest.fail(f"the test left tasks running (now killed): {left}", pytrace=False)
