"""Fault tests run over tcp:// and ofi:// with libfabric's tcp provider
(NNOFI_FAULT_TRANSPORTS=tcp,ofi+tcp,ofi+tcp;ofi_rxm chooses others)."""
import os

import pytest

TRANSPORTS = os.environ.get("NNOFI_FAULT_TRANSPORTS", "tcp,ofi+tcp").split(",")


def pytest_generate_tests(metafunc):
    if "transport" in metafunc.fixturenames:
        metafunc.parametrize("transport", TRANSPORTS, ids=[t.replace("+", "-") for t in TRANSPORTS])


@pytest.fixture
def url(lab, transport):
    """url(node) -> a fresh URL of the test's transport on node."""
    if transport.startswith("ofi+"):
        why = lab.missing(transport[4:])
        if why:
            pytest.skip(why)
    return lambda node: lab.url(transport, node)


def _core():
    import nnofi

    with open("/proc/self/maps") as f:
        return nnofi.__file__, "libasan" in f.read()


@pytest.fixture(autouse=True, scope="session")
def _nodes_run_the_sanitized_core(request):
    """Under `make test-asan` the nodes (netns: the host's Python, this
    environment) must run the sanitized build too."""
    if not os.environ.get("NNOFI_EXPECT_SANITIZED") or not request.config.getoption("--lab", None):
        return
    for node in request.getfixturevalue("lab").nodes:
        path, asan = node.run(_core)
        assert "build/asan" in path and asan, f"{node.name} runs {path} (ASan loaded: {asan})"
