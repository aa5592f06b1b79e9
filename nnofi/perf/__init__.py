"""`make bench` / `nnofi perf` / `python -m nnofi.perf`: REQ/REP round-trip
latency and PUSH/PULL throughput of nnofi beside pyzmq, pynng, nanomsg (C)
and libfabric's fi_pingpong, measured in one run on one machine, for
message sizes 64 B to 64 MiB; a table on stdout, JSON and a PNG plot in
build/bench/, and issue 7's floors printed met or missed.

One job per module:

    budget       how long and how much each measurement runs, by size
    transports   the transports and where ofi+PROVIDER binds
    adapters     pyzmq, pynng, nnofi and nnofi-batch behind one interface
    measure      the timing loops (latency, throughput) inside a cell
    cells        a Python library's cell in two processes, with a deadline
    nanomsg_c    builds and runs nanomsg_driver.c (libnanomsg's rows)
    fi_pingpong  libfabric's fi_pingpong, the physical reference for ofi
    memory       the RSS check: a 1 GiB numpy array over ofi+shm
    sweep        which rows a run has, measured in table order
    report       table, ratios, floors, JSON
    plot         the PNG (matplotlib)
    cli          the command line

How a cell is measured: every measurement runs as two fresh processes
(spawn): a server (REP or PULL) that binds and a client (REQ or PUSH) that
connects and times, with a control channel between them; inproc runs the
server as a thread. Latency: a warm-up, then `repeats` repeats of about
seconds/repeats each; the median of their mean round trips. Throughput: a
warm-up burst the receiver acks, then `repeats` phases, each timed from its
first send to the receiver's ack of its end mark (so it times delivery, not
queueing) and checked against the receiver's count; the median rate. Every
socket has send and receive timeouts and every cell a deadline, after
which its processes are killed, so the bench never hangs. A library that
is not installed (or a nanomsg driver that cannot be built) gets rows that
say so.
"""
from .adapters import ADAPTERS
from .cells import run_cell
from .cli import main
from .fi_pingpong import FiPingpong, FiPingpongError, parse_fi_pingpong
from .measure import measure_latency, measure_throughput
from .report import FLOORS, floor_lines, floors, human, parse_size, short, table

__all__ = ["ADAPTERS", "FLOORS", "FiPingpong", "FiPingpongError", "floor_lines", "floors", "human", "main",
           "measure_latency", "measure_throughput", "parse_fi_pingpong", "parse_size", "run_cell", "short", "table"]
