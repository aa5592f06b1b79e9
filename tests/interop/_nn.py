"""A small ctypes binding of Debian's libnanomsg (libnanomsg.so.5), for the
PUB/SUB, SURVEY and BUS interop tests. Constants are from
/usr/include/nanomsg/{nn,pubsub,survey,bus}.h.
"""
import ctypes
import ctypes.util
import errno
import socket

AF_SP = 1
AF_SP_RAW = 2
NN_PAIR = 16
NN_PUB = 32
NN_SUB = 33
NN_REQ = 48
NN_REP = 49
NN_PUSH = 80
NN_PULL = 81
NN_SURVEYOR = 98
NN_RESPONDENT = 99
NN_BUS = 112
NN_SOL_SOCKET = 0
NN_LINGER = 1
NN_SNDTIMEO = 4
NN_RCVTIMEO = 5
NN_SUB_SUBSCRIBE = 1  # level NN_SUB
NN_SUB_UNSUBSCRIBE = 2
NN_SURVEYOR_DEADLINE = 1  # level NN_SURVEYOR
NN_DONTWAIT = 1
NN_MSG = ctypes.c_size_t(-1).value
NN_HAUSNUMERO = 156384712
EFSM = NN_HAUSNUMERO + 54
ETERM = NN_HAUSNUMERO + 53


def _load():
    for name in ("libnanomsg.so.5", ctypes.util.find_library("nanomsg")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            pass
    return None


lib = _load()
AVAILABLE = lib is not None

if AVAILABLE:
    lib.nn_socket.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.nn_close.argtypes = [ctypes.c_int]
    lib.nn_bind.argtypes = [ctypes.c_int, ctypes.c_char_p]
    lib.nn_connect.argtypes = [ctypes.c_int, ctypes.c_char_p]
    lib.nn_shutdown.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.nn_setsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    lib.nn_send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    lib.nn_recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    lib.nn_freemsg.argtypes = [ctypes.c_void_p]
    lib.nn_errno.restype = ctypes.c_int
    lib.nn_strerror.argtypes = [ctypes.c_int]
    lib.nn_strerror.restype = ctypes.c_char_p


class NNError(OSError):
    pass


class NNTimeout(NNError, TimeoutError):
    pass


def _raise(what):
    err = lib.nn_errno()
    msg = f"nanomsg {what}: {lib.nn_strerror(err).decode()} (errno {err})"
    if err in (errno.ETIMEDOUT, errno.EAGAIN):
        raise NNTimeout(err, msg)
    raise NNError(err, msg)


def free_tcp_port(host="127.0.0.1"):
    """A port that was free a moment ago (nanomsg cannot bind port 0 and
    tell which port it got); callers retry on EADDRINUSE."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class NNSocket:
    """One nanomsg socket; every blocking call bounded by the timeouts."""

    def __init__(self, protocol, raw=False, timeout_ms=5000):
        self.fd = lib.nn_socket(AF_SP_RAW if raw else AF_SP, protocol)
        if self.fd < 0:
            _raise("nn_socket")
        self.protocol = protocol
        self.recv_timeout = timeout_ms
        self.setopt(NN_SOL_SOCKET, NN_SNDTIMEO, timeout_ms)

    def setopt(self, level, option, value):
        if isinstance(value, int):
            v = ctypes.c_int(value)
            rc = lib.nn_setsockopt(self.fd, level, option, ctypes.byref(v), ctypes.sizeof(v))
        else:
            value = bytes(value)
            buf = ctypes.create_string_buffer(value, len(value) or 1)
            rc = lib.nn_setsockopt(self.fd, level, option, buf, len(value))
        if rc < 0:
            _raise(f"nn_setsockopt({level}, {option})")

    @property
    def recv_timeout(self):
        return self._rcvtimeo

    @recv_timeout.setter
    def recv_timeout(self, ms):
        self.setopt(NN_SOL_SOCKET, NN_RCVTIMEO, ms)
        self._rcvtimeo = ms

    def subscribe(self, topic):
        self.setopt(NN_SUB, NN_SUB_SUBSCRIBE, topic)

    def set_deadline(self, ms):
        self.setopt(NN_SURVEYOR, NN_SURVEYOR_DEADLINE, ms)

    def bind(self, url):
        """Bind; tcp://HOST:0 picks a free port. Returns the real URL."""
        if url.startswith("tcp://") and url.endswith(":0"):
            host = url[len("tcp://") : -2]
            for _ in range(20):
                real = f"tcp://{host}:{free_tcp_port(host)}"
                try:
                    self.bind(real)
                    return real
                except NNError as e:
                    if e.errno != errno.EADDRINUSE:
                        raise
            raise NNError(errno.EADDRINUSE, f"no free port for {url}")
        if lib.nn_bind(self.fd, url.encode()) < 0:
            _raise(f"nn_bind({url})")
        return url

    def connect(self, url):
        if lib.nn_connect(self.fd, url.encode()) < 0:
            _raise(f"nn_connect({url})")
        return url

    def send(self, data, flags=0):
        data = bytes(data)
        buf = ctypes.create_string_buffer(data, len(data) or 1)
        if lib.nn_send(self.fd, buf, len(data), flags) < 0:
            _raise("nn_send")

    def recv(self, flags=0):
        ptr = ctypes.c_void_p()
        n = lib.nn_recv(self.fd, ctypes.byref(ptr), NN_MSG, flags)
        if n < 0:
            _raise("nn_recv")
        try:
            return ctypes.string_at(ptr, n)
        finally:
            lib.nn_freemsg(ptr)

    def close(self):
        if self.fd >= 0:
            lib.nn_close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
