"""`nnofi cat` talking to `nnofi cat`: every socket type with its peer,
over tcp and ipc (and ofi://127.0.0.1:0@tcp for push/pull and req/rep),
each side a process of its own."""
import pytest

from clihelpers import bind_url, bound

TRANSPORTS = ["tcp", "ipc"]


@pytest.mark.parametrize("transport", TRANSPORTS + ["ofi"])
def test_push_to_pull(spawn, ipc_dir, transport):
    url = bind_url(transport, ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", "3", "-A", "--recv-timeout", "20")
    push = spawn.nnofi("cat", "--push", "--connect", bound(pull, url), "-D", "hello", "--count", "3",
                       "--send-timeout", "20")
    assert push.finish()[0] == 0, push.stderr
    status, out, err = pull.finish()
    assert status == 0, err
    assert out == b"hello\nhello\nhello\n"


@pytest.mark.parametrize("transport", TRANSPORTS + ["ofi"])
def test_req_prints_the_reply_of_rep(spawn, ipc_dir, transport):
    url = bind_url(transport, ipc_dir)
    rep = spawn.nnofi("cat", "--rep", "--bind", url, "-D", "pong", "--count", "1", "-A", "--recv-timeout", "20")
    req = spawn.nnofi("cat", "--req", "--connect", bound(rep, url), "-D", "ping", "-A", "--recv-timeout", "20")
    status, out, err = req.finish()
    assert (status, out) == (0, b"pong\n"), err
    status, out, err = rep.finish()
    assert (status, out) == (0, b"ping\n"), err


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rep_without_data_echoes(spawn, ipc_dir, transport):
    url = bind_url(transport, ipc_dir)
    rep = spawn.nnofi("cat", "--rep", "--bind", url, "--count", "2", "--format", "none", "--recv-timeout", "20")
    req = spawn.nnofi("cat", "--req", "--connect", bound(rep, url), "-D", "echo me", "--count", "2", "-Q",
                      "--recv-timeout", "20")
    status, out, err = req.finish()
    assert (status, out) == (0, b'"echo me"\n"echo me"\n'), err
    status, out, err = rep.finish()
    assert (status, out) == (0, b""), err  # --format none prints nothing


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sub_gets_only_its_prefix(spawn, ipc_dir, transport):
    url = bind_url(transport, ipc_dir)
    sub = spawn.nnofi("cat", "--sub", "--bind", url, "--subscribe", "yes", "--count", "3", "-A",
                      "--recv-timeout", "20")
    target = bound(sub, url)
    # two publishers, every 50 ms until the test ends them: one the sub wants, one it does not
    spawn.nnofi("cat", "--pub", "--connect", target, "-D", "no thanks", "--interval", "0.05")
    spawn.nnofi("cat", "--pub", "--connect", target, "-D", "yes please", "--interval", "0.05")
    status, out, err = sub.finish()
    assert status == 0, err
    assert out == b"yes please\n" * 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pair_both_ways(spawn, ipc_dir, transport):
    url = bind_url(transport, ipc_dir)
    a = spawn.nnofi("cat", "--pair", "--bind", url, "-D", "from a", "--count", "1", "-A", "--recv-timeout", "20")
    b = spawn.nnofi("cat", "--pair", "--connect", bound(a, url), "-D", "from b", "--count", "1", "-A",
                    "--recv-timeout", "20")
    status, out, err = a.finish()
    assert (status, out) == (0, b"from b\n"), err
    status, out, err = b.finish()
    assert (status, out) == (0, b"from a\n"), err


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bus_hears_every_peer(spawn, ipc_dir, transport):
    # the talkers bind and send every 50 ms (a bus drops what no peer is there for);
    # the listener dials both at once, so it hears both from the start
    talkers = []
    for name in ("b", "c"):
        url = bind_url(transport, ipc_dir, name)
        talker = spawn.nnofi("cat", "--bus", "--bind", url, "-D", f"from {name}", "--interval", "0.05")
        talkers += ["--connect", bound(talker, url)]
    listener = spawn.nnofi("cat", "--bus", *talkers, "--count", "20", "-A", "--recv-timeout", "20")
    status, out, err = listener.finish()
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 20 and set(lines) == {b"from b", b"from c"}, out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_surveyor_prints_every_answer(spawn, ipc_dir, transport):
    # the respondents bind, so they are connected to by the time the one survey goes out
    urls = []
    respondents = []
    for name in ("r1", "r2"):
        url = bind_url(transport, ipc_dir, name)
        r = spawn.nnofi("cat", "--respondent", "--bind", url, "-D", f"answer {name}", "--count", "1", "-A",
                        "--recv-timeout", "20")
        urls += ["--connect", bound(r, url)]
        respondents.append(r)
    surveyor = spawn.nnofi("cat", "--surveyor", *urls, "-D", "who?", "--delay", "1", "--deadline", "5",
                           "--count", "2", "-A")
    status, out, err = surveyor.finish()
    assert status == 0, err
    assert sorted(out.splitlines()) == [b"answer r1", b"answer r2"]
    for r in respondents:
        status, out, err = r.finish()
        assert (status, out) == (0, b"who?\n"), err


def test_surveyor_repeats_every_interval(spawn, ipc_dir):
    url = bind_url("tcp", ipc_dir)
    surveyor = spawn.nnofi("cat", "--surveyor", "--bind", url, "-D", "again?", "--interval", "0.3",
                           "--deadline", "0.25", "--count", "3", "-A")
    respondent = spawn.nnofi("cat", "--respondent", "--connect", bound(surveyor, url), "-D", "yes", "-A")
    status, out, err = surveyor.finish()
    assert (status, out) == (0, b"yes\nyes\nyes\n"), err
    respondent.wait_for(rb"(again\?\n){3}", stream="stdout")
