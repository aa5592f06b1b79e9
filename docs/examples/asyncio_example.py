"""nnofi with asyncio: several coroutines on one event loop.

A REP coroutine squares numbers; five REQ coroutines ask it at the same
time; each client also reports its progress through PUSH to a PULL
coroutine that counts the reports. Every await (asend, arecv) lets the
other coroutines run while a socket has nothing to do.

    python docs/examples/asyncio_example.py                      # inproc
    python docs/examples/asyncio_example.py --transport tcp      # or ipc, ofi
"""
import argparse
import asyncio
import os
import tempfile

import nnofi

CLIENTS = 5
QUESTIONS = 4
TIMEOUT_MS = 5000  # recv_timeout, send_timeout: nothing waits for ever


def address(transport: str, name: str) -> str:
    """Where to bind: tcp and ofi take port 0 (a free one)."""
    if transport == "inproc":
        return f"inproc://example-{name}-{os.getpid()}"
    if transport == "ipc":
        return f"ipc://{tempfile.gettempdir()}/nnofi-example-{name}-{os.getpid()}.ipc"
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    return "ofi://127.0.0.1:0@tcp"


async def squarer(rep: nnofi.Rep, requests: int) -> int:
    for _ in range(requests):
        n = int(await rep.arecv())
        await rep.asend(b"%d" % (n * n))
    return requests


async def client(k: int, server: str, monitor: str) -> "list[int]":
    with nnofi.Req(connect=server, recv_timeout=TIMEOUT_MS) as req, \
         nnofi.Push(connect=monitor, send_timeout=TIMEOUT_MS) as report:
        answers = []
        for q in range(QUESTIONS):
            await req.asend(b"%d" % (10 * k + q))
            answers.append(int(await req.arecv()))
            await report.asend(b"client %d has %d answers" % (k, len(answers)))
        return answers


async def count_reports(pull: nnofi.Pull, expected: int) -> int:
    seen = 0
    while seen < expected:
        await pull.arecv()
        seen += 1
    return seen


async def main(transport: str) -> None:
    with nnofi.Rep(recv_timeout=TIMEOUT_MS) as rep, nnofi.Pull(recv_timeout=TIMEOUT_MS) as pull:
        server = rep.bind(address(transport, "squares")).url
        monitor = pull.bind(address(transport, "reports")).url
        total = CLIENTS * QUESTIONS
        serving = asyncio.ensure_future(squarer(rep, total))
        counting = asyncio.ensure_future(count_reports(pull, total))
        answers = await asyncio.gather(*(client(k, server, monitor) for k in range(CLIENTS)))
        served, reports = await serving, await counting
        for k, got in enumerate(answers):
            print(f"client {k}: {' '.join(map(str, got))}")
        print(f"served {served} requests, counted {reports} progress reports")
        # nothing more comes: wait_for gives up, and the socket stays usable
        try:
            await asyncio.wait_for(pull.arecv(), 0.1)
        except asyncio.TimeoutError:
            print("no more reports")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["inproc", "ipc", "tcp", "ofi"], default="inproc")
    asyncio.run(main(parser.parse_args().transport))
