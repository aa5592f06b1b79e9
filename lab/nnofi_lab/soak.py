"""`make soak` / `python -m nnofi_lab.soak`: minutes of connection churn
and network faults across the lab's nodes, then each node's fds, threads,
RSS, memory registrations and live nnofi objects against their baseline.

Baseline: after a warm-up (nnofi's background thread, libfabric's fabric
and the message pools exist by then), churn paused and connections
drained. End: the same after the faulted churn. Faults, one at a time on
a random pair of nodes: a partition (drop), a partition by TCP resets,
a bandwidth cap, each for a few seconds, then healed; the soak's ports
only, so nothing else on the nodes is touched."""
from __future__ import annotations

import argparse
import random
import time
from typing import Dict, List, Optional

from . import cli, soak_node
from .faults import FaultUnavailable
from .lab import Lab

WARMUP_S = 5.0
# A connection accepted while its dialer was cut off can still be in its
# SP handshake at the end: it gives its fd back when the handshake times
# out (10 s), so a grown count is looked at again after that.
RECHECK_S = 11.0
FAULT_S = 3.0
CALM_S = 2.0
# What must not grow between baseline and end, and by how much RSS may:
# glibc keeps freed memory in its arenas, and nnofi's pools keep up to 512
# messages a thread.
EXACT = ("fds", "threads", "mrs", "socks", "pipes", "msgs")
RSS_SLACK_KIB = 16 * 1024


def start_nodes(lab: Lab, seed: int):
    """A soak_node task per node, each told every peer's Rep and Pull."""
    nodes = lab.nodes
    reps = {n.name: lab.url("tcp", n) for n in nodes}
    pulls = {n.name: lab.url("ofi+tcp", n) for n in nodes}
    tasks = []
    for i, n in enumerate(nodes):
        peers = [p for p in nodes if p is not n]
        tasks.append(n.spawn(soak_node.soak_node, reps[n.name], pulls[n.name],
                             [reps[p.name] for p in peers], [pulls[p.name] for p in peers], seed + i))
    for t in tasks:
        assert t.recv(timeout=60) == "bound", f"{t} did not bind"
    return tasks


def snapshot(tasks) -> List[Dict]:
    for t in tasks:
        t.send("pause")
    return [t.recv(timeout=soak_node.SETTLE_S + 60) for t in tasks]


def inject_faults(lab: Lab, seconds: float, rng: random.Random, log) -> Dict[str, int]:
    """Faults on random pairs until seconds have passed; how many of each."""
    made: Dict[str, int] = {}
    kinds = [("partition", lambda a, b: lab.partition(a, b)),
             ("reset", lambda a, b: lab.partition(a, b, mode="reset")),
             ("cap 2mbit", lambda a, b: lab.cap_bandwidth(a, b, rate="2mbit"))]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a, b = rng.sample(lab.nodes, 2)
        name, fault = rng.choice(kinds)
        try:
            with fault(a, b):
                time.sleep(FAULT_S)
            made[name] = made.get(name, 0) + 1
        except FaultUnavailable as e:
            log(f"  {name} unavailable: {e}")
            kinds = [k for k in kinds if k[0] != name]
            if not kinds:
                log("  no fault can be made on this lab: churn only")
                time.sleep(max(0.0, end - time.monotonic()))
                break
        time.sleep(CALM_S)
    return made


def compare(lab: Lab, base: List[Dict], end: List[Dict], log) -> bool:
    ok = True
    rows = [["node", "drained", "fds", "threads", "RSS MiB", "MRs", "MR MiB", "socks", "pipes", "msgs"]]
    for n, b, e in zip(lab.nodes, base, end):
        row = [n.name, f"{b['drained']}/{e['drained']}"]
        for k in ("fds", "threads"):
            row.append(f"{b[k]} -> {e[k]}")
        row.append(f"{b['rss_kib'] / 1024:.1f} -> {e['rss_kib'] / 1024:.1f}")
        row.append(f"{b['mrs']} -> {e['mrs']}")
        row.append(f"{b['mr_bytes'] / 2**20:.1f} -> {e['mr_bytes'] / 2**20:.1f}")
        for k in ("socks", "pipes", "msgs"):
            row.append(f"{b[k]} -> {e[k]}")
        rows.append(row)
        for k in EXACT:
            if e[k] > b[k]:
                ok = False
                log(f"  {n.name}: {k} {b[k]} at baseline, {e[k]} at the end")
                if k == "pipes":
                    log(f"  {n.name}: open pipes " + ", ".join(f"{s} {c}" for s, c in e["open_pipes"].items()))
                if k == "fds":
                    grew = {kind: e["fd_kinds"].get(kind, 0) - b["fd_kinds"].get(kind, 0)
                            for kind in e["fd_kinds"]}
                    log(f"  {n.name}: more fds of " + ", ".join(f"{k2} +{v}" for k2, v in grew.items() if v > 0))
                    for conn in sorted(set(e["tcp"]) - set(b["tcp"])):
                        log(f"  {n.name}: new tcp socket {conn}")
        if e["rss_kib"] - b["rss_kib"] > RSS_SLACK_KIB:
            ok = False
            log(f"  {n.name}: RSS grew {(e['rss_kib'] - b['rss_kib']) / 1024:.1f} MiB "
                f"(allowed {RSS_SLACK_KIB // 1024} MiB)")
        if not e["drained"]:
            ok = False
            log(f"  {n.name}: connections did not drain within {soak_node.SETTLE_S:.0f}s")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        log("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            log("  " + "  ".join("-" * w for w in widths))
    return ok


def soak(lab: Lab, seconds: float, seed: int, log=print) -> bool:
    rng = random.Random(seed)
    log(f"soak on lab {lab.topology.name} ({lab.topology.backend}, {len(lab.nodes)} nodes): "
        f"{WARMUP_S:.0f}s warm-up, {seconds:.0f}s of churn under faults (seed {seed})")
    tasks = start_nodes(lab, seed)
    counts = []
    try:
        for t in tasks:
            t.send("go")
        time.sleep(WARMUP_S)
        base = snapshot(tasks)
        for t in tasks:
            t.send("go")
        made = inject_faults(lab, seconds, rng, log)
        end = snapshot(tasks)
        if any(e[k] > b[k] for b, e in zip(base, end) for k in EXACT):
            log(f"some counts are above their baseline: looking again in {RECHECK_S:.0f}s "
                "(handshakes of connections cut off mid-way time out)")
            time.sleep(RECHECK_S)
            end = snapshot(tasks)
        for t in tasks:
            t.send("stop")
        counts = [t.result(timeout=60) for t in tasks]
    finally:
        for t in tasks:
            if not t.done():
                t.send("stop")
    log("faults made: " + (", ".join(f"{k} x{v}" for k, v in sorted(made.items())) or "none"))
    for n, c in zip(lab.nodes, counts):
        log(f"  {n.name}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    wrong = sum(c["wrong"] for c in counts)
    if wrong:
        log(f"  {wrong} wrong answers")
    log("baseline -> end (after churn, connections drained):")
    ok = compare(lab, base, end, log) and wrong == 0 and all(c["rounds"] > 0 for c in counts)
    log("soak: " + ("PASS: every node back to its baseline" if ok else "FAIL"))
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nnofi_lab.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", "-t", default="auto", help="a lab topology (default: the one `lab up` chose)")
    ap.add_argument("--seconds", type=float, default=120.0, help="churn under faults (default 120)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    name = args.topology
    if name == "auto":  # the lab `lab up` made last, else the best this machine has
        current = cli._current_file()
        name = current.read_text().strip() if current.exists() else cli.choose(print)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with Lab.load(name) as lab:
        brought_up = not lab.is_up()
        if brought_up:
            lab.up(print)
        try:
            return 0 if soak(lab, args.seconds, seed) else 1
        finally:
            if brought_up:
                lab.down(print)


if __name__ == "__main__":
    raise SystemExit(main())
