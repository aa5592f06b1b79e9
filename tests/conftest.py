"""Suite-wide checks: which build of the core runs, and that it is the
sanitized one under `make test-asan`."""
import os

import nnofi


def pytest_report_header(config):
    return f"nnofi core: {os.path.dirname(nnofi.__file__)}"


def pytest_sessionstart(session):
    if os.environ.get("NNOFI_EXPECT_SANITIZED") and "build/asan" not in nnofi.__file__:
        raise RuntimeError(f"test-asan must run the sanitized build, got {nnofi.__file__}")
