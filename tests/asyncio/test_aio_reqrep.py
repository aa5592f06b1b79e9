"""Many REQ coroutines against one REP, over every transport."""
import asyncio

import nnofi

from aiohelpers import OPTS, gather_all, run

CLIENTS = 100
ROUNDS = 5


async def _client(url: str, k: int) -> int:
    with nnofi.Req(**OPTS) as req:
        req.connect(url)
        for j in range(ROUNDS):
            ask = b"client %d round %d" % (k, j)
            await req.asend(ask)
            assert await req.arecv() == ask + b" answered"
    return k


def test_hundred_req_coroutines_one_rep_loop(url):
    async def main():
        with nnofi.Rep(**OPTS) as rep:
            where = rep.bind(url).url
            served = []

            async def serve():
                for _ in range(CLIENTS * ROUNDS):
                    ask = await rep.arecv()
                    served.append(ask)
                    await rep.asend(ask + b" answered")

            server = asyncio.ensure_future(serve())
            done = await gather_all([_client(where, k) for k in range(CLIENTS)])
            await asyncio.wait_for(server, 10)
            assert sorted(done) == list(range(CLIENTS))
            # every request answered once: none lost, none resent
            assert sorted(served) == sorted(b"client %d round %d" % (k, j) for k in range(CLIENTS) for j in range(ROUNDS))

    run(main)


def test_raw_rep_workers_echo_with_messages(url):
    """A raw REP served by several coroutines at once (arecv_msg and
    asend_msg: the backtrace header travels with the message)."""
    workers = 4

    async def main():
        with nnofi.Rep(raw=True, **OPTS) as rep:
            where = rep.bind(url).url
            handled = [0] * workers

            async def worker(w):
                while True:
                    msg = await rep.arecv_msg()
                    assert msg.header, "a raw REP keeps the backtrace"
                    handled[w] += 1
                    await rep.asend_msg(msg)  # the echo goes back the way it came
                    await asyncio.sleep(0)  # let the other workers in

            async def client(k):
                with nnofi.Req(**OPTS) as req:
                    req.connect(where)
                    for j in range(ROUNDS):
                        ask = b"%d.%d" % (k, j)
                        await req.asend(ask)
                        assert await req.arecv() == ask
                return k

            pool = [asyncio.ensure_future(worker(w)) for w in range(workers)]
            try:
                assert sorted(await gather_all([client(k) for k in range(CLIENTS // 2)])) == list(range(CLIENTS // 2))
            finally:
                for t in pool:
                    t.cancel()
                results = await asyncio.gather(*pool, return_exceptions=True)
            for r in results:
                assert isinstance(r, asyncio.CancelledError), f"a worker failed: {r!r}"
            assert sum(handled) == CLIENTS // 2 * ROUNDS
            assert sum(1 for h in handled if h) > 1, f"one worker did all the work: {handled}"

    run(main)
