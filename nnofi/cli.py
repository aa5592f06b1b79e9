"""The `nnofi` command: info (fabrics and providers), cat (nanocat), perf
(the bench), lab (the multi-node lab), demo.

Errors a user can act on (a bad URL, an address in use, a timeout, an
unknown option) end the command with one line on stderr and a non-zero
status, never a traceback (NNOFI_TRACEBACK=1 shows one, for bugs)."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, List, NoReturn, Optional, Sequence

from . import _progress
from . import cat as cat_command
from .cat import UsageError

PROG = "nnofi"

LAB_VERBS = {
    "up": "bring the lab up: its nodes (containers, namespaces or processes), building images first",
    "down": "take the lab down",
    "status": "the lab's nodes, their state and providers (works with the lab down too)",
    "heal": "undo what a killed test run's faults left on the nodes",
    "list": "the topologies there are",
    "run": "run pytest across the lab: pytest --lab TOPOLOGY (default: the lab tests, tests/lab)",
}
# module -> the package that brings it (the [lab] extra's)
_LAB_PACKAGES = {"yaml": "pyyaml", "testinfra": "pytest-testinfra", "execnet": "execnet", "docker": "docker"}


class CommandError(RuntimeError):
    """The command cannot run here (exit status 1), e.g. a package is missing."""


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _wrap(text: str) -> str:
    """A description, wrapped as argparse would (its raw formatter keeps the
    examples' line breaks, and so would not wrap prose)."""
    return textwrap.fill(text, 79)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# -- info ------------------------------------------------------------------------------


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


# -- perf, demo ------------------------------------------------------------------------


def _perf(args: argparse.Namespace) -> int:
    from . import perf

    return int(perf.main(args.rest) or 0)


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    demo.main()
    return 0


# -- lab -------------------------------------------------------------------------------


def _lab_main() -> Callable[..., int]:
    """nnofi_lab.cli.main, or a CommandError saying what to install."""
    try:
        module = importlib.import_module("nnofi_lab.cli")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing == "nnofi_lab" or not missing:
            raise CommandError("the lab (package nnofi_lab) is not installed: it ships in nnofi's source tree; "
                               "there, pip install -e '.[lab]'") from None
        raise CommandError(f"the lab needs the Python package {_LAB_PACKAGES.get(missing, missing)}, "
                           "which is missing: pip install 'nnofi[lab]'") from None
    main: Callable[..., int] = getattr(module, "main")
    return main


def _lab_tests() -> Optional[Path]:
    """tests/lab of the source tree the lab runs from, if there is one."""
    base = importlib.import_module("nnofi_lab.backends.base")
    root: Optional[Path] = getattr(base, "repo_root")()
    return root / "tests" / "lab" if root is not None and (root / "tests" / "lab").is_dir() else None


def _names_tests(arg: str) -> bool:
    """Does a pytest argument name tests (a path, or path::test)?"""
    return not arg.startswith("-") and os.path.exists(arg.split("::")[0])


def pytest_command(topology: str, pytest_args: Sequence[str], lab_tests: Optional[Path]) -> List[str]:
    """`nnofi lab run` as the pytest command it runs: the lab's tests
    unless the arguments name some."""
    argv = [sys.executable, "-m", "pytest", "--lab", topology, *pytest_args]
    if not any(_names_tests(a) for a in pytest_args):
        if lab_tests is None:
            raise UsageError("no tests/lab here (the lab's tests are in nnofi's source tree): name the tests to run")
        argv.append(str(lab_tests))
    return argv


def _lab_run(rest: List[str]) -> int:
    _lab_main()  # the lab must be importable: pytest's --lab comes from it
    parser = Parser(prog=f"{PROG} lab run", allow_abbrev=False, formatter_class=_formatter,
                    usage=f"{PROG} lab run [-h] [--topology TOPOLOGY] [--dry-run] [PYTEST ARGS ...]",
                    description=_wrap("Run pytest on the lab's nodes: pytest --lab TOPOLOGY [PYTEST ARGS]. Without "
                                      "test paths, the lab's tests (tests/lab). The lab is brought up first if it is "
                                      "down, and down again after (pytest's --lab-keep keeps it)."),
                    epilog="examples:\n"
                           "  nnofi lab run                                  the lab tests on the lab `up` chose\n"
                           "  nnofi lab run --topology local -k pair -x\n"
                           "  nnofi lab run -t laptop tests/lab/test_lab_reqrep.py --lab-keep\n"
                           "  nnofi lab run --dry-run -t netns -n 2          print the pytest command only\n"
                           "Every other argument goes to pytest.")
    parser.add_argument("--topology", "-t", default="auto",
                        help="a name in lab/topologies (laptop, netns, local, ...), a .yaml path, or auto "
                             "(default: the lab `nnofi lab up` chose)")
    parser.add_argument("--dry-run", action="store_true", help="print the pytest command, run nothing")
    # after a "--", everything is pytest's, even what looks like ours
    ours, after = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest else (rest, [])
    args, pytest_args = parser.parse_known_args(ours)
    pytest_args += after
    if importlib.util.find_spec("pytest") is None:
        raise CommandError("lab run needs pytest: pip install 'nnofi[lab]'")
    argv = pytest_command(args.topology, pytest_args, _lab_tests())
    if args.dry_run:
        print(shlex.join(argv))
        return 0
    print(f"{PROG} lab run: {shlex.join(argv[2:])}", file=sys.stderr, flush=True)
    return subprocess.call(argv)


def _lab_relay(rest: List[str], verb: str) -> int:
    """up/down in a child process whose output (the lab's log, image builds)
    is relayed line by line under a progress line: elapsed time, step."""
    code = "import sys; from nnofi_lab.cli import main; sys.exit(main(sys.argv[1:], prog='nnofi lab'))"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen([sys.executable, "-c", code, *rest], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env)
    assert child.stdout is not None
    with _progress.Progress(f"{PROG} lab {verb}", enabled=True, stream=sys.stderr) as progress:
        progress.start_ticking()
        for raw in child.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            progress.print_line(line)
            step = line.strip()
            if step:
                progress.note(step if len(step) <= 50 else step[:47] + "...")
        status = child.wait()
        progress.note("done" if status == 0 else f"failed ({status})")
    return status


def _lab(args: argparse.Namespace) -> int:
    verb: str = args.verb
    rest: List[str] = list(args.rest)
    if verb == "run":
        return _lab_run(rest)
    main = _lab_main()
    forced = "--progress" in rest
    rest = [a for a in rest if a != "--progress"]
    if verb in ("up", "down") and _progress.wanted(forced) and not {"-h", "--help"} & set(rest):
        return _lab_relay([verb, *rest], verb)
    return int(main([verb, *rest], prog=f"{PROG} lab"))


# -- the parser --------------------------------------------------------------------------


def parser() -> Parser:
    top = Parser(prog=PROG, formatter_class=_formatter,
                 description="nanomsg's scalability protocols over inproc, ipc, tcp and libfabric (ofi://)",
                 epilog="examples:\n"
                        "  nnofi info -p tcp\n"
                        "  nnofi cat --rep --bind tcp://127.0.0.1:5555 -D pong -A\n"
                        "  nnofi perf --quick\n"
                        "  nnofi lab up && nnofi lab run -k reqrep\n"
                        "Each command has its own --help.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser("info", help="the fabrics and providers libfabric offers here (like fi_info)",
                          formatter_class=_formatter,
                          description=_wrap("The fabrics, domains and providers libfabric offers on this machine, "
                                            "one row per provider, endpoint type and domain: what "
                                            "ofi://IP:PORT@NAME can use."),
                          epilog="examples:\n"
                                 "  nnofi info                every provider\n"
                                 "  nnofi info -p tcp         tcp and tcp;ofi_rxm\n"
                                 "  nnofi info -i lo          what the loopback interface offers\n"
                                 "exit status 1 when nothing matches.")
    info.add_argument("--provider", "-p", help="only this provider (tcp, shm, verbs, sockets, ...)")
    info.add_argument("--interface", "-i", help="only this domain/interface or address (lo, eth0, 127.0.0.1)")
    info.set_defaults(run=_info)

    cat = sub.add_parser("cat", help="send and receive messages from the shell, like nanocat",
                         formatter_class=_formatter, epilog=cat_command.EPILOG,
                         description=_wrap("One socket of any type, bound or connected to any URLs (ofi:// too), "
                                           "that sends the data it is given and prints what it receives, like "
                                           "nanocat: --req asks and prints the reply, --rep prints each request and "
                                           "answers --data (or echoes it), --push/--pub send, --pull/--sub print, "
                                           "--surveyor prints the answers, --pair/--bus do both."))
    cat_command.add_arguments(cat)
    cat.set_defaults(run=cat_command.run)

    perf = sub.add_parser("perf", help="latency and throughput beside pyzmq, pynng, nanomsg and fi_pingpong "
                                       "(make bench)",
                          add_help=False)
    perf.add_argument("rest", nargs=argparse.REMAINDER)
    perf.set_defaults(run=_perf)

    lab = sub.add_parser("lab", help="the multi-node lab: up, down, status, run (pytest on its nodes)",
                         formatter_class=_formatter,
                         description=_wrap("nnofi's emulation lab: nodes that are Docker containers, network "
                                           "namespaces, local processes or ssh hosts (lab/README.md).") + "\n\nverbs:\n"
                                     + "\n".join(f"  {v:7} {h}" for v, h in LAB_VERBS.items()),
                         epilog="examples:\n"
                                "  nnofi lab up                    Docker if it answers, else netns, else local\n"
                                "  nnofi lab up --topology netns --nodes 4 --rxe\n"
                                "  nnofi lab status\n"
                                "  nnofi lab run -k pubsub         pytest --lab auto tests/lab -k pubsub\n"
                                "  nnofi lab down\n"
                                "Options after the verb: nnofi lab VERB --help. up and down draw a progress line "
                                "on a terminal (or with --progress).\nThe lab comes with nnofi's source tree: "
                                "pip install -e '.[lab]' there.")
    lab.add_argument("verb", choices=list(LAB_VERBS), metavar="VERB", help="one of: " + ", ".join(LAB_VERBS))
    lab.add_argument("rest", nargs=argparse.REMAINDER, metavar="...", help="the verb's options")
    lab.set_defaults(run=_lab)

    demo = sub.add_parser("demo", help="every socket type over every transport, printed (make demo)",
                          description="REQ/REP, PAIR and PUSH/PULL over inproc, ipc, tcp and ofi in one process.")
    demo.set_defaults(run=_demo)
    return top


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = parser()
    if not argv:
        top.exit(2, f"{PROG}: give a command: info, cat, perf, lab or demo (see '{PROG} --help')\n")
    if argv[0] == "perf":  # the bench parses its own options (and its --help)
        args = argparse.Namespace(command="perf", rest=argv[1:], run=_perf)
    else:
        args = top.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `nnofi cat ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as exc:
        print(f"{PROG} {args.command}: {_one_line(exc)} (see '{PROG} {args.command} --help')", file=sys.stderr)
        return 2
    except Exception as exc:  # a clear message, not a traceback, for a command-line user
        if os.environ.get("NNOFI_TRACEBACK"):
            raise
        print(f"{PROG} {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
