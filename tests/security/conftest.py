import os
import sys

import pytest

# The ofi:// provider list the transport tests use (NNOFI_TEST_PROVIDERS).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "transport"))
from ofi_providers import TESTED  # noqa: E402


@pytest.fixture(params=TESTED or [pytest.param(None, marks=pytest.mark.skip(reason="no ofi provider here"))])
def any_provider(request):
    """An ofi provider, for a test whose peer runs in another process."""
    return request.param
