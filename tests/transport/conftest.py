import pytest

from ofi_providers import IN_PROCESS, TESTED


@pytest.fixture(params=IN_PROCESS)
def provider(request):
    """A provider for a test with both ends in this process (not shm)."""
    return request.param


@pytest.fixture(params=TESTED)
def any_provider(request):
    """A provider for a test whose ends are in different processes."""
    return request.param
