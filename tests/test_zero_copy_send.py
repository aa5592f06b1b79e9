"""send(data, copy=False): a big writable buffer is lent, not copied, and
the returned Tracker says when nnofi no longer reads it (pyzmq's
copy=False/MessageTracker). make bench's memory check measures the
1 GiB case over ofi+shm."""
import gc
import uuid

import numpy as np
import pytest

import nnofi

MIB = 1 << 20


def test_inproc_lends_the_buffer_until_the_message_is_freed():
    url = f"inproc://{uuid.uuid4()}"
    with nnofi.Pull(bind=url, recv_timeout=2000) as pull, nnofi.Push(connect=url, send_timeout=2000) as push:
        array = np.zeros(MIB, dtype=np.uint8)
        tracker = push.send(array, copy=False)
        assert not tracker.done, "the queued message should still point at the array"
        array[:4] = 7  # no copy was made: the receiver sees this
        msg = pull.recv_msg()
        assert bytes(msg)[:4] == b"\x07" * 4
        assert not tracker.done, "the received message still points at the array"
        del msg
        gc.collect()
        assert tracker.wait(2)


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:0", "ofi://127.0.0.1:0@tcp"])
def test_a_lent_buffer_arrives_whole_and_is_released(url):
    with nnofi.Pull(recv_timeout=5000, recv_max_size=-1) as pull, nnofi.Push(send_timeout=5000) as push:
        push.connect(pull.bind(url).url)
        array = np.arange(4 * MIB, dtype=np.uint8)
        tracker = push.send(array, copy=False)
        assert bytes(pull.recv_msg()) == array.tobytes()
        assert tracker.wait(5), "the lent buffer was never released"


def test_small_and_copied_sends_are_done_at_once():
    url = f"inproc://{uuid.uuid4()}"
    with nnofi.Pull(bind=url) as pull, nnofi.Push(connect=url) as push:
        assert push.send(bytearray(100), copy=False).done  # below the zero-copy size: copied
        assert push.send(b"abc") is None
        assert pull.recv() == bytes(100) and pull.recv() == b"abc"


def test_copy_false_refuses_what_is_not_a_buffer():
    with nnofi.Push() as push, pytest.raises(TypeError):
        push.send("text", copy=False)
