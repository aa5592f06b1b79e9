"""The `nnofi` command: info (fabrics and providers), perf, demo."""
import argparse
import sys
from typing import List, Optional


def _info(args: argparse.Namespace) -> int:
    from . import fabric

    entries = fabric.providers(args.provider)
    if args.interface:
        entries = [p for p in entries if args.interface in (p.domain, p.address)]
    print(f"libfabric {fabric.version()}")
    if not entries:
        what = f"provider {args.provider!r}" if args.provider else "any provider"
        print(f"fi_getinfo offers no {what}" + (f" on {args.interface}" if args.interface else ""))
        return 1
    print(fabric.table(entries))
    return 0


def _perf(args: argparse.Namespace) -> int:
    from . import perf

    return perf.main(args.rest) or 0


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    demo.main()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nnofi", description="nanomsg's protocols over inproc, ipc, tcp and libfabric")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="list the fabrics and providers libfabric offers here")
    info.add_argument("--provider", "-p", help="only this provider (tcp, shm, verbs, sockets, ...)")
    info.add_argument("--interface", "-i", help="only this domain/interface or address (lo, eth0, 127.0.0.1)")
    info.set_defaults(run=_info)
    perf = sub.add_parser("perf", help="latency and throughput beside pyzmq, pynng, nanomsg and fi_pingpong (make bench; "
                          "nnofi perf --help)")
    perf.add_argument("rest", nargs=argparse.REMAINDER, help="options of python -m nnofi.perf")
    perf.set_defaults(run=_perf)
    demo = sub.add_parser("demo", help="every socket type over every transport (make demo)")
    demo.set_defaults(run=_demo)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["perf"]:  # the bench parses its own options (argparse's REMAINDER refuses leading ones)
        args = argparse.Namespace(command="perf", rest=argv[1:], run=_perf)
    else:
        args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear message, not a traceback, for a command-line user
        print(f"nnofi {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
