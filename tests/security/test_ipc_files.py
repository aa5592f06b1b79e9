"""ipc:// socket files: made with the socket's ipc_permissions (0600 by
default, whatever the umask), replaced on bind only when they are the
stale socket file of a listener that is gone; a live listener's file, a
regular file, a symlink, a fifo or a directory are refused and left
alone. Close removes the listener's own file, never a successor."""
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest

import nnofi
from sechelpers import Child, serve

OPTS = dict(recv_timeout=5000, send_timeout=5000)


def mode_of(path):
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode), f"{path} is not a socket"
    return stat.S_IMODE(st.st_mode)


def roundtrip(url):
    with nnofi.Push(connect=url, **OPTS) as push, nnofi.Pull(**OPTS) as pull:
        pull.bind(url)
        push.send(b"through " + url.encode())
        assert pull.recv() == b"through " + url.encode()


def delivers(url):
    """A listener bound at url (elsewhere) gets a message."""
    with nnofi.Push(connect=url, **OPTS) as push:
        push.send(b"still here")


# -- permissions -------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], ids=oct)
def test_default_is_owner_only_whatever_the_umask(tmp_path, umask):
    path = f"{tmp_path}/perm.ipc"
    old = os.umask(umask)
    try:
        with nnofi.Pull() as pull:
            assert pull.ipc_permissions == 0o600
            pull.bind(f"ipc://{path}")
            assert mode_of(path) == 0o600
    finally:
        os.umask(old)


@pytest.mark.parametrize("perm", [0o660, 0o666, 0o700, 0o000], ids=oct)
def test_ipc_permissions_option(tmp_path, perm):
    path = f"{tmp_path}/perm.ipc"
    old = os.umask(0o077)  # not applied to the option's bits
    try:
        with nnofi.Pull(ipc_permissions=perm, **OPTS) as pull:
            pull.bind(f"ipc://{path}")
            assert mode_of(path) == perm
    finally:
        os.umask(old)


@pytest.mark.parametrize("value", [-1, 0o1000, 0o4755, 0o1777], ids=str)
def test_ipc_permissions_takes_permission_bits_only(value):
    with nnofi.Pull() as pull:
        with pytest.raises(ValueError, match="ipc_permissions"):
            pull.ipc_permissions = value


NOBODY_CONNECTS = textwrap.dedent(
    """
    import os, socket, sys
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sys.argv[1])
        print("connected")
    except PermissionError:
        print("refused")
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to try the socket file as another user (nobody)")
@pytest.mark.parametrize("perm, expect", [(None, "refused"), (0o666, "connected")], ids=["default", "0o666"])
def test_other_users_are_kept_out_by_default(perm, expect):
    """The kernel checks a Unix socket file's write bit on connect: another
    user (nobody) gets in only when ipc_permissions lets it."""
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)  # nobody may reach the file: only its mode decides
        path = f"{d}/perm.ipc"
        opts = {} if perm is None else dict(ipc_permissions=perm)
        old = os.umask(0)  # the worst umask: it would leave the file 0777
        try:
            pull = nnofi.Pull(bind=f"ipc://{path}", **opts)
        finally:
            os.umask(old)
        with pull:
            out = subprocess.run([sys.executable, "-c", NOBODY_CONNECTS, path],
                                 capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == expect, out.stderr


# -- what bind may replace ---------------------------------------------------------


def _listener(conn, url):
    with nnofi.Pull(bind=url, **OPTS) as pull:
        serve(conn, lambda request: pull.recv())


def test_stale_file_of_a_dead_process_is_replaced(tmp_path):
    url = f"ipc://{tmp_path}/stale.ipc"
    child = Child(_listener, url)
    try:
        delivers(url)
        assert child.ask("recv") == b"still here"
        os.kill(child.proc.pid, signal.SIGKILL)  # no close: the file stays behind
        child.proc.join(10)
    finally:
        child.close()
    assert os.path.exists(f"{tmp_path}/stale.ipc")
    roundtrip(url)
    assert not os.path.exists(f"{tmp_path}/stale.ipc"), "close removes the file it made"


def test_live_listener_is_not_replaced(tmp_path):
    url = f"ipc://{tmp_path}/live.ipc"
    with Child(_listener, url) as child:
        delivers(url)  # (also waits until it listens)
        assert child.ask("recv") == b"still here"
        with nnofi.Pull() as other:
            with pytest.raises(nnofi.AddressInUse, match="another socket listens"):
                other.bind(url)
        delivers(url)
        assert child.ask("recv") == b"still here", "the live listener still has its file"


BIND_OVER_FULL_BACKLOG = textwrap.dedent(
    """
    import socket, sys, nnofi
    path = sys.argv[1]
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(0)
    queued = []
    while True:  # fill the backlog: a blocking connect would now wait
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(path)
        except BlockingIOError:
            break
        queued.append(c)
    try:
        nnofi.Pull().bind("ipc://" + path)
        print("replaced")
    except nnofi.AddressInUse:
        print("in use")
    """
)


def test_live_listener_with_a_full_backlog_is_not_replaced_and_bind_does_not_hang(tmp_path):
    path = f"{tmp_path}/busy.ipc"
    out = subprocess.run([sys.executable, "-c", BIND_OVER_FULL_BACKLOG, path],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "in use", out.stderr


def _regular(path):
    with open(path, "w") as f:
        f.write("precious")


def _symlink(path):
    _regular(path + ".target")
    os.symlink(path + ".target", path)


def _dangling_symlink(path):
    os.symlink(path + ".nowhere", path)


def _socket_symlink(path):
    """A symlink to a stale socket file: bind would not follow it either."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path + ".sock")
    s.close()
    os.symlink(path + ".sock", path)


@pytest.mark.parametrize("make", [_regular, _symlink, _dangling_symlink, _socket_symlink, os.mkfifo, os.mkdir],
                         ids=["regular", "symlink", "dangling-symlink", "symlink-to-socket", "fifo", "directory"])
def test_what_is_not_a_socket_file_is_refused_and_left_alone(tmp_path, make):
    path = f"{tmp_path}/taken"
    make(path)
    before = sorted((p.name, os.lstat(p).st_ino) for p in tmp_path.iterdir())
    with nnofi.Pull() as pull:
        with pytest.raises(nnofi.AddressInUse, match="not a socket"):
            pull.bind(f"ipc://{path}")
    assert sorted((p.name, os.lstat(p).st_ino) for p in tmp_path.iterdir()) == before
    if make in (_regular, _symlink):
        with open(path) as f:
            assert f.read() == "precious"


def test_close_removes_only_its_own_file(tmp_path):
    path = f"{tmp_path}/own.ipc"
    with nnofi.Pull() as pull:
        pull.bind(f"ipc://{path}")
        os.unlink(path)
        _regular(path)  # someone else's file now
    with open(path) as f:
        assert f.read() == "precious"
