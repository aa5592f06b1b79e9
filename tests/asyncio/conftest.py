"""Fixtures of the asyncio tests: a transport (inproc, ipc, tcp, and
ofi:// on libfabric's tcp provider) and fresh addresses of it, safe under
pytest-xdist (uuids, the test's own tmp_path, port 0)."""
import pytest

from aiohelpers import TRANSPORTS, Addresses, ofi_tcp_missing


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    if request.param == "ofi+tcp":
        why = ofi_tcp_missing()
        if why:
            pytest.skip(why)
    return request.param


@pytest.fixture
def addrs(transport, tmp_path):
    a = Addresses(transport, tmp_path)
    yield a
    a.cleanup()


@pytest.fixture
def url(addrs):
    """One fresh address to bind (then connect to the endpoint's .url)."""
    return addrs.new()
