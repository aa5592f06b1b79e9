"""Functions the fabric matrix's data-path test runs on lab nodes (shipped
by nnofi_lab: nnofi, the standard library and the constants here): a
REQ/REP ping-pong for latency and a PUSH/PULL stream for bandwidth, a few
short repeats each, medians returned. Every socket has timeouts and every
loop a bound, so a broken path fails the test instead of hanging a node."""
import statistics
import time

import nnofi

TIMEOUT_MS = 10000
OPTS = {"recv_timeout": TIMEOUT_MS, "send_timeout": TIMEOUT_MS, "recv_max_size": -1}
END = b"end"  # closes an echo and a stream burst (data messages are never 3 bytes long)
WARMUP = 20  # round trips before the clock starts (connection set-up, first registrations)


def echo(ctl, url, size):
    """REP: answer every request with itself until END; how many were data."""
    with nnofi.Rep(**OPTS) as rep:
        rep.bind(url)
        ctl.send("bound")
        count = 0
        while True:
            m = rep.recv()
            rep.send(m)
            if m == END:
                return count
            if len(m) != size:
                raise AssertionError(f"request {count} is {len(m)} B, not {size}")
            count += 1


def ping(url, size, repeats, seconds, rounds):
    """REQ: warm up, then `repeats` repeats of at most `rounds` round trips
    or seconds/repeats; the median of their mean round trips (us)."""
    msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with nnofi.Req(**OPTS) as req:
        req.connect(url)
        for _ in range(WARMUP):
            req.send(msg)
            assert req.recv() == msg, "the echo came back changed"
        means, total = [], WARMUP
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            stop = t0 + seconds / repeats
            while n < rounds and (n == 0 or time.perf_counter() < stop):
                req.send(msg)
                if len(req.recv()) != size:
                    raise AssertionError("the echo came back with another size")
                n += 1
            means.append((time.perf_counter() - t0) / n * 1e6)
            total += n
        req.send(END)
        req.recv()
        return {"latency_us": statistics.median(means), "round_trips": total}


def sink(ctl, url, size, bursts):
    """PULL: per burst, the messages received and the MB/s (10^6 B/s) from
    the burst's first message to its END: the receiver's clock alone, so
    the nodes' clocks never meet."""
    with nnofi.Pull(**OPTS) as pull:
        pull.bind(url)
        ctl.send("bound")
        out = []
        for _ in range(bursts):
            count, t0 = 0, None
            while True:
                m = pull.recv()
                if m == END:
                    break
                if len(m) != size:
                    raise AssertionError(f"a {len(m)} B message in a stream of {size} B")
                if t0 is None:
                    t0 = time.perf_counter()
                count += 1
            elapsed = time.perf_counter() - t0
            out.append({"messages": count, "MBps": (count - 1) * size / elapsed / 1e6})
        return out


def stream(url, size, bursts, seconds, max_messages):
    """PUSH: `bursts` bursts of messages as fast as the path takes them, each
    for seconds/bursts (at least 2 messages, at most max_messages), then END;
    how many each burst sent."""
    msg = bytes(size)
    with nnofi.Push(**OPTS) as push:
        push.connect(url)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while push.stats["pipes_opened"] < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no connection to {url} after {TIMEOUT_MS} ms")
            time.sleep(0.002)
        sent = []
        for _ in range(bursts):
            n, stop = 0, time.perf_counter() + seconds / bursts
            while n < max_messages and (n < 2 or time.perf_counter() < stop):
                push.send(msg)
                n += 1
            push.send(END)
            sent.append(n)
        return sent
