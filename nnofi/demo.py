"""`make demo`: request/reply, pair and pipeline over every transport (ofi:// on libfabric's tcp provider), the peer in a
second process where the transport crosses processes, with a line each.

    python -m nnofi.demo
"""
from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import threading
import time
import uuid
from multiprocessing.process import BaseProcess
from typing import Tuple, Union

import nnofi
from nnofi.options import SocketOptions

OPTS: SocketOptions = {"recv_timeout": 5000, "send_timeout": 5000}
ROUNDS = 1000


def _peer(kind: str, url: str) -> None:
    """The far side: echoes REQ/REP and PAIR, drains PUSH/PULL."""
    if kind == "reqrep":
        with nnofi.Req(connect=url, **OPTS) as req:
            for i in range(ROUNDS):
                req.send(b"ping %d" % i)
                assert req.recv() == b"pong %d" % i
    elif kind == "pair":
        with nnofi.Pair(connect=url, **OPTS) as pair:
            for _ in range(ROUNDS):
                pair.send(pair.recv())
    elif kind == "pipeline":
        with nnofi.Push(connect=url, **OPTS) as push:
            for i in range(ROUNDS):
                push.send(b"job %d" % i)


def _near(kind: str, url: str) -> Tuple[nnofi.Socket, nnofi.Endpoint]:
    sock: nnofi.Socket
    if kind == "reqrep":
        sock = nnofi.Rep(**OPTS)
    elif kind == "pair":
        sock = nnofi.Pair(**OPTS)
    else:
        sock = nnofi.Pull(**OPTS)
    return sock, sock.bind(url)


def _serve(kind: str, sock: nnofi.Socket) -> None:
    for i in range(ROUNDS):
        if kind == "reqrep":
            assert sock.recv() == b"ping %d" % i
            sock.send(b"pong %d" % i)
        elif kind == "pair":
            sock.send(b"echo %d" % i)
            assert sock.recv() == b"echo %d" % i
        else:
            assert sock.recv() == b"job %d" % i


def run_one(kind: str, transport: str, tmp: str) -> str:
    url = {
        "inproc": f"inproc://demo-{uuid.uuid4().hex}",
        "ipc": f"ipc://{tmp}/{kind}.ipc",
        "tcp": "tcp://127.0.0.1:0",
        "ofi": "ofi://127.0.0.1:0@tcp",
    }[transport]
    sock, ep = _near(kind, url)
    with sock:
        start = time.perf_counter()
        peer: Union[threading.Thread, BaseProcess]
        if transport == "inproc":
            peer = threading.Thread(target=_peer, args=(kind, ep.url))
        else:
            peer = mp.get_context("spawn").Process(target=_peer, args=(kind, ep.url))
        peer.start()
        _serve(kind, sock)
        peer.join(10)
        took = time.perf_counter() - start
        stats = sock.stats
    return (
        f"{kind:9} {transport:7} {ep.url:44} {ROUNDS} msgs ok  "
        f"{took * 1e3:6.0f} ms with peer start-up  in={stats['msgs_recv']} out={stats['msgs_sent']}"
    )


def main() -> None:
    print(f"nnofi {nnofi.__version__} demo, pid {os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="nnofi-demo-") as tmp:
        for kind in ("reqrep", "pair", "pipeline"):
            for transport in ("inproc", "ipc", "tcp", "ofi"):
                print(run_one(kind, transport, tmp), flush=True)


if __name__ == "__main__":
    main()
