"""A user's mistake or a failure ends `nnofi` with a non-zero status and one
line on stderr that says what went wrong: never a traceback."""
import re
import socket

import pytest

from clihelpers import bind_url, one_line_error, run


def free_port():
    """A port nothing listens on (bound and released: nobody is there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url, says", [
    ("tcp://127.0.0.1", "tcp needs HOST:PORT"),
    ("tcp://127.0.0.1:99999", "is not a number from 0 to 65535"),
    ("foo://x", "unknown transport 'foo'"),
    ("nonsense", "no transport"),
    ("tcp://192.0.2.77:5555", "not an address of this machine"),
    ("ipc:///" + "x" * 200, "Unix sockets allow 107"),
    ("ofi://127.0.0.1:0@nonesuch", "fi_getinfo offers no connected"),
])
def test_bad_url(url, says):
    r = run("cat", "--pull", "--bind", url, "--recv-timeout", "1")
    line = one_line_error(r)
    assert r.returncode == 1
    assert line.startswith("nnofi cat: bind ") and says in line, line


def test_connect_to_star_is_refused():
    line = one_line_error(run("cat", "--req", "--connect", "tcp://*:5555", "-D", "x"))
    assert "can be bound, not connected to" in line


def test_address_in_use(spawn, ipc_dir):
    for transport in ("tcp", "ipc"):
        holder = spawn.nnofi("cat", "--pull", "--bind", bind_url(transport, ipc_dir), "-v")
        url = holder.bound_url()
        r = run("cat", "--pull", "--bind", url, "--recv-timeout", "1")
        line = one_line_error(r)
        assert r.returncode == 1 and url in line, line
        assert ("Address already in use" if transport == "tcp" else "another socket listens on") in line


def test_request_nobody_answers():
    """Connect is asynchronous: a peer that is not there shows as the wait
    for a reply timing out, and the message says no connection was made."""
    url = f"tcp://127.0.0.1:{free_port()}"
    r = run("cat", "--req", "--connect", url, "-D", "hello?", "--recv-timeout", "0.5")
    line = one_line_error(r)
    assert r.returncode == 1
    assert line == (f"nnofi cat: no reply within 0.5 s (--recv-timeout); no connection to {url} was made "
                    "(is anything bound there?)")


def test_send_nobody_takes():
    url = f"tcp://127.0.0.1:{free_port()}"
    line = one_line_error(run("cat", "--push", "--connect", url, "-D", "x", "--send-timeout", "0.3"))
    assert line.startswith("nnofi cat: send timed out after 0.3 s (--send-timeout); no connection to " + url)


def test_nothing_arrives(spawn, ipc_dir):
    line = one_line_error(run("cat", "--sub", "--bind", bind_url("ipc", ipc_dir), "--recv-timeout", "0.3"))
    assert line.startswith("nnofi cat: no message within 0.3 s (--recv-timeout); nothing connected to ipc://")


def test_fewer_than_count(spawn, ipc_dir):
    url = bind_url("ipc", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", "3", "--recv-timeout", "2")
    assert run("cat", "--push", "--connect", url, "-D", "only one").returncode == 0
    status, out, err = pull.finish()
    assert (status, out) == (1, b"only one\n")
    assert err == b"nnofi cat: 1 of 3 messages came within 2 s (--recv-timeout)\n"


def test_a_message_over_recv_max_size_is_named(spawn, ipc_dir):
    """The library refuses a message over recv_max_size (1 MiB by default)
    by closing its connection: the receiver's timeout says so, and how to
    take it."""
    path = f"{ipc_dir}/big.bin"
    with open(path, "wb") as f:
        f.write(bytes(2 * 1024 * 1024))
    url = bind_url("ipc", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--recv-timeout", "2", "--raw")
    spawn.nnofi("cat", "--push", "--connect", url, "-F", path)
    status, out, err = pull.finish()
    assert (status, out) == (1, b"")
    assert re.fullmatch(r"nnofi cat: no message within 2 s \(--recv-timeout\); \d+ message\(s\) larger than "
                        r"recv_max_size \(1048576 bytes\) were refused: --set recv_max_size=-1 takes any size\n",
                        err.decode()), err


def test_survey_nobody_answers(ipc_dir):
    line = one_line_error(run("cat", "--surveyor", "--bind", bind_url("ipc", ipc_dir), "-D", "?",
                              "--deadline", "0.2"))
    assert line.startswith("nnofi cat: no answer within the survey's 0.2 s (--deadline)")


@pytest.mark.parametrize("args, says, status", [
    (["frobnicate"], "nnofi: argument COMMAND: invalid choice: 'frobnicate'", 2),
    ([], "nnofi: give a command: info, cat, perf, lab or demo", 2),
    (["cat", "-T", "frob", "--bind", "tcp://127.0.0.1:0"], "unknown socket type 'frob'", 2),
    (["cat", "--bind", "tcp://127.0.0.1:0"], "give a socket type", 2),
    (["cat", "--pull"], "give at least one --bind or --connect URL", 2),
    (["cat", "--push", "-l", "5555"], "--push sends: give --data DATA or --file PATH", 2),
    (["cat", "--pull", "-l", "5555", "-D", "x"], "--pull only receives", 2),
    (["cat", "--pub", "-l", "5555", "-D", "x", "--hex"], "--pub only sends", 2),
    (["cat", "--pull", "-l", "5555", "--subscribe", "x"], "--subscribe is for --sub sockets", 2),
    (["cat", "--rep", "-l", "5555", "-i", "1"], "--interval repeats sends", 2),
    (["cat", "--req", "-l", "5555", "-D", "x", "--chunk", "1K"], "--chunk splits the data", 2),
    (["cat", "--pull", "-l", "5555", "--set", "colour=blue"], "expected NAME=VALUE with NAME one of", 2),
    (["cat", "--pull", "-l", "5555", "--set", "linger=soon"], "'soon' is not an integer", 2),
    (["cat", "--pull", "-l", "5555", "--recv-timeout", "soon"], "is not a number of seconds", 2),
    (["cat", "--pull", "-l", "99999"], "'99999' is not a port number", 2),
    (["cat", "--pull", "--push", "-l", "5555"], "not allowed with argument", 2),
    (["cat", "--pull", "-l", "5555", "--frob"], "unrecognized arguments: --frob", 2),
    (["cat", "--push", "-l", "5555", "-F", "/nonexistent/file"], "cannot read /nonexistent/file", 1),
    (["info", "--frob"], "unrecognized arguments: --frob", 2),
    (["lab", "frob"], "argument VERB: invalid choice: 'frob'", 2),
])
def test_usage_errors(args, says, status):
    r = run(*args)
    line = one_line_error(r)
    assert r.returncode == status, line
    assert says in line, line
    assert r.stdout == b""
