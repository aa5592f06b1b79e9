"""The nodes' state, seen through testinfra (docker://, ssh://, local://,
or a network namespace): nnofi importable, libfabric and its providers
installed, and a port a node binds really listening there."""
import pytest


def node_listen(ctl, url):
    import nnofi
    with nnofi.Rep() as rep:
        rep.bind(url)
        ctl.send("bound")
        ctl.recv()
    return "closed"


def test_nnofi_importable(nodes):
    for n in nodes:
        r = n.host.run(f"{n.python} -c 'import nnofi, nnofi.fabric; print(nnofi.fabric.version())'")
        assert r.rc == 0, f"{n.name}: {r.stderr}"


def test_libfabric_and_providers(nodes):
    for n in nodes:
        if n.host.system_info.distribution not in ("debian", "ubuntu"):
            pytest.skip(f"{n.name} runs {n.host.system_info.distribution}: no dpkg to ask")
        assert n.host.package("libfabric1").is_installed, f"{n.name}: libfabric1 not installed"
        assert n.host.exists("fi_info"), f"{n.name}: no fi_info (libfabric-bin)"
        listed = n.host.check_output("fi_info -l")
        for p in ("tcp", "shm"):
            assert f"{p}:" in listed, f"{n.name}: fi_info -l lacks {p}: {listed}"
        assert n.offers("tcp"), f"{n.name}: nnofi.fabric sees no tcp provider"


def test_bound_port_listens(node_b, lab_port):
    port = lab_port()
    sock = node_b.host.socket(f"tcp://{node_b.address}:{port}")
    assert not sock.is_listening
    task = node_b.spawn(node_listen, f"tcp://{node_b.address}:{port}")
    assert task.recv() == "bound"
    assert sock.is_listening, f"{node_b.name}: nothing listens on {node_b.address}:{port}"
    task.send("close")
    assert task.result() == "closed"
    assert not sock.is_listening
