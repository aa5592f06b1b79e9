"""A plain socket to an nnofi listener, for tests that play a raw peer
(wire format, hostile peers, fd exhaustion)."""
import socket


def connect(url, timeout=5.0):
    """Connect to a tcp:// or ipc:// URL; every call on the socket is
    bounded by timeout."""
    if url.startswith("ipc://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(url[len("ipc://"):])
    else:
        host, port = url[len("tcp://"):].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s
