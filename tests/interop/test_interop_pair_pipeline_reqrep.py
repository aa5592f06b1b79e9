"""PAIR, PUSH/PULL and REQ/REP between nnofi and the real libraries:
Debian's libnanomsg (ctypes, and its nanocat tool) and nng (pynng), over
tcp and ipc, with nnofi in either role, either side binding, traffic both
ways, several requesters, and large messages."""
import shutil
import subprocess
import threading

import pytest

from _sides import ROLE_PARAMS, _join, _nn, _require, _roles

BIG = bytes(range(256)) * 4096  # 1 MiB


def unlimited(side):
    """Lift the 1 MiB receive limit the libraries share by default."""
    if side.kind == "nnofi":
        side.sock.recv_max_size = -1
    elif side.kind == "nanomsg":
        side.sock.setopt(_nn.NN_SOL_SOCKET, 16, -1)  # NN_RCVMAXSIZE
    else:
        side.sock.recv_max_size = 0


def settle(sender, receiver, probe=b"probe"):
    """PAIR/PUSH: the connection is up once one message got through."""
    sender.send(probe)
    assert receiver.recv() == probe


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_pair_both_ways(peer, transport, new_url, sides, nnofi_is, binder):
    (k0, k1), bind_idx = _roles(peer, nnofi_is, binder)
    a, b = sides(k0, "pair"), sides(k1, "pair")
    socks = (a, b)
    _join(socks[bind_idx], socks[1 - bind_idx], new_url)
    for i in range(20):
        a.send(b"a%d" % i)
        assert b.recv() == b"a%d" % i
        b.send(b"b%d" % i)
        assert a.recv() == b"b%d" % i
    unlimited(a)
    unlimited(b)
    a.send(BIG)
    assert b.recv() == BIG
    b.send(BIG[::-1])
    assert a.recv() == BIG[::-1]


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_push_pull(peer, transport, new_url, sides, nnofi_is, binder):
    (k0, k1), bind_idx = _roles(peer, nnofi_is, binder)
    push, pull = sides(k0, "push"), sides(k1, "pull")
    socks = (push, pull)
    _join(socks[bind_idx], socks[1 - bind_idx], new_url)
    settle(push, pull)
    sent = [b"job %d " % i + b"." * (i * 37 % 5000) for i in range(300)]
    # more than the buffers hold: send while the other side receives
    sender = threading.Thread(target=lambda: [push.send(m) for m in sent])
    sender.start()
    got = [pull.recv() for _ in sent]
    sender.join(10)
    assert got == sent
    unlimited(pull)
    push.send(BIG)
    assert pull.recv() == BIG


def test_nnofi_pull_fair_queues_mixed_pushers(peer, transport, new_url, sides):
    pull = sides("nnofi", "pull")
    url = pull.bind(new_url())
    pushers = [sides("nnofi", "push"), sides(peer, "push")]
    for p in pushers:
        p.connect(url)
        settle(p, pull)
    for i in range(100):
        for n, p in enumerate(pushers):
            p.send(b"%d:%d" % (n, i))
    got = [pull.recv() for _ in range(200)]
    for n in range(2):
        mine = [m for m in got if m.startswith(b"%d:" % n)]
        assert mine == [b"%d:%d" % (n, i) for i in range(100)]


def test_nnofi_push_load_balances_to_peers(peer, transport, new_url, sides):
    push = sides("nnofi", "push")
    url = push.bind(new_url())
    pulls = [sides(peer, "pull"), sides("nnofi", "pull")]
    for p in pulls:
        p.connect(url)
    import time

    deadline = time.monotonic() + 5
    while push.sock.stats["pipes_opened"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for i in range(100):
        push.send(b"%d" % i)
    got = []
    for p in pulls:
        got.append(p.recv_until_quiet(300, skip=None))
    assert all(got), "round-robin reached both pullers"
    assert sorted(int(m) for part in got for m in part) == list(range(100))


@pytest.mark.parametrize("nnofi_is, binder", ROLE_PARAMS)
def test_reqrep(peer, transport, new_url, sides, nnofi_is, binder):
    (k0, k1), bind_idx = _roles(peer, nnofi_is, binder)
    req, rep = sides(k0, "req"), sides(k1, "rep")
    socks = (req, rep)
    _join(socks[bind_idx], socks[1 - bind_idx], new_url)
    for i in range(50):
        req.send(b"q%d" % i)
        assert rep.recv() == b"q%d" % i
        rep.send(b"a%d" % i)
        assert req.recv() == b"a%d" % i
    unlimited(req)
    unlimited(rep)
    req.send(BIG)
    assert rep.recv() == BIG
    rep.send(BIG[::-1])
    assert req.recv() == BIG[::-1]


@pytest.mark.parametrize("nnofi_role", ["rep", "req"])
def test_many_requesters_each_get_their_answer(peer, transport, new_url, sides, nnofi_role):
    """One REP serving four REQs of mixed libraries (nnofi REP), or an
    nnofi REQ among peer REQs to a peer REP: every answer reaches its asker."""
    rep = sides("nnofi" if nnofi_role == "rep" else peer, "rep")
    url = rep.bind(new_url())
    kinds = [peer, "nnofi", peer, "nnofi"] if nnofi_role == "rep" else ["nnofi", peer, "nnofi", peer]
    reqs = [sides(k, "req") for k in kinds]
    for r in reqs:
        r.connect(url)
    errors = []

    def ask(n, r):
        try:
            for i in range(25):
                r.send(b"%d-%d" % (n, i))
                assert r.recv() == b"answer %d-%d" % (n, i)
        except Exception as exc:  # reported below, in the main thread
            errors.append((n, exc))

    threads = [threading.Thread(target=ask, args=(n, r)) for n, r in enumerate(reqs)]
    for t in threads:
        t.start()
    for _ in range(25 * len(reqs)):
        rep.send(b"answer " + rep.recv())
    for t in threads:
        t.join(10)
    assert not errors, errors


def test_nanocat_replies_to_nnofi_req(tmp_path):
    _require("nanomsg")
    if not shutil.which("nanocat"):
        pytest.skip("nanocat not installed (apt-get install nanomsg-utils)")
    import nnofi

    with nnofi.Req(recv_timeout=5000, send_timeout=5000) as req:
        url = f"ipc://{tmp_path}/cat.ipc"
        cat = subprocess.Popen(
            ["nanocat", "--rep", "--bind", url, "--data", "pong", "--format", "ascii"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            req.connect(url)
            req.send(b"ping")
            assert req.recv() == b"pong"
        finally:
            cat.kill()
            out, _ = cat.communicate(timeout=5)
        assert b"ping" in out
