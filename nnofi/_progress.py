"""A one-line progress display on stderr for the command line, without a
dependency: a bar when the total is known, a counter and the elapsed time
when it is not (lab image builds).

    with Progress("send", total=len(data), unit="B", enabled=wanted(args.progress)) as bar:
        for chunk in chunks:
            sock.send(chunk)
            bar.advance(len(chunk))

It is drawn only where a person watches (wanted(): stderr is a terminal)
or when forced (--progress); it redraws at most every `min_interval` seconds so a tight loop
pays almost nothing, and uses no escape codes: a carriage return and
spaces clear the line, so it reads right on any terminal.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from types import TracebackType
from typing import Iterator, Optional, TextIO, Type

_SPINNER = "|/-\\"


def wanted(force: bool, stream: Optional[TextIO] = None) -> bool:
    """Draw progress? When forced, or when the stream is a terminal."""
    if force:
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def human_size(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units, as the README's sizes are)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def clock(seconds: float) -> str:
    """65.2 -> '1:05'."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """A progress line for `label`: advance() as work is done, note() for
    the current step, print_line() for a line of output above it, close()
    (or the with block's end) to finish it with a newline.

    total: the amount of work (None: unknown, a counter and a spinner are
    drawn); unit: "B" shows sizes and a byte rate, anything else is a
    count of that unit ("msgs"); enabled: False makes every call a no-op."""

    def __init__(
        self,
        label: str,
        total: Optional[float] = None,
        unit: str = "",
        *,
        enabled: bool,
        stream: Optional[TextIO] = None,
        min_interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0.0
        self.stream: TextIO = sys.stderr if stream is None else stream
        self.enabled = enabled
        self._terminal = wanted(False, self.stream)
        self.min_interval = min_interval
        self._note = ""
        self._start = time.monotonic()
        self._last_draw = -1.0
        self._width = 0  # characters of the line now on screen, to blank it
        self._frame = 0
        self._lock = threading.Lock()  # the ticker thread draws too
        self._ticker: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._closed = False

    # -- what the caller reports ---------------------------------------------------
    def advance(self, amount: float = 1) -> None:
        self.done += amount
        self._maybe_draw()

    def note(self, text: str) -> None:
        """The current step, shown after the figures (e.g. 'images')."""
        self._note = text
        self._maybe_draw(force=True)

    def print_line(self, text: str, out: Optional[TextIO] = None) -> None:
        """Write a line of output (to stdout by default) without tearing
        the progress line."""
        out = sys.stdout if out is None else out
        with self.above():
            out.write(text if text.endswith("\n") else text + "\n")
            out.flush()

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Write output inside this block: the progress line is blanked
        first and drawn again below what was written."""
        with self._lock:
            self._blank()
            try:
                yield
            finally:
                if not self._closed:
                    self._draw()

    def start_ticking(self, every: float = 0.5) -> None:
        """Redraw from a thread (the elapsed time moves while the caller is
        blocked, e.g. waiting for an image build)."""
        if not self.enabled or self._ticker is not None:
            return

        def tick() -> None:
            while not self._stop.wait(every):
                self._maybe_draw(force=True)

        self._ticker = threading.Thread(target=tick, name="nnofi-progress", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        """Draw the final state and end the line (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self.enabled:
            with self._lock:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()

    def __enter__(self) -> "Progress":
        self._maybe_draw(force=True)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # -- drawing -------------------------------------------------------------------
    def line(self) -> str:
        """The progress line as it reads now (without the carriage return)."""
        elapsed = time.monotonic() - self._start
        parts = [self.label]
        if self.total:
            frac = min(max(self.done / self.total, 0.0), 1.0)
            parts.append(f"[{'#' * int(frac * 24):<24}] {frac * 100:3.0f}%")
            parts.append(f"{self._amount(self.done)}/{self._amount(self.total)}")
        else:
            if not self._closed:
                parts.append(_SPINNER[self._frame % len(_SPINNER)])
            if self.done or self.unit:
                parts.append(self._amount(self.done))
        if elapsed > 0 and self.done and self.unit:
            parts.append(f"{self._amount(self.done / elapsed)}/s")
        if self.total and self.done and not self._closed and self.done < self.total:
            parts.append(f"ETA {clock((self.total - self.done) * elapsed / self.done)}")
        else:
            parts.append(clock(elapsed))
        if self._note:
            parts.append(self._note)
        return "  ".join(parts)

    def _amount(self, n: float) -> str:
        if self.unit == "B":
            return human_size(n)
        return f"{n:.0f} {self.unit}".rstrip()

    def _maybe_draw(self, force: bool = False) -> None:
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        with self._lock:
            self._draw()

    def _draw(self) -> None:
        # caller holds self._lock
        if not self.enabled:
            return
        self._last_draw = time.monotonic()
        self._frame += 1
        text = self.line()
        if self._terminal:  # a line longer than the terminal would wrap, and \r would not reach its start
            text = text[: max(shutil.get_terminal_size((100, 24)).columns - 1, 20)]
        pad = max(self._width - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def _blank(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
