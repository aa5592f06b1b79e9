"""A process forked after nnofi started its background thread (the
default multiprocessing start method on Linux) can use new sockets."""
import multiprocessing as mp

import nnofi


def _child_round_trip(queue):
    try:
        with nnofi.Rep(recv_timeout=5000) as rep, nnofi.Req(recv_timeout=5000) as req:
            req.connect(rep.bind("tcp://127.0.0.1:0").url)  # needs the background thread
            req.send(b"from the child")
            rep.send(rep.recv() + b"!")
            queue.put(req.recv())
    except Exception as exc:  # reported to the parent
        queue.put(repr(exc))


def test_forked_child_gets_its_own_background_thread():
    with nnofi.Rep() as parent_sock:
        parent_sock.bind("tcp://127.0.0.1:0")  # the parent's thread is running
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_round_trip, args=(queue,))
        child.start()
        try:
            assert queue.get(timeout=20) == b"from the child!"
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
        assert child.exitcode == 0
