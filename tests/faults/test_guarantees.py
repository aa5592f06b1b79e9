"""Each fault x each protocol family (pipeline, pair, reqrep, pubsub,
survey, bus) x tcp:// and ofi+tcp: traffic runs from node_b to node_a
(for REQ/REP also from a bystander REQ on node_c), the fault hits node_a
(or its link to node_b) for HOLD_S while messages are in flight, and the
ledger of what was sent, received, dropped and duplicated is held to the
protocol's promise (faultcheck.check; README, "Guarantees under
faults"). Traffic must resume after every heal."""
import time

import pytest

from faultcheck import FAMILIES, HOLD_S, Traffic, check, need

pytestmark = pytest.mark.parametrize("family", FAMILIES)
BLOCKING = ("pipeline", "pair")  # their senders wait for a stalled peer rather than drop


def across(lab, family, fault, fault_block, victim, peer, url, breaks_connections):
    """Traffic across fault_block() held for HOLD_S; the checked ledger."""
    t = Traffic(family, fault, victim, peer, url(victim), bystander=bystander(lab, victim, peer)).start()
    t.flowing()
    with fault_block():
        time.sleep(HOLD_S)
    t.healed()
    ledger = t.finish()
    print(ledger)
    check(ledger, breaks_connections)
    return ledger


def bystander(lab, *busy):
    """A third node, if the lab has one (REQ/REP puts a second REQ there)."""
    return next((n for n in lab.nodes if n not in busy), None)


def assert_backpressure(ledger):
    """The sender waited in send() for a good part of the fault (without
    one it spends ~0.02 s there in a whole test)."""
    assert ledger.waited_s >= HOLD_S / 3, f"the sender hardly waited: it dropped, or buffered without bound: {ledger}"


def test_partition(lab, node_a, node_b, url, family):
    """A silent cut: connections outlive it, nothing is lost, PUSH and
    PAIR senders block meanwhile."""
    need(lab, "partition", node_a, node_b)
    ledger = across(lab, family, "partition", lambda: lab.partition(node_a, node_b),
                    node_a, node_b, url, breaks_connections=False)
    if family in BLOCKING:
        assert_backpressure(ledger)


def test_partition_with_resets(lab, node_a, node_b, url, family):
    """A cut that answers with TCP resets: connections break, redials are
    refused until it heals, then the dialer reconnects."""
    need(lab, "partition", node_a, node_b)
    across(lab, family, "partition (reset)", lambda: lab.partition(node_a, node_b, mode="reset"),
           node_a, node_b, url, breaks_connections=True)


def test_bandwidth_cap(lab, node_a, node_b, url, family):
    """8 Mbit/s, less than the sender offers: PUSH and PAIR block
    (backpressure), PUB and BUS drop only what they count."""
    need(lab, "cap_bandwidth", node_a, node_b)
    ledger = across(lab, family, "bandwidth cap", lambda: lab.cap_bandwidth(node_a, node_b, "8mbit"),
                    node_a, node_b, url, breaks_connections=False)
    if family in BLOCKING:
        assert_backpressure(ledger)


def test_packet_loss(lab, node_a, node_b, url, family):
    """10% of the packets lost each way: TCP repairs it, so the promise is
    that of a live connection."""
    need(lab, "loss", node_a, node_b)
    across(lab, family, "10% loss", lambda: lab.loss(node_a, node_b, percent=10),
           node_a, node_b, url, breaks_connections=False)


def test_delay(lab, node_a, node_b, url, family):
    need(lab, "delay", node_a, node_b)
    across(lab, family, "50 ms delay", lambda: lab.delay(node_a, node_b, ms=50, jitter_ms=10),
           node_a, node_b, url, breaks_connections=False)


@pytest.mark.lab_exclusive
def test_pause(lab, node_a, node_b, url, family):
    """node_a frozen: its connections stay, so the promise of a live
    connection holds; PUSH and PAIR senders block meanwhile."""
    ledger = across(lab, family, "pause", lambda: lab.pause(node_a), node_a, node_b, url,
                    breaks_connections=False)
    if family in BLOCKING:
        assert_backpressure(ledger)


@pytest.mark.lab_exclusive
def test_kill_and_restart(lab, node_a, node_b, url, family):
    """node_a dies (its end with it) and comes back; a new end binds the
    same URL there and the producer redials it. REQ's question is answered
    by the new REP."""
    t = Traffic(family, "kill+restart", node_a, node_b, url(node_a), bystander=bystander(lab, node_a, node_b)).start()
    t.flowing()
    t.save_victim()
    with lab.kill(node_a):
        time.sleep(HOLD_S / 2)
    t.restart_consumer()
    ledger = t.finish()
    print(ledger)
    check(ledger, breaks_connections=True)
