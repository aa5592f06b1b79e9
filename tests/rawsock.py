"""A plain socket to an nnofi listener, for tests that play a raw peer
(wire format, hostile peers, fd exhaustion)."""
import socket
import time


def connect(url, timeout=5.0):
    """Connect to a tcp:// or ipc:// URL; every call on the socket is
    bounded by timeout."""
    if url.startswith("ipc://"):
        return _connect_unix(url[len("ipc://"):], timeout)
    host, port = url[len("tcp://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def _connect_unix(path, timeout):
    """A Unix socket with a timeout connects without waiting: a listener
    whose backlog is full (a connection storm) answers EAGAIN, where a
    blocking connect would wait for room. Wait for it, up to timeout."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            if time.monotonic() > deadline:
                s.close()
                raise TimeoutError(f"connect {path}: backlog full for {timeout}s") from None
            time.sleep(0.001)
