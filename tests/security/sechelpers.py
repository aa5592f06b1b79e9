"""Shared by the security tests: bounded waits, and a peer in a child
process driven over a pipe (its own fds, limits and memory)."""
import multiprocessing as mp
import time

import nnofi


def wait_for(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def judge_until(sock, stat, at_least=1, timeout=10.0):
    """Let a receiving socket read its connections (it judges frames when
    the application receives) until stats[stat] reaches at_least; returns
    the messages that arrived meanwhile."""
    got = []
    deadline = time.monotonic() + timeout
    while sock.stats[stat] < at_least:
        assert time.monotonic() < deadline, f"{stat} stayed below {at_least}: {sock.stats}"
        try:
            got.append(sock.recv(block=False))
        except nnofi.Again:
            time.sleep(0.005)
    return got


class Child:
    """target(conn, *args) in a spawned process; ask() sends a request on
    the pipe and waits, bounded, for the answer. Exits bounded too."""

    def __init__(self, target, *args):
        ctx = mp.get_context("spawn")
        self.conn, child_end = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_end, *args), daemon=True)
        self.proc.start()
        child_end.close()

    def answer(self, timeout=30.0):
        assert self.conn.poll(timeout), f"the child process said nothing for {timeout} s"
        reply = self.conn.recv()
        if isinstance(reply, BaseException):
            raise AssertionError(f"in the child: {reply!r}")
        return reply

    def ask(self, request, timeout=30.0):
        self.conn.send(request)
        return self.answer(timeout)

    def close(self):
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve(conn, handle):
    """The child's loop: answer each request with handle(request) (an
    exception is sent back, not raised) until None comes."""
    for request in iter(conn.recv, None):
        try:
            conn.send(handle(request))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            conn.send(exc)
