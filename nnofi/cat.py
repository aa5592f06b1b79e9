"""`nnofi cat`: nanocat for nnofi. One socket of any type, bound and/or
connected to any URLs, sending what it is given and printing what it
receives, in nanocat's formats (byte for byte: tests/cli compares the two).

What each socket type does, as nanocat does it:

    push, pub          send DATA (once, or every --interval), then exit
    pull, sub          print every message received
    req                send DATA, print the reply (again every --interval)
    surveyor           send DATA, print the answers until the deadline
    rep, respondent    print each request, answer DATA, or echo the request
    pair, bus          send DATA if given (once or every --interval) and
                       print what arrives

Where nanocat stays silent, nnofi cat says what went wrong and exits 1: a
receive that times out before the first message (or before --count of
them), a request nobody answers, a send nobody takes.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
from typing import BinaryIO, Callable, Dict, List, Optional, Sequence, Type, Union

from . import _progress
from .errors import BadState, Timeout
from .options import OPTIONS
from .protocols import Bus, Pair, Pub, Pull, Push, Rep, Req, Respondent, Sub, Surveyor
from .socket import Socket

SOCKET_TYPES: Dict[str, Type[Socket]] = {
    "pair": Pair,
    "push": Push,
    "pull": Pull,
    "req": Req,
    "rep": Rep,
    "pub": Pub,
    "sub": Sub,
    "surveyor": Surveyor,
    "respondent": Respondent,
    "bus": Bus,
}

# What a socket type does with DATA and with what it receives.
SENDS_ONLY = ("push", "pub")
RECEIVES_ONLY = ("pull", "sub")
ASKS = ("req", "surveyor")
ANSWERS = ("rep", "respondent")
BOTH_WAYS = ("pair", "bus")

FORMATS = ("ascii", "quoted", "hex", "raw", "msgpack", "none")

EPILOG = """\
examples:
  nnofi cat --rep --bind tcp://127.0.0.1:5555 -D pong -A
  nnofi cat --req --connect tcp://127.0.0.1:5555 -D ping -A        (prints: pong)
  nnofi cat --pull --bind 'ofi://127.0.0.1:0@tcp' --raw > out.bin  (prints the port it got)
  nnofi cat --push --connect ofi://127.0.0.1:PORT@tcp -F big.bin --chunk 1M
  ls | nnofi cat --push -L 5555 -F -
  nnofi cat --sub --connect ipc:///tmp/feed --subscribe temp -Q --count 10
  nnofi cat --pub --bind ipc:///tmp/feed -D 'temp 21.5' -i 1 -d 0.5
  nnofi cat -T surveyor --bind tcp://127.0.0.1:5556 -D 'who?' --deadline 0.5

formats (of received messages, nanocat's): -A prints printable ASCII and a
'.' for every other byte, a message a line; -Q quotes each message with
C escapes (\\n \\r \\\\ \\" \\xNN); --hex quotes \\xNN for every byte; --raw
writes the bytes alone, nothing between messages; --msgpack writes each as
a msgpack bin; --format none prints nothing. Default: -A.

exit status: 0 done; 1 an error (a bad or busy address, a timeout before
the first message or before --count of them, a request or survey nobody
answered, a send nobody took); 2 a usage error."""


class UsageError(ValueError):
    """A mistake on the command line (exit status 2)."""


class CatError(RuntimeError):
    """The command could not do what it was asked (exit status 1)."""


# -- the command line ------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be a finite number, 0 or more")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...)")
    return int(text)


_SIZE = re.compile(r"(\d+)\s*([kmg]?)(i?b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'65536', '64K', '64KiB', '1M', '2g' -> bytes (binary multiples)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 65536, 64K, 1M)")
    value = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the size must be at least 1 byte")
    return value


def _port(prefix: str) -> Callable[[str], str]:
    def url(port: str) -> str:
        if not port.isdigit() or int(port) > 65535:
            raise argparse.ArgumentTypeError(f"{port!r} is not a port number")
        return prefix + port

    return url


def _ipc(path: str) -> str:
    return "ipc://" + path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """nanocat's options (and a few of nnofi's own) on `parser`."""
    kinds = parser.add_argument_group("socket type (one of)")
    kind = kinds.add_mutually_exclusive_group()
    for name in SOCKET_TYPES:
        kind.add_argument(f"--{name}", dest="type", action="store_const", const=name, help=f"a {name.upper()} socket")
    kind.add_argument("-T", "--type", dest="type", metavar="NAME",
                      help="the socket type by name: " + ", ".join(SOCKET_TYPES))

    where = parser.add_argument_group("addresses (any number; see the URLs in README.md)")
    where.add_argument("--bind", action="append", default=[], metavar="URL",
                       help="listen on URL: inproc://, ipc://, tcp://HOST:PORT, ofi://IP:PORT[@FABRIC[:PROVIDER]]; "
                            "port 0 picks a free port, printed on stderr")
    where.add_argument("--connect", action="append", default=[], metavar="URL", help="dial URL (in the background, "
                       "redialing until a peer is there)")
    where.add_argument("-X", "--bind-ipc", dest="bind", action="append", type=_ipc, metavar="PATH",
                       help="--bind ipc://PATH")
    where.add_argument("-x", "--connect-ipc", dest="connect", action="append", type=_ipc, metavar="PATH",
                       help="--connect ipc://PATH")
    where.add_argument("-L", "--bind-local", dest="bind", action="append", type=_port("tcp://127.0.0.1:"),
                       metavar="PORT", help="--bind tcp://127.0.0.1:PORT")
    where.add_argument("-l", "--connect-local", dest="connect", action="append", type=_port("tcp://127.0.0.1:"),
                       metavar="PORT", help="--connect tcp://127.0.0.1:PORT")

    send = parser.add_argument_group("what to send")
    source = send.add_mutually_exclusive_group()
    source.add_argument("-D", "--data", metavar="DATA", help="the message: what push, pub, pair and bus send, "
                        "req and surveyor ask, rep and respondent answer (without it they echo the request)")
    source.add_argument("-F", "--file", metavar="PATH", help="the message is this file's content (- : stdin)")
    send.add_argument("--chunk", type=parse_size, metavar="SIZE",
                      help="send the data as messages of at most SIZE bytes (64K, 1M, ...), for files "
                           "larger than the receiver's recv_max_size (default 1 MiB); push, pub, pair, bus")
    send.add_argument("-i", "--interval", type=_seconds, metavar="SEC",
                      help="send again every SEC seconds (a request, a survey, or the next message)")
    send.add_argument("-d", "--delay", type=_seconds, default=0.0, metavar="SEC",
                      help="wait SEC seconds before the first send (a one-shot pub's subscribers connect)")
    send.add_argument("-c", "--count", type=_count, metavar="N",
                      help="exit after N messages: sent ones for push and pub, received (printed) ones "
                           "otherwise (replies, answers, requests served); default: 1 request for req, "
                           "else until a timeout or interrupted")

    limits = parser.add_argument_group("timeouts and options")
    limits.add_argument("--recv-timeout", type=_seconds, metavar="SEC",
                        help="longest wait for a message (default: forever); it ends the run: an error "
                             "before the first message or before --count of them")
    limits.add_argument("--send-timeout", type=_seconds, metavar="SEC",
                        help="longest a send may wait for a peer to take the message, and at the end "
                             "how long the messages sent may take to leave (default: forever)")
    limits.add_argument("--deadline", type=_seconds, metavar="SEC",
                        help="surveyor: how long a survey collects answers (default 1)")
    limits.add_argument("--subscribe", action="append", default=[], metavar="PREFIX",
                        help="sub: receive the messages that start with PREFIX (repeatable; default: all)")
    limits.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="any socket option, e.g. recv_max_size=-1 (no size limit), linger=5000: "
                             + ", ".join(sorted(OPTIONS)))

    out = parser.add_argument_group("how received messages are printed")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--format", choices=FORMATS, metavar="FORMAT",
                     help="by name: " + ", ".join(FORMATS) + " (default ascii; none prints nothing)")
    fmt.add_argument("-A", "--ascii", dest="format", action="store_const", const="ascii",
                     help="printable ASCII, '.' for other bytes, a line each")
    fmt.add_argument("-Q", "--quoted", dest="format", action="store_const", const="quoted",
                     help='"quoted", with C escapes, a line each')
    fmt.add_argument("--hex", dest="format", action="store_const", const="hex",
                     help='"\\xNN" for every byte, a line each')
    fmt.add_argument("--raw", dest="format", action="store_const", const="raw",
                     help="the bytes exactly, nothing between messages")
    fmt.add_argument("--msgpack", dest="format", action="store_const", const="msgpack",
                     help="each message as a msgpack bin")
    out.add_argument("-v", "--verbose", action="store_true", help="say on stderr where the socket bound and connected")
    out.add_argument("--progress", action="store_true",
                     help="draw a progress line on stderr even when it is not a terminal")


# -- the formats (nanocat's nn_print_message, byte for byte) --------------------------

_ASCII = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))
_QUOTED = [
    {0x0A: b"\\n", 0x0D: b"\\r", 0x5C: b"\\\\", 0x22: b'\\"'}.get(b, bytes([b]) if 0x20 <= b < 0x7F else b"\\x%02x" % b)
    for b in range(256)
]
_HEX = [b"\\x%02x" % b for b in range(256)]


def render(fmt: str, data: bytes) -> bytes:
    """A received message as nanocat prints it in format `fmt`."""
    if fmt == "ascii":
        return data.translate(_ASCII) + b"\n"
    if fmt == "quoted":
        return b'"' + b"".join(_QUOTED[b] for b in data) + b'"\n'
    if fmt == "hex":
        return b'"' + b"".join(_HEX[b] for b in data) + b'"\n'
    if fmt == "raw":
        return data
    if fmt == "msgpack":
        n = len(data)
        if n < 1 << 8:
            head = bytes([0xC4, n])
        elif n < 1 << 16:
            head = b"\xc5" + n.to_bytes(2, "big")
        else:
            head = b"\xc6" + n.to_bytes(4, "big")
        return head + data
    if fmt == "none":
        return b""
    raise UsageError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


# -- checking what was asked ---------------------------------------------------------


def _check(args: argparse.Namespace) -> str:
    """The socket type, after refusing combinations that cannot work."""
    if args.type is None:
        raise UsageError("give a socket type: --" + ", --".join(SOCKET_TYPES) + " or -T NAME")
    kind = str(args.type).lower()
    if kind not in SOCKET_TYPES:
        raise UsageError(f"unknown socket type {args.type!r} (known: {', '.join(SOCKET_TYPES)})")
    if not args.bind and not args.connect:
        raise UsageError("give at least one --bind or --connect URL")
    has_data = args.data is not None or args.file is not None
    if kind in SENDS_ONLY + ASKS and not has_data:
        raise UsageError(f"--{kind} sends: give --data DATA or --file PATH (- for stdin)")
    if kind in RECEIVES_ONLY and has_data:
        raise UsageError(f"--{kind} only receives: --data and --file are for sockets that send")
    if kind in SENDS_ONLY and args.format is not None:
        raise UsageError(f"--{kind} only sends: it receives nothing to print in --{args.format}")
    if args.subscribe and kind != "sub":
        raise UsageError("--subscribe is for --sub sockets")
    if args.deadline is not None and kind != "surveyor":
        raise UsageError("--deadline is for --surveyor sockets")
    if args.interval is not None:
        if kind in RECEIVES_ONLY + ANSWERS:
            raise UsageError(f"--interval repeats sends; --{kind} " + ("only receives" if kind in RECEIVES_ONLY
                                                                         else "answers requests as they come"))
        if args.interval <= 0:
            raise UsageError("--interval must be more than 0 seconds")
    if args.chunk is not None and (kind not in SENDS_ONLY + BOTH_WAYS or not has_data):
        raise UsageError("--chunk splits the data that push, pub, pair and bus send")
    return kind


def _options(pairs: Sequence[str]) -> Dict[str, int]:
    found: Dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in OPTIONS:
            raise UsageError(f"--set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(OPTIONS))}")
        try:
            found[name] = int(value.strip(), 0)
        except ValueError:
            raise UsageError(f"--set {pair!r}: {value!r} is not an integer") from None
    return found


def _read_data(args: argparse.Namespace) -> Optional[bytes]:
    if args.data is not None:
        return os.fsencode(args.data)  # the bytes given, even where they are not UTF-8
    if args.file is None:
        return None
    if args.file == "-":
        return sys.stdin.buffer.read()
    try:
        with open(args.file, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CatError(f"cannot read {args.file}: {exc.strerror or exc}") from None


def _ms(seconds: float) -> int:
    return max(int(round(seconds * 1000)), 0)


def _asks_port_zero(url: str) -> bool:
    """tcp://HOST:0 and ofi://IP:0[@...]: only the endpoint's .url says which port."""
    return re.match(r"^(tcp|ofi)://.*:0(@.*)?$", url) is not None


# -- running -----------------------------------------------------------------------------


class Cat:
    """One run of `nnofi cat`: a socket, what to send, where to print."""

    def __init__(self, args: argparse.Namespace, kind: str, sock: Socket, data: Optional[bytes],
                 out: BinaryIO) -> None:
        self.args = args
        self.kind = kind
        self.sock = sock
        self.data = data
        self.out = out
        self.fmt: str = args.format or "ascii"
        self.count: Optional[int] = args.count
        self.interval: Optional[float] = args.interval
        self.recv_timeout: Optional[float] = args.recv_timeout
        self.received = 0
        self._recv_ms: Optional[int] = None
        self.messages: List[memoryview] = self._split(data)
        self.progress = self._progress()

    # -- set-up ------------------------------------------------------------------------
    def _split(self, data: Optional[bytes]) -> List[memoryview]:
        if data is None:
            return []
        view = memoryview(data)
        size: Optional[int] = self.args.chunk
        if not size or len(view) <= size:
            return [view]
        return [view[i:i + size] for i in range(0, len(view), size)]

    def _progress(self) -> _progress.Progress:
        """Bytes sent for push and pub, messages received otherwise. Drawn
        when forced, or on a terminal for a run that takes a while and
        whose printed messages do not go to that terminal too."""
        if self.kind in SENDS_ONLY:
            n = self._sends()
            size = sum(len(m) for m in self.messages)
            total: Optional[int] = None
            if n is not None:  # whole rounds of the data, then the first messages of one more
                rounds, rest = divmod(n, len(self.messages))
                total = rounds * size + sum(len(m) for m in self.messages[:rest])
            long_run = n is None or n > 1 or size >= 1 << 20
            unit, label = "B", "sent"
        else:
            total = self.count
            one_exchange = self.kind in ASKS and self.interval is None  # a request, a survey
            long_run = (self.count or 0) > 1 or (self.count is None and not one_exchange)
            unit, label = "msgs", "received"
        printing = self.kind not in SENDS_ONLY and self.fmt != "none"
        shares_terminal = printing and _progress.wanted(False, sys.stdout)  # the line would tear the output
        show = bool(self.args.progress) or (long_run and not shares_terminal and _progress.wanted(False))
        return _progress.Progress(f"nnofi cat: {label}", total, unit, enabled=show, stream=sys.stderr)

    def _sends(self) -> Optional[int]:
        """How many messages push and pub send: --count, else the data
        once, or forever (None) with --interval."""
        if self.count is not None:
            return int(self.count)
        return None if self.interval else len(self.messages)

    # -- the parts every loop uses --------------------------------------------------------
    def _show(self, data: bytes) -> None:
        self.received += 1
        text = render(self.fmt, data)
        if text:
            with self.progress.above():
                self.out.write(text)
                self.out.flush()
        if self.kind not in SENDS_ONLY:
            self.progress.advance(1)

    def _send(self, data: Union[memoryview, bytes]) -> None:
        try:
            self.sock.send(data)
        except Timeout:
            limit = self.sock.send_timeout / 1000
            raise CatError(f"send timed out after {limit:g} s (--send-timeout){self._peer_hint()}") from None
        if self.kind in SENDS_ONLY:
            self.progress.advance(len(data))

    def _recv(self, until: Optional[float]) -> Optional[bytes]:
        """The next message, or None if none came by `until` (monotonic
        seconds; None: wait as long as it takes)."""
        ms = -1 if until is None else _ms(until - time.monotonic())
        if ms != self._recv_ms:
            self.sock.recv_timeout = ms
            self._recv_ms = ms
        try:
            return self.sock.recv()
        except Timeout:
            return None

    def _idle_until(self) -> Optional[float]:
        return None if self.recv_timeout is None else time.monotonic() + self.recv_timeout

    def _peer_hint(self) -> str:
        """Why a wait may have failed: nothing ever connected, or what came
        was larger than the socket takes (its connection was closed)."""
        stats = self.sock.stats
        if stats["frames_oversize"]:
            return (f"; {stats['frames_oversize']} message(s) larger than recv_max_size ({self.sock.recv_max_size} "
                    "bytes) were refused: --set recv_max_size=-1 takes any size")
        if stats["pipes_opened"]:
            return ""
        dialed = [e.url for e in self.sock.endpoints if e.kind == "connect"]
        if dialed:
            return f"; no connection to {', '.join(dialed)} was made (is anything bound there?)"
        return f"; nothing connected to {', '.join(e.url for e in self.sock.endpoints)}"

    def _ended(self, what: str) -> int:
        """A receive timed out: the end of the run, or an error if fewer
        messages came than asked for (at least one)."""
        wanted = 1 if self.count is None else self.count
        if self.received >= wanted:
            return 0
        limit = f"{self.recv_timeout:g} s (--recv-timeout)"
        if self.received == 0:
            raise CatError(f"no {what} within {limit}{self._peer_hint()}")
        raise CatError(f"{self.received} of {wanted} {what}s came within {limit}{self._peer_hint()}")

    @staticmethod
    def _sleep_until(when: float) -> None:
        pause = when - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    # -- the loops ------------------------------------------------------------------------
    def run(self) -> int:
        if self.args.delay:
            time.sleep(self.args.delay)
        with self.progress:
            if self.kind in SENDS_ONLY:
                return self._send_loop()
            if self.kind == "req":
                return self._request_loop()
            if self.kind == "surveyor":
                return self._survey_loop()
            if self.kind in BOTH_WAYS and self.messages:
                return self._both_ways_loop()
            return self._receive_loop(answer=self.kind in ANSWERS)

    def _send_loop(self) -> int:
        """push, pub: --count messages (default: the data once, or forever
        with --interval), --interval apart."""
        n = self._sends()
        start = time.monotonic()
        for i, message in enumerate(itertools.cycle(self.messages)):
            if n is not None and i >= n:
                break
            if self.interval and i:
                self._sleep_until(start + i * self.interval)
            self._send(message)
        return 0

    def _receive_loop(self, answer: bool) -> int:
        """pull, sub, and pair, bus, rep, respondent without data (rep and
        respondent echo then): print each message, answer it if asked to."""
        while self.count is None or self.received < self.count:
            message = self._recv(self._idle_until())
            if message is None:
                return self._ended("request" if answer else "message")
            self._show(message)
            if answer:
                self._send(self.data if self.data is not None else message)
        return 0

    def _request_loop(self) -> int:
        """req: ask, print the reply; --count requests (default 1, or forever
        with --interval), each --interval after the one before."""
        n = self.count if self.count is not None else (None if self.interval else 1)
        start = time.monotonic()
        i = 0
        while n is None or i < n:
            if self.interval and i:
                self._sleep_until(start + i * self.interval)
            self._send(self.messages[0])
            reply = self._recv(self._idle_until())
            if reply is None:
                limit = f"{self.recv_timeout:g} s (--recv-timeout)"
                raise CatError(f"no reply within {limit}{self._peer_hint()}")
            self._show(reply)
            i += 1
        return 0

    def _survey_loop(self) -> int:
        """surveyor: ask, print the answers until the deadline; again every
        --interval; stop after --count answers."""
        deadline = 1.0 if self.args.deadline is None else self.args.deadline
        self.sock.survey_time = max(_ms(deadline), 1)
        start = time.monotonic()
        for i in itertools.count():
            if i:
                self._sleep_until(start + i * (self.interval or 0))
            self._send(self.messages[0])
            ends = time.monotonic() + deadline
            if self.interval:
                ends = min(ends, start + (i + 1) * self.interval)
            while self.count is None or self.received < self.count:
                try:
                    answer = self._recv(ends + 0.05)  # the survey's own end comes first
                except BadState:  # the survey is over
                    answer = None
                if answer is None:
                    break
                self._show(answer)
            if (self.count is not None and self.received >= self.count) or not self.interval:
                break
        wanted = 1 if self.count is None else self.count
        if self.received < wanted:
            got = "no answer" if not self.received else f"{self.received} of {wanted} answers"
            raise CatError(f"{got} within the survey's {deadline:g} s (--deadline){self._peer_hint()}")
        return 0

    def _both_ways_loop(self) -> int:
        """pair, bus with data: send it (once, or a message every
        --interval) and print what arrives, until --count messages came."""
        next_send: Optional[float] = time.monotonic()
        messages = itertools.cycle(self.messages)
        idle: Optional[float] = None
        while True:
            now = time.monotonic()
            if next_send is not None and now >= next_send:
                if self.interval:
                    self._send(next(messages))
                    next_send += self.interval
                else:
                    for outgoing in self.messages:
                        self._send(outgoing)
                    next_send = None
                if idle is None:
                    idle = self._idle_until()  # the receive timeout runs from the first send
            if self.count is not None and self.received >= self.count:
                return 0
            until = min((t for t in (next_send, idle) if t is not None), default=None)
            message = self._recv(until)
            if message is None:
                if idle is not None and time.monotonic() >= idle:
                    return self._ended("message")
                continue
            self._show(message)
            idle = self._idle_until()


def open_socket(args: argparse.Namespace, kind: str, err: Callable[[str], None]) -> Socket:
    """The socket, its options set, bound and connected; the real URL of
    each endpoint said on stderr where the user could not know it."""
    options: Dict[str, int] = {}
    if args.send_timeout is not None:
        options["send_timeout"] = _ms(args.send_timeout)
    # What cat has sent leaves before it exits, as long as a send may wait:
    # a receiver slower than the sender holds no more than its buffer, so
    # the tail of a file can still be on its way at the end.
    options["linger"] = options.get("send_timeout", -1)
    options.update(_options(args.set))
    sock = SOCKET_TYPES[kind]()
    try:
        for name, value in options.items():
            setattr(sock, name, value)  # as Socket(name=value) would; ValueError if out of range
        if isinstance(sock, Sub):
            for prefix in args.subscribe or [""]:
                sock.subscribe(os.fsencode(prefix))
        for url in args.bind:
            ep = sock.bind(url)
            if args.verbose or _asks_port_zero(url) or ep.url != url:
                err(f"bound {ep.url}")
        for url in args.connect:
            ep = sock.connect(url)
            if args.verbose:
                err(f"connecting to {ep.url}")
    except BaseException:
        sock.close()
        raise
    return sock


def run(args: argparse.Namespace) -> int:
    """`nnofi cat` with parsed arguments; raises UsageError, CatError or
    nnofi.Error with a message for the user."""
    kind = _check(args)
    data = _read_data(args)

    def err(text: str) -> None:
        print(f"nnofi cat: {text}", file=sys.stderr, flush=True)

    sock = open_socket(args, kind, err)
    try:
        return Cat(args, kind, sock, data, sys.stdout.buffer).run()
    finally:
        sock.close()
