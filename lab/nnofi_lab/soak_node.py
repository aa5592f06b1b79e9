"""What `python -m nnofi_lab soak` runs on each node (shipped by
nnofi_lab: nnofi, the standard library and the constants here).

A node serves a Rep over tcp:// and a Pull over ofi:// for the whole run,
and churns: it dials a random peer's Rep, asks a few questions, hangs up,
then dials a peer's Pull, pushes small messages and one over ofi's
rendezvous threshold (a memory registration each time), hangs up. Every
call has a timeout: a partition fails calls, never hangs the node. The
driver's commands: "pause" (finish the round, let connections drain,
answer a snapshot of the process's resources), "go" (churn again), "stop"
(close everything, answer the round counts)."""
import os
import random
import threading
import time

import nnofi

OPTS = {"send_timeout": 1000, "recv_timeout": 1000, "reconnect_ivl": 50, "reconnect_ivl_max": 400,
        "linger": 300}
SERVE_OPTS = {"recv_timeout": 200, "send_timeout": 1000}
QUESTIONS = 5
SMALL = 20
BIG = 300_000  # over rendezvous_min (128 KiB): registered, read by the peer, released
SETTLE_S = 15.0  # how long a pause waits for the node's connections to drain


def resources():
    """fds, threads, RSS (KiB), memory registrations and nnofi's live
    objects of this process."""
    from nnofi._native import ffi, lib

    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    mrs, mr_bytes = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    lib.nnofi_mr_live(mrs, mr_bytes)
    socks, pipes, msgs = ffi.new("int64_t *"), ffi.new("int64_t *"), ffi.new("int64_t *")
    lib.nnofi_live_counts(socks, pipes, msgs)
    kinds = {}
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":[")[0] if ":[" in target else target
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "socket":
            inodes.add(target[len("socket:["):-1])
    return {"fds": len(os.listdir("/proc/self/fd")), "fd_kinds": kinds, "tcp": tcp_sockets(inodes),
            "threads": len(os.listdir("/proc/self/task")),
            "rss_kib": rss, "mrs": int(mrs[0]), "mr_bytes": int(mr_bytes[0]),
            "socks": int(socks[0]), "pipes": int(pipes[0]), "msgs": int(msgs[0])}


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def tcp_sockets(inodes):
    """This process's TCP sockets as 'local -> remote STATE' (IPv4), so a
    leftover connection can be told apart: which port, which peer."""
    def addr(hexaddr):
        ip, port = hexaddr.split(":")
        return ".".join(str(int(ip[i:i + 2], 16)) for i in (6, 4, 2, 0)) + f":{int(port, 16)}"
    found = []
    try:
        with open("/proc/self/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[9] in inodes:
                    found.append(f"{addr(cols[1])} -> {addr(cols[2])} {TCP_STATES.get(cols[3], cols[3])}")
    except OSError:
        pass
    return sorted(found)


def serve_rep(rep, stop):
    while not stop.is_set():
        try:
            rep.send(rep.recv())
        except nnofi.Timeout:
            continue
        except nnofi.Closed:
            return


def serve_pull(pull, stop, counts):
    while not stop.is_set():
        try:
            pull.recv()
            counts["pulled"] += 1
        except nnofi.Timeout:
            continue
        except nnofi.Closed:
            return


def one_round(peer_rep, peer_pull, counts):
    """A Req and a Push to peers, each used and closed."""
    with nnofi.Req(req_resend_ivl=300, **OPTS) as req:
        req.connect(peer_rep)
        for i in range(QUESTIONS):
            try:
                req.send(b"q%d" % i)
                counts["answered" if req.recv() == b"q%d" % i else "wrong"] += 1
            except nnofi.Timeout:
                counts["unanswered"] += 1
    with nnofi.Push(**OPTS) as push:
        push.connect(peer_pull)
        payloads = [b"s" * 100] * SMALL + [bytes(BIG)]
        for m in payloads:
            try:
                push.send(m)
                counts["pushed"] += 1
            except nnofi.Timeout:
                counts["unpushed"] += 1


def open_pipes(sock):
    st = sock.stats
    return st["pipes_opened"] - st["pipes_closed"] - st["pipes_broken"]


def settle(sockets):
    """Wait until closed connections and sockets are gone on this node
    (their last references go in nnofi's background thread): only the
    node's own listening sockets remain, with no connection."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        r = resources()
        if r["pipes"] == 0 and r["socks"] == sockets:
            return True
        time.sleep(0.05)
    return False


def soak_node(ctl, rep_url, pull_url, peer_reps, peer_pulls, seed):
    rng = random.Random(seed)
    counts = {k: 0 for k in ("rounds", "answered", "unanswered", "wrong", "pushed", "unpushed", "pulled")}
    stop = threading.Event()
    rep = nnofi.Rep(**SERVE_OPTS)
    pull = nnofi.Pull(**SERVE_OPTS)
    rep.bind(rep_url)
    pull.bind(pull_url)
    threads = [threading.Thread(target=serve_rep, args=(rep, stop), daemon=True),
               threading.Thread(target=serve_pull, args=(pull, stop, counts), daemon=True)]
    for t in threads:
        t.start()
    ctl.send("bound")
    churning = False
    try:
        while True:
            cmd = ctl.recv(timeout=0 if churning else 60, default=None)
            if cmd == "go":
                churning = True
            elif cmd == "pause":
                churning = False
                drained = settle(2)
                ctl.send({"drained": drained, **resources(),
                          "open_pipes": {"rep (tcp)": open_pipes(rep), "pull (ofi)": open_pipes(pull)}})
            elif cmd == "stop":
                return counts
            if churning:
                k = rng.randrange(len(peer_reps))
                one_round(peer_reps[k], peer_pulls[k], counts)
                counts["rounds"] += 1
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        rep.close()
        pull.close()
