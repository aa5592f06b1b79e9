"""The guarantee tests' bookkeeping, on made-up receipts (no lab): each
broken promise is caught."""
import pytest

from faultcheck import RESUME_N, Ledger, check, tally
from faultnode import make_message, read_message


def ledger(family, sent, got, after_heal, **counts):
    led = Ledger(family, "test", sent=sent, **counts)
    tally(led, "p", [("p", s) if isinstance(s, int) else s for s in got], after_heal)
    return led


def test_a_clean_run_passes():
    led = ledger("pipeline", 30, range(30), 10)
    assert (led.dropped, led.duplicated, led.out_of_order, led.resumed) == (0, 0, 0, 20)
    check(led, breaks_connections=False)


@pytest.mark.parametrize("family, got, breaks, counts, broken", [
    ("pipeline", range(29), False, {}, "lost messages on a live connection"),
    ("pipeline", [*range(5), *range(8, 30)], True, {}, None),  # lost in the broken connection: allowed
    ("pipeline", [*range(12), *range(13, 30)], True, {}, "lost messages after the reconnect"),
    ("pair", [*range(30), 29], False, {}, "duplicated"),
    ("pubsub", [0, 2, 1, *range(3, 30)], False, {}, "reordered"),
    ("bus", [("q", 0), *range(30)], False, {}, "foreign"),
    ("pubsub", [*range(20), *range(25, 30)], False, {"counted_drops": 5}, None),
    ("pubsub", [*range(20), *range(25, 30)], False, {"counted_drops": 4}, "drops the sockets did not count"),
    ("reqrep", range(29), True, {}, "a request went unanswered"),
    ("reqrep", range(30), False, {"bystander_unanswered": 1}, "a request went unanswered"),
    ("reqrep", range(30), False, {"wrong": 1}, "an answer reached the wrong question"),
    ("survey", [*range(10), *range(12, 30)], True, {}, None),  # unanswered surveys: allowed
    ("survey", range(30), False, {"corrupt": 1}, "corrupt"),
    ("pipeline", range(10 + RESUME_N - 1), True, {}, "did not resume"),  # sent 30: also lost, but first this
])
def test_each_broken_promise_is_caught(family, got, breaks, counts, broken):
    led = ledger(family, 30, got, 10, **counts)
    if broken is None:
        check(led, breaks)
    else:
        with pytest.raises(AssertionError, match=broken):
            check(led, breaks)


def test_messages_carry_what_makes_them_checkable():
    m = make_message("node2-pipeline", 63)
    assert len(m) > 100_000 and read_message(m) == ("node2-pipeline", 63)
    assert read_message(m[:-1] + b"?") is None and read_message(b"garbage") is None
