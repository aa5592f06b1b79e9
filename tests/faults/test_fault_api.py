"""The faults themselves, seen from the nodes with plain sockets: each
does what it says, only to this worker's ports, and is gone after its
block (even when the block raises)."""
import os
import time

import pytest

from faultcheck import need
from nnofi_lab import LabError, LabTimeout

OUTSIDE = 19000  # below every worker's port range (+ the worker's index)


# -- run on the nodes ---------------------------------------------------------------
def listen(ctl, address, ports):
    """TCP listeners on ports (the kernel completes connections itself)."""
    import socket
    socks = []
    for port in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(64)
        socks.append(s)
    ctl.send("listening")
    ctl.recv()
    for s in socks:
        s.close()


def dial(address, port, timeout=0.5):
    import socket
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return "connected"
    except socket.timeout:
        return "timed out"
    except OSError as e:
        return type(e).__name__


def tcp_sink(ctl, address, port):
    import socket
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(1)
        ctl.send("listening")
        conn, _ = s.accept()
        total = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return total
            total += len(chunk)


def tcp_push(address, port, nbytes):
    """Seconds to send nbytes and have them all acknowledged (closed)."""
    import socket
    import time
    t0 = time.monotonic()
    with socket.create_connection((address, port), timeout=30) as s:
        s.sendall(b"x" * nbytes)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # the sink's close: every byte arrived
    return time.monotonic() - t0


def udp_sink(ctl, address, port):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, port))
        s.settimeout(0.5)
        ctl.send("bound")
        got = 0
        while True:
            try:
                got += s.recv(64) == b"d"
            except socket.timeout:
                if ctl.recv(timeout=0, default=None) == "stop":
                    return got


def udp_send(address, port, count):
    import socket
    import time
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(count):
            s.sendto(b"d", (address, port))
            time.sleep(0.0005)
    return count


def pinger(ctl):
    while True:
        if ctl.recv() == "stop":
            return "stopped"
        ctl.send("pong")


def whoami():
    import os
    return os.getpid()


# -- helpers here ---------------------------------------------------------------------
def listening(node, ports):
    task = node.spawn(listen, node.address, ports)
    assert task.recv() == "listening"
    return task


def done(*tasks):
    for t in tasks:
        t.send("stop")
        t.result()


def outside_port(lab):
    from nnofi_lab.ports import worker_index
    return OUTSIDE + worker_index()


def nft_tables(lab, node):
    out = lab.backend.node_exec(lab.topology, node.spec, ["nft", "list", "tables"]).stdout
    return [line.split()[-1] for line in out.splitlines() if f"_{os.getpid()}_" in line]


# -- network faults ---------------------------------------------------------------------
def test_partition_cuts_this_workers_ports_both_ways(lab, node_a, node_b):
    need(lab, "partition", node_a, node_b)
    inside, outside = lab.ports.next(), outside_port(lab)
    servers = [listening(n, [inside, outside]) for n in (node_a, node_b)]
    with lab.partition(node_a, node_b):
        assert node_b.run(dial, node_a.address, inside) == "timed out"
        assert node_a.run(dial, node_b.address, inside) == "timed out"
        assert node_b.run(dial, node_a.address, outside) == "connected", "another worker's port was cut"
    assert node_b.run(dial, node_a.address, inside) == "connected"
    assert node_a.run(dial, node_b.address, inside) == "connected"
    done(*servers)


def test_partition_with_resets_refuses_at_once(lab, node_a, node_b):
    need(lab, "partition", node_a, node_b)
    port = lab.ports.next()
    server = listening(node_a, [port])
    with lab.partition(node_a, node_b, mode="reset"):
        t0 = time.monotonic()
        assert node_b.run(dial, node_a.address, port) == "ConnectionRefusedError"
        assert time.monotonic() - t0 < 2
    assert node_b.run(dial, node_a.address, port) == "connected"
    done(server)


def test_isolate_cuts_one_node_from_all(lab, node_a, node_b, node_c):
    need(lab, "isolate", node_a)
    port = lab.ports.next()
    servers = [listening(n, [port]) for n in (node_a, node_c)]
    with lab.isolate(node_a):
        assert node_b.run(dial, node_a.address, port) == "timed out"
        assert node_c.run(dial, node_a.address, port) == "timed out"
        assert node_b.run(dial, node_c.address, port) == "connected"
    assert node_c.run(dial, node_a.address, port) == "connected"
    done(*servers)


def test_a_fault_is_undone_when_its_block_raises(lab, node_a, node_b):
    need(lab, "partition", node_a, node_b)
    port = lab.ports.next()
    server = listening(node_a, [port])
    with pytest.raises(ZeroDivisionError):
        with lab.partition(node_a, node_b):
            assert nft_tables(lab, node_a) and nft_tables(lab, node_b)
            1 / 0
    assert nft_tables(lab, node_a) == [] and nft_tables(lab, node_b) == []
    assert node_b.run(dial, node_a.address, port) == "connected"
    done(server)


def test_cap_bandwidth_slows_a_transfer_to_the_rate(lab, node_a, node_b):
    need(lab, "cap_bandwidth", node_a, node_b)
    nbytes = 1_000_000  # 1 s at 8 Mbit/s

    def transfer():
        port = lab.ports.next()
        sink = node_a.spawn(tcp_sink, node_a.address, port)
        assert sink.recv() == "listening"
        seconds = node_b.run(tcp_push, node_a.address, port, nbytes)
        assert sink.result() == nbytes
        return seconds
    free = transfer()
    with lab.cap_bandwidth(node_a, node_b, "8mbit"):
        capped = transfer()
    assert capped > 0.7, f"1 MB took {capped:.2f}s under an 8 Mbit/s cap (uncapped: {free:.2f}s)"
    assert free < 0.5 and transfer() < 0.5, f"the cap outlived its block: {free:.2f}s"


def test_loss_drops_about_its_share(lab, node_a, node_b):
    need(lab, "loss", node_a, node_b)
    port = lab.ports.next()
    sink = node_a.spawn(udp_sink, node_a.address, port)
    assert sink.recv() == "bound"
    with lab.loss(node_a, node_b, percent=30):
        node_b.run(udp_send, node_a.address, port, 400)
    sink.send("stop")
    got = sink.result()
    assert 200 <= got <= 340, f"{got} of 400 datagrams arrived under 30% loss"


def test_delay_adds_latency(lab, node_a, node_b):
    need(lab, "delay", node_a, node_b)
    port = lab.ports.next()
    server = listening(node_a, [port])

    def connect_time():
        t0 = time.monotonic()
        assert node_b.run(dial, node_a.address, port, 2.0) == "connected"
        return time.monotonic() - t0
    base = connect_time()
    with lab.delay(node_a, node_b, ms=100):
        slow = connect_time()
    assert slow - base > 0.15, f"a connect took {slow:.3f}s with 100 ms each way, {base:.3f}s without"
    done(server)


# -- node faults ----------------------------------------------------------------------------
@pytest.mark.lab_exclusive
def test_kill_takes_the_node_down_and_brings_it_back(lab, node_a, node_b):
    port = lab.ports.next()
    server = listening(node_a, [port])
    pid = node_a.run(whoami)
    with lab.kill(node_a):
        assert node_b.run(dial, node_a.address, port) != "connected"
    with pytest.raises(LabError):
        server.result()  # it died with the node
    assert node_a.run(whoami) != pid, "the node's process outlived the kill"
    assert node_b.run(dial, node_a.address, port) == "ConnectionRefusedError", "its listener outlived the kill"
    lab.restart(node_a)
    server = listening(node_a, [port])  # usable again, same address
    assert node_b.run(dial, node_a.address, port) == "connected"
    done(server)


@pytest.mark.lab_exclusive
def test_pause_freezes_the_node_until_its_block_ends(lab, node_a):
    task = node_a.spawn(pinger)
    task.send("ping")
    assert task.recv() == "pong"
    with lab.pause(node_a):
        task.send("ping")
        with pytest.raises(LabTimeout):
            task.recv(timeout=0.5)
    assert task.recv(timeout=10) == "pong"
    task.send("stop")
    assert task.result() == "stopped"


def test_node_faults_refuse_to_run_beside_other_workers(lab, node_a, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    for fault in (lab.kill, lab.pause):
        with pytest.raises(LabError, match="mark the test @pytest.mark.lab_exclusive"):
            with fault(node_a):
                pass


@pytest.mark.lab_exclusive
def test_heal_removes_what_a_killed_run_left(lab, node_a, node_b):
    need(lab, "partition", node_a, node_b)
    port = lab.ports.next()
    server = listening(node_a, [port])
    left = [lab.partition(node_a, node_b), lab.cap_bandwidth(node_a, node_b)]
    for fault in left:
        fault.__enter__()  # and never left: a run killed mid-fault
    assert node_b.run(dial, node_a.address, port) == "timed out"
    said = []
    lab.faults.heal(said.append)
    assert nft_tables(lab, node_a) == [] and node_b.run(dial, node_a.address, port) == "connected"
    assert any("nft table" in s for s in said) and any("tc qdisc" in s for s in said), said
    done(server)
