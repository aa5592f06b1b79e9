"""Run by test_wheel.py with the python of a fresh venv that holds only the
nnofi wheel and cffi: the installed package (never a source tree) makes
REQ/REP round trips over inproc, tcp and ofi (libfabric's tcp provider),
and each compiled module comes from the wheel."""
import importlib.metadata
import os
import sys
import sysconfig
import uuid

import nnofi
from nnofi import _fast, _msgbuf, _native

OPTS = {"recv_timeout": 5000, "send_timeout": 5000}


def round_trip(url: str) -> None:
    with nnofi.Rep(**OPTS) as rep:
        real = rep.bind(url).url
        with nnofi.Req(connect=real, **OPTS) as req:
            req.send(b"ping")
            rep.send(rep.recv() + b" pong")  # nnofi._fast
            assert req.recv() == b"ping pong"
            req.send(b"again")
            msg = rep.recv_msg()  # nnofi.Message: nnofi._msgbuf
            assert bytes(msg) == b"again", msg
            rep.send_msg(msg)
            assert req.recv() == b"again"
    print(f"round trip ok: {real}")


def main() -> None:
    site = os.path.realpath(sysconfig.get_paths()["platlib"])
    for module in (nnofi, _native, _fast, _msgbuf):
        where = os.path.realpath(module.__file__)
        assert where.startswith(site + os.sep), f"{module.__name__} comes from {where}, not {site}"
    assert importlib.metadata.version("nnofi") == nnofi.__version__
    for url in (f"inproc://wheel-{uuid.uuid4().hex}", "tcp://127.0.0.1:0", "ofi://127.0.0.1:0@tcp"):
        round_trip(url)
    with open("/proc/self/maps") as maps:
        libfabric = sorted({line.split()[-1] for line in maps if "libfabric.so" in line})
    assert libfabric, "libfabric is not mapped"
    print(f"python {sys.version.split()[0]}, nnofi from {site}, libfabric {' '.join(libfabric)}")


if __name__ == "__main__":
    main()
