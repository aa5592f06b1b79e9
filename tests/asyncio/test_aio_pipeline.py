"""PUSH/PULL with many coroutines: many tasks on one socket (so many wait
on one readiness fd), many sockets into one, and backpressure."""
import asyncio
from collections import Counter

import nnofi

from aiohelpers import OPTS, gather_all, run, wait_pipes

TASKS = 50
EACH = 40


def _expected():
    return Counter(b"task %d msg %d" % (t, i) for t in range(TASKS) for i in range(EACH))


def test_many_tasks_share_one_push_under_backpressure(url, transport):
    """The reader starts only once the pipe is full and every task waits on
    the send fd (a task's non-blocking try failed, so it sits in asend);
    every message still arrives exactly once. Starting the reader at the
    first full pipe left the count of waiting tasks to a race. (ofi's
    tcp provider buffers ~8 MB per connection: 48 MB of 16 KB messages there, so
    every task meets the full pipe before its last send.
    The reader's recv_buffer stays default: a tiny kernel receive buffer
    makes loopback TCP stall in zero-window probes.)"""
    size, each = (16000, 60) if transport == "ofi+tcp" else (200, EACH)

    async def main():
        with nnofi.Pull(**OPTS) as pull, nnofi.Push(send_buffer=4096, **OPTS) as push:
            push.connect(pull.bind(url).url)
            await wait_pipes(push, 1)
            full = asyncio.Event()
            waits = 0
            finished = set()

            async def sender(t):
                nonlocal waits
                for i in range(each):
                    msg = b"task %d msg %d." % (t, i) + b"." * size
                    try:
                        push.send(msg, block=False)
                        continue
                    except nnofi.Again:
                        waits += 1
                        all_wait()
                    await push.asend(msg)
                finished.add(t)
                all_wait()

            def all_wait():
                """Start the reader once every task waits (or is done)."""
                if waits + len(finished) >= TASKS:
                    full.set()

            async def receiver():
                await asyncio.wait_for(full.wait(), 20)
                got = Counter()
                for _ in range(TASKS * each):
                    got[(await pull.arecv()).rstrip(b".")] += 1
                return got

            got, *_ = await gather_all([receiver()] + [sender(t) for t in range(TASKS)])
            assert got == Counter(b"task %d msg %d" % (t, i) for t in range(TASKS) for i in range(each))
            assert waits >= TASKS // 2, f"only {waits} sends found the pipe full"

    run(main)


def test_fan_in_from_many_push_sockets(url):
    async def main():
        with nnofi.Pull(**OPTS) as pull:
            where = pull.bind(url).url

            async def sender(t):
                with nnofi.Push(**OPTS) as push:
                    push.connect(where)
                    for i in range(EACH):
                        await push.asend(b"task %d msg %d" % (t, i))
                    # linger (on close) lets what is queued leave

            async def receiver():
                got = Counter()
                for _ in range(TASKS * EACH):
                    got[await pull.arecv()] += 1
                return got

            got, *_ = await gather_all([receiver()] + [sender(t) for t in range(TASKS)])
            assert got == _expected()

    run(main)


def test_many_receiving_tasks_each_message_once(url):
    """Several tasks wait on one Pull: each message goes to exactly one."""
    receivers = 8

    async def main():
        with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
            push.connect(pull.bind(url).url)
            total = TASKS * EACH
            got = Counter()
            per_task = [0] * receivers
            done = asyncio.Event()

            async def receiver(r):
                while not done.is_set():
                    msg = await pull.arecv()
                    got[msg] += 1
                    per_task[r] += 1
                    if sum(got.values()) == total:
                        done.set()
                    await asyncio.sleep(0)

            async def sender():
                for t in range(TASKS):
                    for i in range(EACH):
                        await push.asend(b"task %d msg %d" % (t, i))
                    await asyncio.sleep(0.001)

            tasks = [asyncio.ensure_future(receiver(r)) for r in range(receivers)]
            try:
                await sender()
                await asyncio.wait_for(done.wait(), 20)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            assert got == _expected()
            assert sum(1 for n in per_task if n) > 1, f"one task got everything: {per_task}"

    run(main)
