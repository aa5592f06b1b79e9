"""Running `nnofi` (and nanocat) as processes with deadlines: their output
is collected by threads, so a full pipe never stalls one and a test can
wait for a line (the URL a port-0 bind got) without blocking for good."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

NNOFI = [sys.executable, "-m", "nnofi.cli"]
TIMEOUT = 30.0  # the longest any one command of these tests may take
NANOCAT = shutil.which("nanocat")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, input=None, timeout=TIMEOUT, env=None):
    """`nnofi ARGS` to completion, in the repository's root (relative test
    paths): a CompletedProcess with bytes output."""
    return subprocess.run([*NNOFI, *args], input=input, capture_output=True, timeout=timeout, env=env, cwd=REPO)


def one_line_error(result):
    """The error a failed command printed: exactly one line, no traceback."""
    err = result.stderr.decode(errors="replace")
    assert result.returncode != 0, f"expected a failure, got status 0; stderr: {err!r}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    return lines[0]


class Proc:
    """A command running in the background."""

    def __init__(self, argv, stdin=None):
        self.argv = argv
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out = bytearray()
        self._err = bytearray()
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._pump, args=(self.popen.stdout, self._out), daemon=True),
                         threading.Thread(target=self._pump, args=(self.popen.stderr, self._err), daemon=True)]
        for t in self._readers:
            t.start()
        if stdin is not None:
            self.popen.stdin.write(stdin)
            self.popen.stdin.close()

    def _pump(self, pipe, into):
        for chunk in iter(lambda: pipe.read1(65536), b""):
            with self._cond:
                into += chunk
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stdout(self):
        with self._cond:
            return bytes(self._out)

    @property
    def stderr(self):
        with self._cond:
            return bytes(self._err)

    def wait_for(self, pattern, stream="stderr", timeout=10.0):
        """The first match of the regex pattern (bytes) in the stream,
        waiting for it at most `timeout` seconds."""
        buf = self._err if stream == "stderr" else self._out
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = re.search(pattern, bytes(buf))
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not any(t.is_alive() for t in self._readers)):
                    raise AssertionError(f"{pattern!r} not seen on {stream} of {self.argv} within {timeout}s "
                                         f"(status {self.popen.poll()}); stdout {bytes(self._out)[-500:]!r}, "
                                         f"stderr {bytes(self._err)[-500:]!r}")
                self._cond.wait(min(left, 0.1))

    def bound_url(self, timeout=10.0):
        """The URL `nnofi cat` says it bound (a port-0 bind's real port)."""
        return self.wait_for(rb"nnofi cat: bound (\S+)", timeout=timeout).group(1).decode()

    def finish(self, timeout=TIMEOUT):
        """Wait for the exit: (status, stdout, stderr). Killed, and the
        test failed, if it does not exit in time."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.argv} did not exit within {timeout}s; stdout {self.stdout[-500:]!r}, "
                                 f"stderr {self.stderr[-500:]!r}") from None
        for t in self._readers:
            t.join(5)
        return self.popen.returncode, self.stdout, self.stderr

    def stop(self):
        """End it if it still runs (SIGTERM, then SIGKILL)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for t in self._readers:
            t.join(5)


class Spawner:
    """Starts commands and ends whatever still runs at the test's end."""

    def __init__(self):
        self.procs = []

    def nnofi(self, *args, stdin=None):
        p = Proc([*NNOFI, *args], stdin=stdin)
        self.procs.append(p)
        return p

    def nanocat(self, *args):
        p = Proc([NANOCAT, *args])
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            p.stop()


def bind_url(transport, ipc_dir, name="s"):
    """What to bind for a transport: port 0 for tcp and ofi (the process
    says the real port), a fresh socket file for ipc."""
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    if transport == "ipc":
        return f"ipc://{os.path.join(ipc_dir, name)}.ipc"
    if transport == "ofi":
        return "ofi://127.0.0.1:0@tcp"
    raise ValueError(transport)


def bound(proc, url):
    """The URL a peer connects to: the one the process reported for port 0."""
    return proc.bound_url() if url.startswith(("tcp://", "ofi://")) else url
