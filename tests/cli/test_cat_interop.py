"""`nnofi cat` against a real nanocat (Debian's nanomsg-utils): each asks,
answers, sends and receives for the other, and both print a message the
same way, byte for byte, in every format they share."""
import re
import socket

import pytest

from clihelpers import bind_url, bound

MESSAGE = bytes(range(256)) + b'tail "quoted" \\ end\n'


def nanocat_bind(transport, ipc_dir, name="n"):
    """nanocat cannot say what port 0 got: it binds a port we pick."""
    if transport == "ipc":
        return bind_url("ipc", ipc_dir, name)
    with socket.socket() as s:  # a free port; the race with another binder is tiny and fails loudly
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_nnofi_req_to_nanocat_rep(spawn, ipc_dir, nanocat, transport):
    url = nanocat_bind(transport, ipc_dir)
    rep = spawn.nanocat("--rep", "--bind", url, "-D", "pong from nanocat", "-A")
    req = spawn.nnofi("cat", "--req", "--connect", url, "-D", "ping from nnofi", "-A", "--recv-timeout", "20")
    status, out, err = req.finish()
    assert (status, out) == (0, b"pong from nanocat\n"), err
    rep.wait_for(rb"ping from nnofi\n", stream="stdout")


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_nanocat_req_to_nnofi_rep(spawn, ipc_dir, nanocat, transport):
    url = bind_url(transport, ipc_dir)
    # The REP keeps serving until nanocat has its reply: one that exits
    # right after replying (--count 1) ends the connection as the reply
    # arrives, and about once in a few dozen runs nanocat never printed it.
    rep = spawn.nnofi("cat", "--rep", "--bind", url, "-D", "pong from nnofi", "-A", "--recv-timeout", "20")
    req = spawn.nanocat("--req", "--connect", bound(rep, url), "-D", "ping from nanocat", "-A")
    rep.wait_for(rb"ping from nanocat\n", stream="stdout")
    req.wait_for(rb"pong from nnofi\n", stream="stdout")
    rep.stop()
    assert rep.stdout.startswith(b"ping from nanocat\n"), rep.stderr


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_nanocat_push_to_nnofi_pull(spawn, ipc_dir, nanocat, transport):
    url = bind_url(transport, ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", "2", "-Q", "--recv-timeout", "20")
    for _ in range(2):
        push = spawn.nanocat("--push", "--connect", bound(pull, url), "-D", "from nanocat")
        assert push.finish()[0] == 0, push.stderr
    status, out, err = pull.finish()
    assert (status, out) == (0, b'"from nanocat"\n' * 2), err


def test_nnofi_pub_to_nanocat_sub(spawn, ipc_dir, nanocat):
    url = nanocat_bind("tcp", ipc_dir)
    sub = spawn.nanocat("--sub", "--bind", url, "--subscribe", "news", "-A")
    spawn.nnofi("cat", "--pub", "--connect", url, "-D", "sports: none", "--interval", "0.05")
    spawn.nnofi("cat", "--pub", "--connect", url, "-D", "news: nnofi speaks SP", "--interval", "0.05")
    sub.wait_for(rb"(news: nnofi speaks SP\n){3}", stream="stdout", timeout=20)
    assert b"sports" not in sub.stdout


def test_nnofi_surveyor_nanocat_respondent(spawn, ipc_dir, nanocat):
    url = nanocat_bind("ipc", ipc_dir)
    spawn.nanocat("--respondent", "--bind", url, "-D", "here", "-A")
    surveyor = spawn.nnofi("cat", "--surveyor", "--connect", url, "-D", "anyone?", "--interval", "0.3",
                           "--deadline", "0.25", "--count", "1", "-A")
    status, out, err = surveyor.finish()
    assert (status, out) == (0, b"here\n"), err


@pytest.mark.parametrize("who_binds", ["nnofi", "nanocat"])
def test_pair_and_bus_with_nanocat(spawn, ipc_dir, nanocat, who_binds):
    for kind in ("--pair", "--bus"):
        if who_binds == "nnofi":
            url = bind_url("tcp", ipc_dir)
            ours = spawn.nnofi("cat", kind, "--bind", url, "--count", "2", "-A", "--recv-timeout", "20")
            url = bound(ours, url)
            spawn.nanocat(kind, "--connect", url, "-D", f"nanocat {kind}", "--interval", "0.1")
        else:
            url = nanocat_bind("tcp", ipc_dir)
            spawn.nanocat(kind, "--bind", url, "-D", f"nanocat {kind}", "--interval", "0.1")
            ours = spawn.nnofi("cat", kind, "--connect", url, "--count", "2", "-A", "--recv-timeout", "20")
        status, out, err = ours.finish()
        assert (status, out) == (0, f"nanocat {kind}\n".encode() * 2), err


@pytest.mark.parametrize("fmt", ["-A", "-Q", "--hex", "--raw", "--msgpack"])
def test_nnofi_prints_what_nanocat_prints(spawn, ipc_dir, nanocat, fmt):
    """One message to a nanocat and to an nnofi cat, each pulling with the
    same format flag: the two outputs are the same bytes."""
    path = f"{ipc_dir}/message.bin"
    with open(path, "wb") as f:
        f.write(MESSAGE)
    theirs_url = nanocat_bind("tcp", ipc_dir)
    theirs = spawn.nanocat("--pull", "--bind", theirs_url, fmt)
    ours_url = bind_url("tcp", ipc_dir)
    ours = spawn.nnofi("cat", "--pull", "--bind", ours_url, fmt, "--count", "1", "--recv-timeout", "20")
    for url in (theirs_url, bound(ours, ours_url)):
        push = spawn.nnofi("cat", "--push", "--connect", url, "-F", path, "--send-timeout", "20")
        assert push.finish()[0] == 0, push.stderr
    status, out, err = ours.finish()
    assert status == 0, err
    assert out  # something was printed, and nanocat prints exactly that
    theirs.wait_for(rb"\A" + re.escape(out) + rb"\Z", stream="stdout")
