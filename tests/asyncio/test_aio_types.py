"""Every socket type's coroutines, and the errors they share with the
blocking calls (a type that cannot send or receive, the wrong protocol
state, a closed socket)."""
import asyncio
import time

import pytest

import nnofi

from aiohelpers import OPTS, gather_all, run, wait_pipes

N = 50


def test_pair_both_ways_at_once(url):
    async def main():
        with nnofi.Pair(**OPTS) as a, nnofi.Pair(**OPTS) as b:
            b.connect(a.bind(url).url)

            async def talk(me, peer_name, mine):
                async def send():
                    for i in range(N):
                        await me.asend(b"%s %d" % (mine, i))

                async def recv():
                    return [await me.arecv() for _ in range(N)]

                _, got = await gather_all([send(), recv()])
                assert got == [b"%s %d" % (peer_name, i) for i in range(N)]

            await gather_all([talk(a, b"b", b"a"), talk(b, b"a", b"b")])

    run(main)


async def _sync_subscriber(pub, sub):
    """Publish probes until sub gets one (it joined), then drain them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        assert loop.time() < deadline, "subscriber never joined"
        await pub.asend(b"\x00probe")
        try:
            await asyncio.wait_for(sub.arecv(), 0.05)
            break
        except asyncio.TimeoutError:
            pass
    while True:
        try:
            assert await asyncio.wait_for(sub.arecv(), 0.1) == b"\x00probe"
        except asyncio.TimeoutError:
            return


def test_pub_sub(url):
    async def main():
        with nnofi.Pub(**OPTS) as pub, nnofi.Sub(topics=[b"news", b"\x00"], **OPTS) as sub:
            sub.connect(pub.bind(url).url)
            await _sync_subscriber(pub, sub)
            for i in range(N):
                await pub.asend(b"news %d" % i)
                await pub.asend(b"sport %d" % i)  # not subscribed
            assert [await sub.arecv() for _ in range(N)] == [b"news %d" % i for i in range(N)]
            sub.recv_timeout = 100
            with pytest.raises(nnofi.Timeout):
                await sub.arecv()

    run(main)


def test_survey_answers_then_timeout_at_survey_end(url):
    respondents = 3
    survey_ms = 500

    async def main():
        with nnofi.Surveyor(survey_time=survey_ms, **OPTS) as surveyor:
            where = surveyor.bind(url).url
            resp = [nnofi.Respondent(**OPTS) for _ in range(respondents)]
            try:
                for r in resp:
                    r.connect(where)
                await wait_pipes(surveyor, respondents)
                for r in resp:
                    await wait_pipes(r, 1)

                async def answer(k, r):
                    ask = await r.arecv()
                    await r.asend(ask + b" from %d" % k)

                answering = [asyncio.ensure_future(answer(k, r)) for k, r in enumerate(resp)]
                await asyncio.sleep(0.05)  # the respondents wait in arecv
                await surveyor.asend(b"who")
                t0 = time.monotonic()
                got = sorted([await surveyor.arecv() for _ in range(respondents)])
                assert got == [b"who from %d" % k for k in range(respondents)]
                await asyncio.gather(*answering)
                # no more answers: recv ends with the survey, as the blocking one
                with pytest.raises(nnofi.Timeout):
                    await surveyor.arecv()
                took = time.monotonic() - t0
                assert survey_ms / 1000 - 0.05 <= took < survey_ms / 1000 + 2, f"survey ended after {took:.3f}s"
            finally:
                for r in resp:
                    r.close()

    run(main)


def test_bus(url):
    async def main():
        with nnofi.Bus(**OPTS) as hub, nnofi.Bus(**OPTS) as b, nnofi.Bus(**OPTS) as c:
            where = hub.bind(url).url
            b.connect(where)
            c.connect(where)
            await wait_pipes(hub, 2)
            await wait_pipes(b, 1)
            await wait_pipes(c, 1)
            await hub.asend(b"to all")
            assert await b.arecv() == b"to all"
            assert await c.arecv() == b"to all"
            await b.asend(b"from b")
            assert await hub.arecv() == b"from b"
            c.recv_timeout = 100
            with pytest.raises(nnofi.Timeout):  # not directly connected to b
                await c.arecv()

    run(main)


@pytest.mark.parametrize(
    "kind, method, error",
    [
        (nnofi.Pull, "asend", nnofi.NotSupported),
        (nnofi.Sub, "asend", nnofi.NotSupported),
        (nnofi.Push, "arecv", nnofi.NotSupported),
        (nnofi.Pub, "arecv", nnofi.NotSupported),
        (nnofi.Rep, "asend", nnofi.BadState),  # no request to answer
        (nnofi.Respondent, "asend", nnofi.BadState),
        (nnofi.Req, "arecv", nnofi.BadState),  # no request sent
        (nnofi.Surveyor, "arecv", nnofi.BadState),
    ],
)
def test_what_the_blocking_call_raises(kind, method, error):
    async def main():
        with kind(**OPTS) as sock:
            blocking = getattr(sock, method[1:])
            with pytest.raises(error) as sync_exc:
                blocking(b"x") if method == "asend" else blocking()
            call = getattr(sock, method)
            t0 = time.monotonic()
            with pytest.raises(error) as async_exc:
                await (call(b"x") if method == "asend" else call())
            assert time.monotonic() - t0 < 1, "it waited before failing"
            assert async_exc.value.errno == sync_exc.value.errno

    run(main)


def test_closed_socket_raises_closed():
    async def main():
        sock = nnofi.Pair(**OPTS)
        sock.close()
        with pytest.raises(nnofi.Closed):
            await sock.arecv()
        with pytest.raises(nnofi.Closed):
            await sock.asend(b"x")

    run(main)


def test_close_wakes_waiting_coroutines():
    """Closing a socket ends the arecv and the asend waiting on it with
    Closed, as it does for blocked threads."""

    async def main():
        with nnofi.Pair(**OPTS) as lonely, nnofi.Push(**OPTS) as push:
            receiving = asyncio.ensure_future(lonely.arecv())  # no peer sends
            sending = asyncio.ensure_future(push.asend(b"x"))  # no peer to take it
            await asyncio.sleep(0.1)
            assert not receiving.done() and not sending.done()
            lonely.close()
            push.close()
            for fut in (receiving, sending):
                with pytest.raises(nnofi.Closed):
                    await asyncio.wait_for(fut, 2)

    run(main)
