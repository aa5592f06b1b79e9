"""Lab tests whose outcome is known, for the matrix runner's end-to-end
test (test_matrix_run.py names them; pytest collects this file only when
named, as its name does not start with test_)."""
import os

import pytest

SIZES = [int(s) for s in os.environ.get("NNOFI_MATRIX_SIZES", "64").split(",")]


def test_passes(lab_transport):
    assert lab_transport in ("tcp", "ipc") or lab_transport.startswith("ofi+")


def test_fails(lab_transport):
    assert lab_transport == "no such transport", "this cell fails on purpose"


def test_skips(lab_transport):
    pytest.skip("this cell skips on purpose")


@pytest.mark.parametrize("size", SIZES)
def test_measures(lab_transport, size, record_property):
    record_property("latency_us", 12.5)
    record_property("bandwidth_MBps", size / 10)
