"""The test side of the guarantee tests: run one protocol family's
traffic across a fault, keep its ledger (sent, received, dropped,
duplicated, corrupt, foreign, out of order), and hold it to what the
protocol promises (README, "Guarantees under faults")."""
import time
from dataclasses import dataclass
from typing import List, Tuple

import pytest

from faultnode import consumer, producer, replier, requester, surveyor

FAMILIES = ("pipeline", "pair", "reqrep", "pubsub", "survey", "bus")
ANSWERED = ("reqrep", "survey")  # the asking side counts what got through
LOSSLESS = ("pipeline", "pair", "reqrep")  # nothing a socket took is lost while its connection lives
COUNTED = ("pubsub", "bus")  # they drop, but only where a socket counts it (stats msgs_dropped)
PREFIX = b"re:"
HOLD_S = 0.6  # how long a fault lasts: long enough to fill the buffers behind it
RESUME_N = 10  # messages (answers) that must get through after the heal ...
RESUME_S = 20.0  # ... within this long
REPORT_S = 10.0


def need(lab, fault, *nodes):
    """Skip, with the reason, where the lab cannot make this fault."""
    why = lab.faults.unavailable(fault, nodes)
    if why:
        pytest.skip(why)


@dataclass
class Ledger:
    family: str
    fault: str
    sent: int = 0  # messages (questions, surveys) the sending socket took
    received: int = 0  # what the counting side got, repeats included
    unique: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    foreign: int = 0  # not from the sender, or never sent
    corrupt: int = 0
    wrong: int = 0  # REQ/SURVEYOR: an answer to another question reached the user
    counted_drops: int = 0  # stats msgs_dropped of both ends
    blocked: int = 0  # sends that timed out: backpressure
    waited_s: float = 0.0  # time the sender spent in send()
    resumed: int = 0  # received after the heal
    lost_after_resume: int = 0  # missing messages sent after the first one that got through after the heal
    redelivered: int = 0  # REP/RESPONDENT saw a question again (REQ resends: allowed)
    bystander_unanswered: int = 0  # REQ on a third node, untouched by the fault: questions left unanswered

    @property
    def dropped(self) -> int:
        return self.sent - self.unique

    def __str__(self) -> str:
        return (f"{self.family} under {self.fault}: sent {self.sent}, received {self.received} ({self.unique} unique), "
                f"dropped {self.dropped} (sockets counted {self.counted_drops}), duplicated {self.duplicated}, "
                f"out of order {self.out_of_order}, corrupt {self.corrupt}, foreign {self.foreign}, "
                f"wrong answers {self.wrong}, sends timed out {self.blocked} (in send() {self.waited_s:.2f}s), "
                f"after the heal {self.resumed} "
                f"(lost among them {self.lost_after_resume}), questions seen again {self.redelivered}"
                + (f", the bystander's unanswered {self.bystander_unanswered}" if self.family == "reqrep" else ""))


def tally(ledger: Ledger, origin: str, got: List[Tuple[str, int]], after_heal: int) -> None:
    """Fill ledger from what the counting side received, in order; the
    first after_heal entries came before the heal."""
    seqs = []
    for o, seq in got:
        if o != origin or seq >= ledger.sent:
            ledger.foreign += 1
        else:
            seqs.append(seq)
    ledger.received = len(seqs)
    ledger.unique = len(set(seqs))
    ledger.duplicated = ledger.received - ledger.unique
    highest = -1
    for seq in seqs:
        if seq < highest:
            ledger.out_of_order += 1
        highest = max(highest, seq)
    later = [seq for o, seq in got[after_heal:] if o == origin]
    ledger.resumed = len(later)
    if later:
        have = set(seqs)
        ledger.lost_after_resume = sum(1 for s in range(later[0], ledger.sent) if s not in have)


def check(ledger: Ledger, breaks_connections: bool) -> None:
    """The protocol's promise under this fault, as assertions."""
    f = ledger.family
    assert ledger.corrupt == 0 and ledger.foreign == 0, f"corrupt or foreign messages: {ledger}"
    assert ledger.duplicated == 0 and ledger.out_of_order == 0, f"duplicated or reordered: {ledger}"
    assert ledger.wrong == 0, f"an answer reached the wrong question: {ledger}"
    assert ledger.resumed >= RESUME_N, f"traffic did not resume after the heal: {ledger}"
    if f == "reqrep":
        assert ledger.dropped == 0 and ledger.bystander_unanswered == 0, f"a request went unanswered: {ledger}"
    elif f in LOSSLESS and not breaks_connections:
        assert ledger.dropped == 0, f"lost messages on a live connection: {ledger}"
    elif f in LOSSLESS:
        assert ledger.lost_after_resume == 0, f"lost messages after the reconnect: {ledger}"
    elif f in COUNTED and not breaks_connections:
        assert ledger.dropped == ledger.counted_drops, f"drops the sockets did not count: {ledger}"


class Traffic:
    """A family's producer on `peer` dialing its consumer on `victim` (the
    node the fault hits; the end there binds, so after a restart the
    producer redials it). For REQ/REP and SURVEYOR/RESPONDENT the asking
    side is the producer and counts what got through. For REQ/REP a second
    REQ on `bystander`, which the fault leaves alone, asks the same REP:
    each must get its own answers only (REP routes them back by
    connection, across reconnects)."""

    def __init__(self, family: str, fault: str, victim, peer, url: str, bystander=None) -> None:
        self.family, self.victim, self.peer, self.url = family, victim, peer, url
        self.bystander = bystander if family == "reqrep" else None
        self.ledger = Ledger(family, fault)
        self.origin = f"{peer.name}-{family}"
        self.got: List[Tuple[str, int]] = []  # what the counting side received, in order
        self.asked: List[Tuple[str, int]] = []  # what REP/RESPONDENT saw (repeats allowed)
        self.heal_mark = None
        self.consumer = self.producer = self.other = None

    @property
    def answered(self) -> bool:
        return self.family in ANSWERED

    def start(self) -> "Traffic":
        self.start_consumer()
        if self.family == "reqrep":
            self.producer = self.peer.spawn(requester, self.url, self.origin, PREFIX)
        elif self.family == "survey":
            self.producer = self.peer.spawn(surveyor, self.url, self.origin, PREFIX)
        else:
            self.producer = self.peer.spawn(producer, self.family, self.url, self.origin)
        assert self.producer.recv() == "ready"
        if self.bystander:
            self.other = self.bystander.spawn(requester, self.url, f"{self.bystander.name}-reqrep", PREFIX)
            assert self.other.recv() == "ready"
        return self

    def restart_consumer(self) -> None:
        """After the victim's node restarted: a new end there; all it gets
        comes after the heal."""
        self.heal_mark = len(self.got)
        self.start_consumer()

    def start_consumer(self) -> None:
        """The victim's end."""
        if self.answered:
            self.consumer = self.victim.spawn(replier, self.family, self.url, PREFIX)
        else:
            self.consumer = self.victim.spawn(consumer, self.family, self.url)
        assert self.consumer.recv() == "ready"

    # -- progress ------------------------------------------------------------------
    def report(self) -> int:
        """Collect what the counting side got since its last report."""
        counting = self.producer if self.answered else self.consumer
        counting.send("report")
        self.got += counting.recv(timeout=REPORT_S)
        return len(self.got)

    def save_victim(self) -> None:
        """Before the victim dies: what its end saw so far."""
        self.consumer.send("report")
        (self.asked if self.answered else self.got).extend(self.consumer.recv(timeout=REPORT_S))

    def flowing(self, n: int = RESUME_N) -> None:
        """Wait until n more messages got through."""
        start = self.report()
        deadline = time.monotonic() + RESUME_S
        while self.report() < start + n:
            assert time.monotonic() < deadline, \
                f"{self.family}: fewer than {n} messages through in {RESUME_S}s ({len(self.got) - start})"
            time.sleep(0.05)

    def healed(self) -> None:
        """Call right after the fault's block: what came before is before."""
        self.report()
        self.heal_mark = len(self.got)

    # -- the end ---------------------------------------------------------------------
    def finish(self) -> Ledger:
        """Wait for traffic to resume, stop both ends, fill the ledger."""
        if self.heal_mark is None:
            self.heal_mark = len(self.got)
        self.flowing()
        self.producer.send(("stop", None))
        sent = self.producer.result()
        if self.other:
            self.other.send(("stop", None))
            other = self.other.result()
            self.ledger.bystander_unanswered = other["sent"] - len(other["seen"])
            self.ledger.wrong += other["wrong"]
            self.ledger.corrupt += other["corrupt"]
        self.consumer.send(("stop", None if self.answered else sent["sent"] - 1))
        kept = self.consumer.result()
        led = self.ledger
        led.sent = sent["sent"]
        led.blocked = sent.get("blocked", 0)
        led.waited_s = sent.get("waited_s", 0.0)
        led.corrupt += sent.get("corrupt", 0) + kept["corrupt"]
        led.wrong += sent.get("wrong", 0)
        led.counted_drops = sent["stats"]["msgs_dropped"] + kept["stats"]["msgs_dropped"]
        if self.answered:
            self.got += sent["seen"]
            self.asked += kept["seen"]
            led.redelivered = len(self.asked) - len(set(self.asked))
        else:
            self.got += kept["seen"]
        tally(led, self.origin, self.got, self.heal_mark)
        return led
