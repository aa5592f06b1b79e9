"""Fixtures of the protocol tests.

Every test gets fresh addresses of its own (a uuid for inproc, a file in
its own tmp_path for ipc, port 0 for tcp), so the suite is safe under
pytest-xdist. Every socket is made with send and receive timeouts
(protohelpers.OPTS), so a broken core fails a test with nnofi.Timeout
instead of hanging it.
"""
import pytest

from protohelpers import STREAM_TRANSPORTS, TRANSPORTS, Addresses


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture
def addrs(transport, tmp_path):
    """Factory of fresh addresses of the test's transport: addrs.new()."""
    a = Addresses(transport, tmp_path)
    yield a
    a.cleanup()


@pytest.fixture
def new_url(addrs):
    """Factory of fresh addresses: new_url() (the same as addrs.new())."""
    return addrs.new


@pytest.fixture
def url(addrs):
    """One fresh address of the test's transport (tcp: port 0, so bind
    first and connect to ep.url)."""
    return addrs.new()


@pytest.fixture(params=STREAM_TRANSPORTS)
def stream_transport(request):
    return request.param


@pytest.fixture
def stream_addrs(stream_transport, tmp_path):
    """Like addrs, for ipc and tcp only (transports with a real listener)."""
    a = Addresses(stream_transport, tmp_path)
    yield a
    a.cleanup()
