"""The progress line: drawn on stderr when forced (--progress) or when
stderr is a terminal, never otherwise; the data it reports on arrives
whole."""
import io
import re
import time

from clihelpers import bind_url, bound

from nnofi._progress import Progress, clock, human_size, wanted


def frames(stderr):
    """The states a progress line went through (it redraws after a \\r)."""
    return [f.rstrip() for f in stderr.decode().split("\r") if f.strip()]


def test_sending_a_big_file_in_chunks_draws_a_bar(spawn, ipc_dir):
    size = 4 * 1024 * 1024 + 1000
    data = bytes((i * 31) % 256 for i in range(size))
    path = f"{ipc_dir}/big.bin"
    with open(path, "wb") as f:
        f.write(data)
    url = bind_url("tcp", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--raw", "--count", "65", "--recv-timeout", "20")
    push = spawn.nnofi("cat", "--push", "--connect", bound(pull, url), "-F", path, "--chunk", "64K", "--progress")
    status, out, err = push.finish()
    assert (status, out) == (0, b""), err
    shown = frames(err)
    assert shown[0].startswith("nnofi cat: sent  [") and " 0%  0 B/4.0 MiB" in shown[0], shown
    final = r"nnofi cat: sent  \[#{24}\] 100%  4\.0 MiB/4\.0 MiB  [\d.]+ [KMG]?i?B/s  0:\d\d"
    assert re.fullmatch(final, shown[-1]), shown
    assert err.endswith(b"\n")
    status, out, err = pull.finish()
    assert (status, out) == (0, data), err


def test_receiving_counts_messages(spawn, ipc_dir):
    url = bind_url("ipc", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", "5", "--format", "none", "--progress")
    push = spawn.nnofi("cat", "--push", "--connect", url, "-D", "x", "--count", "5")
    assert push.finish()[0] == 0
    status, out, err = pull.finish()
    assert status == 0, err
    assert re.match(r"nnofi cat: received  \[#{24}\] 100%  5 msgs/5 msgs", frames(err)[-1]), err


def test_no_progress_unless_asked_or_on_a_terminal(spawn, ipc_dir):
    url = bind_url("ipc", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", "5", "--raw")
    push = spawn.nnofi("cat", "--push", "--connect", url, "-D", "x", "--count", "5")
    assert push.finish() == (0, b"", b"")  # stderr is a pipe here: nothing drawn
    assert pull.finish() == (0, b"xxxxx", b"")


# -- the module itself ------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_wanted_follows_the_terminal_or_force():
    assert wanted(False, Terminal()) and not wanted(False, io.StringIO()) and wanted(True, io.StringIO())


def test_bar_counter_and_helpers():
    stream = io.StringIO()
    with Progress("copy", total=2048, unit="B", enabled=True, stream=stream, min_interval=0) as bar:
        bar.advance(1024)
        half = r"copy  \[#{12} {12}\]  50%  1\.0 KiB/2\.0 KiB  [\d.]+ (KiB|MiB|GiB)/s  ETA 0:\d\d"
        assert re.fullmatch(half, bar.line())
        bar.advance(1024)
    assert stream.getvalue().endswith("\n") and "100%  2.0 KiB/2.0 KiB" in stream.getvalue()
    counter = Progress("build", enabled=True, stream=io.StringIO())
    counter.note("images")
    assert re.fullmatch(r"build  [|/\\-]  0:00  images", counter.line())
    assert human_size(512) == "512 B" and human_size(3 * 1024 ** 3) == "3.0 GiB"
    assert clock(65.2) == "1:05" and clock(3725) == "1:02:05"


def test_redraws_are_throttled_and_output_goes_above():
    stream = io.StringIO()
    bar = Progress("n", total=10 ** 6, unit="msgs", enabled=True, stream=stream, min_interval=60)
    with bar:
        for _ in range(10 ** 5):
            bar.advance()
        out = io.StringIO()
        bar.print_line("a line of output", out)
    # the opening draw, the redraw after the printed line, the final one: not 100000
    assert stream.getvalue().count("\r") <= 5, stream.getvalue().count("\r")
    assert out.getvalue() == "a line of output\n"


def test_disabled_writes_nothing():
    stream = io.StringIO()
    with Progress("x", total=3, enabled=False, stream=stream) as bar:
        bar.advance(3)
        bar.start_ticking(0.01)
        time.sleep(0.05)
    assert stream.getvalue() == ""


def test_ticking_moves_the_clock_while_the_caller_waits():
    stream = io.StringIO()
    with Progress("wait", enabled=True, stream=stream) as bar:
        bar.start_ticking(0.02)
        time.sleep(0.3)
    assert stream.getvalue().count("\r") >= 4  # drawn by the ticker, not by the caller
