"""`make bench`, `nnofi perf`, `python -m nnofi.perf`: the command line."""
import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional

from . import budget, memory, sweep
from .fi_pingpong import FI_PINGPONG
from .plot import plot
from .report import floor_lines, floors, human, parse_size, table, write_json
from .transports import TRANSPORTS

DESCRIPTION = ("REQ/REP round-trip latency and PUSH/PULL throughput of nnofi beside pyzmq, pynng, "
               "nanomsg (C) and fi_pingpong, two processes per measurement")
FULL = {"sizes": ",".join(human(s) for s in budget.SIZES), "transports": ",".join(TRANSPORTS),
        "peer_transports": "tcp", "repeats": 3, "seconds": 0.5, "floor_rounds": 3}
# A small slice: the sizes and transports issue 7's floors name.
QUICK = {**FULL, "sizes": "64,1MiB", "transports": "tcp,ofi+tcp,ofi+shm", "seconds": 0.3}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nnofi.perf", description=DESCRIPTION)
    p.add_argument("--quick", action="store_true",
                   help=f"a small slice: sizes {QUICK['sizes']}, transports {QUICK['transports']}")
    p.add_argument("--sizes", help="message sizes, comma-separated (default: 64B..64MiB, powers of 4)")
    p.add_argument("--transports", help=f"nnofi's transports (default {FULL['transports']}; ofi+verbs "
                                        "is skipped, saying why, where there is no verbs device); "
                                        "fi_pingpong runs for every ofi+PROVIDER")
    p.add_argument("--peer-transports", help="those of them pyzmq, pynng and nanomsg run over too "
                                             f"(default {FULL['peer_transports']})")
    p.add_argument("--libs", default=",".join(sweep.LIBRARIES), help="comma-separated (default: all of "
                                                                    + ", ".join(sweep.LIBRARIES) + ")")
    p.add_argument("--repeats", type=int, help=f"repeats per measurement, the median kept (default {FULL['repeats']})")
    p.add_argument("--seconds", type=float, help="time budget of each latency and each throughput measurement "
                                                 f"(default {FULL['seconds']}; --quick {QUICK['seconds']})")
    p.add_argument("--floor-rounds", type=int,
                   help="rounds of the rows issue 7's floors compare, measured one round after another, "
                        f"the median kept (default {FULL['floor_rounds']}; 1: one pass like the other rows)")
    p.add_argument("--memory-size", default="1GiB",
                   help="the numpy array of the ofi+shm RSS check (default %(default)s; 0: no check)")
    p.add_argument("--out", default=os.path.join("build", "bench"),
                   help="directory of bench.json, bench.png and the nanomsg driver (default %(default)s)")
    p.add_argument("--json", metavar="PATH", help="the results and machine info (default OUT/bench.json)")
    p.add_argument("--plot", metavar="PATH", help="latency and bandwidth against size (default OUT/bench.png)")
    p.add_argument("--no-plot", action="store_true", help="no PNG")
    return p


def _split(text: str) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Optional[List[str]] = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    libs = _split(args.libs)
    unknown = [lib for lib in libs if lib not in sweep.LIBRARIES]
    if unknown:
        p.error(f"unknown libraries {unknown}; known: {', '.join(sweep.LIBRARIES)}")
    sizes = [parse_size(s) for s in _split(args.sizes)]
    transports, peer_transports = _split(args.transports), _split(args.peer_transports)
    opts = {"repeats": max(1, args.repeats), "seconds": args.seconds, "floor_rounds": max(1, args.floor_rounds)}
    memory_size = parse_size(args.memory_size)
    os.makedirs(args.out, exist_ok=True)
    json_path = args.json or os.path.join(args.out, "bench.json")
    plot_path = None if args.no_plot else (args.plot or os.path.join(args.out, "bench.png"))

    m = sweep.machine()
    m["libraries"] = {lib: sweep.installed(lib) or "not installed" for lib in libs}
    started = time.monotonic()
    rows, skipped = sweep.run(libs, transports, peer_transports, sizes, opts, args.out)
    rss = None
    if memory_size and "nnofi" in libs and "ofi+shm" in transports:
        print(f"  memory check: {human(memory_size)} numpy array over ofi+shm ...", file=sys.stderr, flush=True)
        rss = memory.measure_rss(memory_size, "ofi+shm")
    for row in rows:  # the version a measuring process reported is the more precise one
        if row.get("version"):
            m["libraries"][row["library"]] = row["version"]
    m["wall_seconds"] = round(time.monotonic() - started, 1)

    print(header(m, opts, libs, skipped))
    print(table(rows))
    entries = floors(rows, rss)
    if entries:
        print(floor_lines(entries))
    if plot_path:
        why = plot(rows, plot_path, f"nnofi perf: {m['cpu']}, {m['cores']} cores, Python {m['python']}")
        print(f"# plot: {plot_path}" if why is None else f"# no plot: {why}")
    command = [sys.executable, "-m", "nnofi.perf"] + (sys.argv[1:] if argv is None else argv)
    write_json(json_path, {"machine": m, "command": " ".join(command),
                           "settings": {"timeout_ms": budget.TIMEOUT_MS, "rounds_max": budget.ROUNDS,
                                        "sizes": sizes, "transports": transports,
                                        "peer_transports": peer_transports, **opts},
                           "skipped": skipped, "results": rows, "floors": entries, "memory": rss})
    print(f"# json: {json_path}")
    print(f"# {m['wall_seconds']} s in all", flush=True)
    return 0


def header(m: Dict[str, Any], opts: Dict[str, Any], libs: List[str], skipped: List[str]) -> str:
    repeats, each = opts["repeats"], opts["seconds"] / opts["repeats"]
    lines = [f"# {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}",
             "# " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()),
             f"# latency_us: REQ/REP round trip, median of {repeats} repeats of ~{each:.2g} s; "
             f"msgs_per_s, MB_per_s (10^6 B): PUSH/PULL, median of {repeats} phases, "
             "each timed to the receiver's ack",
             "# lat_vs_zmq (lower is better), thr_vs_zmq (higher is better): against pyzmq at the same size, "
             "over the same transport where measured, else over tcp"]
    if opts.get("floor_rounds", 1) > 1:
        lines.append(f"# the rows issue 7's floors compare: median of {opts['floor_rounds']} rounds, each round "
                     "measuring all of them once, a floor's two rows together (this machine's speed drifts "
                     "over minutes)")
    if "nnofi-batch" in libs:
        lines.append("# nnofi-batch: PUSH/PULL with send_many/recv_many (no REQ/REP), "
                     f"sizes up to {human(budget.BATCH_MAX_SIZE)}")
    if sweep.NANOMSG in libs:
        lines.append("# nanomsg: Debian's libnanomsg driven by a C program (nnofi/perf/nanomsg_driver.c), "
                     "same protocol")
    if FI_PINGPONG in libs:
        lines.append("# fi_pingpong: libfabric's ping-pong (-e msg; shm: -e rdm), server and client pinned "
                     f"to two CPUs, latency_us = 2 x its usec/xfer (one-way), median of {repeats} runs; "
                     "its MB/s has one message in flight")
    lines += [f"# skipped {why}" for why in skipped]
    return "\n".join(lines)
