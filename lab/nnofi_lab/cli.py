"""python -m nnofi_lab up|down|status|heal|list [--topology NAME|PATH|auto] [--nodes N] [--rxe]

`auto` (the default) picks the laptop lab (Docker) when a Docker engine
answers, else the netns lab (root, `ip netns`), else the local lab, and
says why; `down` and `status` with auto act on the lab `up` chose last.
`heal` undoes what fault injection left on the nodes (a test run killed
mid-fault): nft tables, tc qdiscs, stopped or paused nodes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

from . import backends, topology
from .backends.base import lab_root
from .lab import Lab

FALLBACK = [("laptop", "docker"), ("netns", "netns"), ("local", "local")]


def _current_file():
    return lab_root() / "current"


def choose(log) -> str:
    """The first of laptop, netns, local whose backend works here."""
    for name, backend in FALLBACK:
        why = backends.get(backend).unavailable()
        if why is None:
            log(f"backend: {backend} (topology {name})")
            return name
        log(f"backend {backend} not usable: {why}; falling back")
    raise AssertionError("the local backend is always usable")


def _providers(lab: Lab, rows) -> List[str]:
    """Provider names each up node offers (asked on the node, bounded)."""
    out = []
    for node, row in zip(lab.nodes, rows):
        if row["state"] != "up":
            out.append("-")
            continue
        try:
            out.append(", ".join(sorted({p for p, _ in node.fabric()})))
        except Exception as e:  # noqa: BLE001 - a status must not die on one node
            out.append(f"? ({str(e).splitlines()[0][:80]})")
    return out


def table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_status(lab: Lab, log) -> bool:
    topo = lab.topology
    rows = lab.status()
    provs = _providers(lab, rows)
    up = sum(r["state"] == "up" for r in rows)
    log(f"lab {topo.name} ({topo.backend}, {topo.source}): {up} of {len(rows)} nodes up")
    log(table([["node", "address", "state", "providers", "detail"]] +
              [[r["node"], r["address"], r["state"], p, r["detail"]] for r, p in zip(rows, provs)]))
    if up == len(rows):
        usable, missing = [], []
        for p in topo.shared_providers():
            why = lab.missing(p)
            (missing if why else usable).append(why or p)
        log("tests run over: tcp, " + ", ".join(f"ofi+{p}" + (" (one node only)" if p == "shm" else "")
                                                for p in usable))
        for m in missing:
            log(f"  skipped: {m}")
    return up == len(rows)


def main(argv: Optional[List[str]] = None, prog: str = "python -m nnofi_lab") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status", "heal", "list"])
    ap.add_argument("--topology", "-t", default="auto",
                    help="a name in lab/topologies, a .yaml path, or auto (default)")
    ap.add_argument("--nodes", "-n", type=int, default=None, help="number of nodes (default: the topology's)")
    ap.add_argument("--rxe", action="store_true", default=os.environ.get("RXE") == "1",
                    help="make an rxe soft-RoCE device on each node where the kernel has rdma_rxe (env RXE=1)")
    args = ap.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731

    if args.command == "list":
        for name in topology.names():
            t = topology.load(name)
            log(f"{name:12} {t.backend:7} {len(t.nodes)} nodes  {t.description}")
        return 0
    try:
        names = [args.topology]
        if args.topology == "auto":
            cur = _current_file().read_text().strip() if _current_file().exists() else None
            if args.command == "up" or (args.command in ("status", "heal") and not cur):
                names = [choose(log)]
            elif cur:
                names = [cur]
                log(f"lab {cur} (the one `up` chose)")
            else:  # down, and no record of an `up`: every default lab this machine can have
                names = [n for n, b in FALLBACK if backends.get(b).unavailable() is None]
        ok = True
        for name in names:
            lab = Lab.load(name, nodes=args.nodes if args.command == "up" else None)
            t0 = time.monotonic()
            if args.command == "up":
                if args.nodes and args.nodes != len(lab.nodes):
                    lab = Lab(lab.topology.resized(args.nodes))
                why = lab.backend.unavailable()
                if why:
                    log(f"lab {lab.topology.name}: the {lab.topology.backend} backend is not usable here: {why}")
                    return 2
                log(f"lab {lab.topology.name}: up ({lab.topology.backend}, {len(lab.nodes)} nodes)")
                lab.up(log, rxe=args.rxe)
                _current_file().write_text(lab.topology.name + "\n")
                ok = print_status(lab, log) and ok
                log(f"up in {time.monotonic() - t0:.1f}s")
            elif args.command == "down":
                log(f"lab {lab.topology.name}: down ({lab.topology.backend})")
                lab.down(log)
                if _current_file().exists() and _current_file().read_text().strip() == lab.topology.name:
                    _current_file().unlink()
                log(f"down in {time.monotonic() - t0:.1f}s")
            elif args.command == "heal":
                log(f"lab {lab.topology.name}: undoing what faults left on its nodes")
                ok = lab.faults.heal_if_idle(log) and ok
            else:
                ok = print_status(lab, log) and ok
            lab.close()
        return 0 if ok else 1
    except (topology.TopologyError, RuntimeError) as e:
        log(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
