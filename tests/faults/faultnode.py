"""What the fault tests run on nodes (shipped by nnofi_lab: nnofi, the
standard library and the constants here). Per protocol family a producer
and a consumer exchange messages that carry their origin and sequence
number and a body made from both, so the receiving side can tell a
corrupt, foreign or repeated message. Each end answers the test's
"report" with what it has seen since its last report, and ("stop", last)
ends it: a producer at once, a consumer once it has seq `last` or nothing
came for QUIET_S. Every call has a timeout, every loop a deadline."""
import time
import zlib

import nnofi

# Small buffers (they also size the kernel's), so a stalled peer pushes
# back within a fraction of a second; fast redials.
OPTS = {"send_timeout": 100, "recv_timeout": 100, "send_buffer": 65536, "recv_buffer": 65536,
        "reconnect_ivl": 50, "reconnect_ivl_max": 400}
SIZES = (64, 1500, 4000, 300)
BIG = 150_000  # every 64th message: over ofi's rendezvous_min, so large messages cross faults too
PACE_S = 0.001  # between sends: ~3 MB/s offered, more than a capped link takes
RESEND_MS = 300  # REQ
SURVEY_MS = 300
QUIET_S = 1.0
DRAIN_S = 15.0
CONSUMERS = {"pipeline": "Pull", "pair": "Pair", "pubsub": "Sub", "bus": "Bus"}
PRODUCERS = {"pipeline": "Push", "pair": "Pair", "pubsub": "Pub", "bus": "Bus"}


def make_message(origin, seq):
    head = b"%s|%d|" % (origin.encode(), seq)
    size = BIG if seq % 64 == 63 else SIZES[seq % len(SIZES)]
    word = zlib.crc32(head).to_bytes(4, "big")
    return head + (word * (size // 4 + 1))[:size]


def read_message(m):
    """(origin, seq) of a message make_message made, or None (corrupt)."""
    try:
        origin, seq, _ = bytes(m).split(b"|", 2)
        origin, seq = origin.decode(), int(seq)
    except (ValueError, UnicodeDecodeError):
        return None
    return (origin, seq) if make_message(origin, seq) == m else None


class Control:
    """The end's side of the test's commands."""

    def __init__(self, ctl):
        self.ctl = ctl
        self.seen = []  # what this end received: (origin, seq), in order
        self.told = 0
        self.stop = None  # ("stop", last) once the test said so

    def poll(self):
        while self.stop is None:
            cmd = self.ctl.recv(timeout=0, default=None)
            if cmd is None:
                return
            if cmd == "report":
                self.ctl.send(self.seen[self.told:])
                self.told = len(self.seen)
            else:
                self.stop = cmd

    def rest(self):
        return self.seen[self.told:]


def open_socket(family, cls_name, **extra):
    sock = getattr(nnofi, cls_name)(**OPTS, **extra)
    if cls_name == "Sub":
        sock.subscribe(b"")
    return sock


# -- one-way families: pipeline, pair, pubsub, bus ------------------------------------
def producer(ctl, family, url, origin):
    """Send numbered messages until told to stop. A send that times out
    was not taken (PUSH, PAIR block when the peer is slow or gone): the
    same message goes again, so what was taken is seq 0..sent-1. Counts
    the timeouts and the time spent in send()."""
    c = Control(ctl)
    with open_socket(family, PRODUCERS[family]) as sock:
        sock.connect(url)
        wait_connected(sock)  # PUB and BUS with no peer drop without counting
        ctl.send("ready")
        seq = blocked = 0
        waited = 0.0  # seconds spent in send(): backpressure shows here
        while True:
            c.poll()
            if c.stop:
                return {"sent": seq, "blocked": blocked, "waited_s": waited, "stats": sock.stats}
            m = make_message(origin, seq)
            t0 = time.monotonic()
            try:
                sock.send(m)
            except nnofi.Timeout:
                blocked += 1
                continue
            finally:
                waited += time.monotonic() - t0
            seq += 1
            time.sleep(PACE_S)


def consumer(ctl, family, url):
    """Bind and receive until told to stop; then drain."""
    c = Control(ctl)
    corrupt = 0
    with open_socket(family, CONSUMERS[family]) as sock:
        sock.bind(url)
        ctl.send("ready")
        while not c.stop:
            c.poll()
            corrupt += receive_into(sock, c.seen)
        last = c.stop[1]
        deadline = time.monotonic() + DRAIN_S
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_S:
            if c.seen and last is not None and c.seen[-1][1] >= last:
                break
            n = len(c.seen)
            corrupt += receive_into(sock, c.seen)
            if len(c.seen) > n:
                quiet_since = time.monotonic()
        return {"seen": c.rest(), "corrupt": corrupt, "stats": sock.stats}


def wait_connected(sock):
    deadline = time.monotonic() + DRAIN_S
    while sock.stats["pipes_opened"] < 1:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not connected after {DRAIN_S}s: {sock.stats}")
        time.sleep(0.005)


def receive_into(sock, seen):
    """Receive one message (or time out) into seen; 1 if it was corrupt."""
    try:
        m = sock.recv()
    except nnofi.Timeout:
        return 0
    got = read_message(m)
    if got is None:
        return 1
    seen.append(got)
    return 0


# -- request/answer families: reqrep, survey ------------------------------------------
def replier(ctl, family, url, prefix):
    """A REP or RESPONDENT: answer every question with prefix + question
    (resent questions are answered again: REQ resends by design)."""
    c = Control(ctl)
    corrupt = 0
    with open_socket(family, "Rep" if family == "reqrep" else "Respondent") as sock:
        sock.bind(url)
        ctl.send("ready")
        while not c.stop:
            c.poll()
            try:
                q = sock.recv()
            except nnofi.Timeout:
                continue
            got = read_message(q)
            if got is None:
                corrupt += 1
                continue
            c.seen.append(got)
            answer_until_taken(sock, prefix + q, c)
        return {"seen": c.rest(), "corrupt": corrupt, "stats": sock.stats}


def answer_until_taken(sock, answer, c):
    while not c.stop:
        try:
            sock.send(answer)
            return
        except nnofi.Timeout:  # REP waits for room on the asker's pipe
            c.poll()


def requester(ctl, url, origin, prefix):
    """A REQ: ask numbered questions one after another, each until its
    answer comes (the socket resends every RESEND_MS); on stop, finish
    the question in hand. seen: the questions answered, in order."""
    c = Control(ctl)
    wrong = corrupt = 0
    with nnofi.Req(req_resend_ivl=RESEND_MS, **OPTS) as req:
        req.connect(url)
        ctl.send("ready")
        seq = 0
        while not c.stop:
            ask = make_message(origin, seq)
            req.send(ask)
            deadline = None
            while True:
                c.poll()
                if c.stop and deadline is None:
                    deadline = time.monotonic() + DRAIN_S
                try:
                    answer = req.recv()
                    break
                except nnofi.Timeout:
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"question {seq} unanswered {DRAIN_S}s after the stop")
            if answer == prefix + ask:
                c.seen.append((origin, seq))
            elif answer.startswith(prefix) and read_message(answer[len(prefix):]):
                wrong += 1  # someone else's answer, or an old one
            else:
                corrupt += 1
            seq += 1
            time.sleep(PACE_S)
        return {"sent": seq, "seen": c.rest(), "wrong": wrong, "corrupt": corrupt, "stats": req.stats}


def surveyor(ctl, url, origin, prefix):
    """A SURVEYOR: numbered surveys one after another, each until its
    answer comes or SURVEY_MS pass. seen: the surveys answered."""
    c = Control(ctl)
    wrong = corrupt = 0
    # recv_timeout beyond survey_time: a Timeout means the survey is over
    with nnofi.Surveyor(**dict(OPTS, survey_time=SURVEY_MS, recv_timeout=SURVEY_MS + 200)) as sv:
        sv.connect(url)
        ctl.send("ready")
        seq = 0
        while True:
            c.poll()
            if c.stop:
                return {"sent": seq, "seen": c.rest(), "wrong": wrong, "corrupt": corrupt, "stats": sv.stats}
            ask = make_message(origin, seq)
            sv.send(ask)
            while True:
                try:
                    answer = sv.recv()
                except nnofi.Timeout:
                    break
                if answer == prefix + ask:
                    c.seen.append((origin, seq))
                    break  # one respondent: this survey is done
                if answer.startswith(prefix) and read_message(answer[len(prefix):]):
                    wrong += 1  # an answer to another survey reached the user
                else:
                    corrupt += 1
            seq += 1
            time.sleep(PACE_S)
