"""Cancellation: a cancelled arecv has taken no message off the socket, a
cancelled asend has sent nothing; every message arrives exactly once."""
import asyncio
import random
import threading
import time

import nnofi

from aiohelpers import OPTS, run, wait_pipes

MESSAGES = 1000


def test_cancelled_arecv_while_messages_arrive_loses_none(url):
    """A thread sends while the loop keeps starting arecv and cancelling it
    (task.cancel at random moments, and asyncio.wait_for running out):
    each message is received once, in order."""

    async def main():
        with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
            push.connect(pull.bind(url).url)
            await wait_pipes(pull, 1)
            sent = [b"msg %d" % i for i in range(MESSAGES)]
            failed = []

            got = []

            def send_all():
                # small bursts, each once the receiver has the last: so the
                # loop mostly waits in arecv (or is being cancelled there)
                # when a message lands
                rng = random.Random(7)
                try:
                    i = 0
                    while i < MESSAGES:
                        for _ in range(min(rng.randrange(1, 4), MESSAGES - i)):
                            push.send(sent[i])
                            i += 1
                        deadline = time.monotonic() + 10
                        while len(got) < i and time.monotonic() < deadline:
                            time.sleep(0.0001)
                        time.sleep(rng.random() / 2000)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failed.append(exc)

            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            rng = random.Random(9)
            cancelled = timed_out = 0
            try:
                while sender.is_alive() or len(got) < MESSAGES:
                    if rng.random() < 0.5:
                        task = asyncio.ensure_future(pull.arecv())
                        for _ in range(1 + rng.randrange(3)):  # it has started: took one, or waits
                            await asyncio.sleep(0)
                        if rng.random() < 0.5:
                            await asyncio.sleep(rng.random() / 2000)
                        if task.cancel():  # it was waiting, or woken and not yet back
                            cancelled += 1
                        try:
                            got.append(await task)
                        except asyncio.CancelledError:
                            pass
                    else:
                        try:
                            got.append(await asyncio.wait_for(pull.arecv(), rng.random() / 2000))
                        except asyncio.TimeoutError:
                            timed_out += 1
                    assert len(got) <= MESSAGES, "more messages received than sent"
            finally:
                sender.join(10)
            assert not failed, failed
            assert got == sent, "lost, duplicated or reordered: first difference at %d" % next(
                i for i, (a, b) in enumerate(zip(got + [None] * MESSAGES, sent)) if a != b
            )
            assert cancelled > 20 and timed_out > 20, f"too few cancels to mean much: {cancelled}, {timed_out}"

    run(main)


def test_cancelled_asend_under_backpressure_sends_nothing(url, transport):
    """Fill the pipe until asend waits; asends cancelled then (by cancel()
    and by wait_for) never arrive, not even in part, and all the others do,
    once, in order."""
    # ofi's tcp provider buffers megabytes per connection: fill it faster
    size = 64_000 if transport == "ofi+tcp" else 1000

    async def main():
        with nnofi.Pull(**OPTS) as pull, nnofi.Push(**OPTS) as push:
            push.connect(pull.bind(url).url)
            await wait_pipes(push, 1)
            body = b"." * size
            sent, cancelled = [], []
            while True:
                m = b"fill %d " % len(sent)
                try:
                    await asyncio.wait_for(push.asend(m + body), 0.3)
                    sent.append(m)
                    assert len(sent) < 100_000, "asend never waited"
                except asyncio.TimeoutError:
                    cancelled.append(m)
                    break
            for k in range(5):
                m = b"cancelled %d " % k
                task = asyncio.ensure_future(push.asend(m + body))
                await asyncio.sleep(0.02)
                assert not task.done(), "the pipe had room again"
                assert task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled.append(m)
            waiting = asyncio.ensure_future(push.asend(b"after "))  # waits for room, then goes
            got = []
            while True:
                msg = await pull.arecv()
                if msg == b"after ":
                    break
                kind, number, rest = msg.split(b" ", 2)  # b"fill 7 ....."
                assert rest == body, f"{kind} {number} arrived in part or altered"
                got.append(b"%s %s " % (kind, number))
            await asyncio.wait_for(waiting, 5)
            assert got == sent
            assert not set(got) & set(cancelled), "a cancelled asend was sent"
            pull.recv_timeout = 200
            try:
                extra = await pull.arecv()
                raise AssertionError(f"unexpected message after the last: {extra[:40]!r}")
            except nnofi.Timeout:
                pass

    run(main)
