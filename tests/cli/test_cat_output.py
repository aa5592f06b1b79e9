"""What `nnofi cat` prints for a received message, in each format, byte
for byte (nanocat's formats; test_cat_interop.py holds them against
nanocat's own output), and what it sends from --data, --file and stdin."""
import pytest

from clihelpers import bind_url, bound

EVERY_BYTE = bytes(range(256))
TRICKY = b'a\nb"c\\d\re\x00\t\x7f\x80\xff ~'


def expected(fmt, data):
    """The format, written out independently of nnofi/cat.py's tables."""
    if fmt == "raw":
        return data
    if fmt == "ascii":
        return bytes(b if 32 <= b <= 126 else ord(".") for b in data) + b"\n"
    if fmt == "hex":
        return b'"' + "".join(f"\\x{b:02x}" for b in data).encode() + b'"\n'
    if fmt == "msgpack":
        n = len(data)
        head = bytes([0xC4, n]) if n < 256 else (b"\xc5" + n.to_bytes(2, "big") if n < 65536
                                                  else b"\xc6" + n.to_bytes(4, "big"))
        return head + data
    raise ValueError(fmt)


def receive(spawn, ipc_dir, data, *fmt_args, count=1, send_args=()):
    """Push data (count times) from one `nnofi cat` to another that prints it."""
    url = bind_url("tcp", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", str(count), "--recv-timeout", "20",
                       "--set", "recv_max_size=-1", *fmt_args)
    path = f"{ipc_dir}/message.bin"
    with open(path, "wb") as f:
        f.write(data)
    push = spawn.nnofi("cat", "--push", "--connect", bound(pull, url), "-F", path, "--count", str(count),
                       "--send-timeout", "20", *send_args)
    assert push.finish()[0] == 0, push.stderr
    status, out, err = pull.finish()
    assert status == 0, err
    return out


@pytest.mark.parametrize("fmt", ["raw", "ascii", "hex", "msgpack"])
def test_every_byte_value(spawn, ipc_dir, fmt):
    assert receive(spawn, ipc_dir, EVERY_BYTE, f"--{fmt}") == expected(fmt, EVERY_BYTE)


def test_ascii_replaces_what_is_not_printable(spawn, ipc_dir):
    assert receive(spawn, ipc_dir, TRICKY, "-A") == b'a.b"c\\d.e..... ~\n'


def test_quoted_escapes_like_c(spawn, ipc_dir):
    assert receive(spawn, ipc_dir, TRICKY, "-Q") == b'"a\\nb\\"c\\\\d\\re\\x00\\x09\\x7f\\x80\\xff ~"\n'


def test_raw_is_the_bytes_alone_message_after_message(spawn, ipc_dir):
    assert receive(spawn, ipc_dir, TRICKY, "--raw", count=3) == TRICKY * 3


def test_format_by_name_and_the_ascii_default(spawn, ipc_dir):
    assert receive(spawn, ipc_dir, b"x\x01", "--format", "hex") == b'"\\x78\\x01"\n'
    assert receive(spawn, ipc_dir, b"x\x01") == b"x.\n"


@pytest.mark.parametrize("size", [300, 70000])
def test_msgpack_lengths(spawn, ipc_dir, size):
    data = bytes(i % 251 for i in range(size))
    assert receive(spawn, ipc_dir, data, "--msgpack") == expected("msgpack", data)


def test_empty_message(spawn, ipc_dir):
    assert receive(spawn, ipc_dir, b"", "-Q") == b'""\n'


def test_data_from_stdin_and_non_utf8_argument(spawn, ipc_dir):
    url = bind_url("ipc", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", "2", "--hex", "--recv-timeout", "20")
    from_stdin = spawn.nnofi("cat", "--push", "--connect", url, "-F", "-", stdin=b"\x00in\xfe")
    assert from_stdin.finish()[0] == 0, from_stdin.stderr
    # an argument that is not UTF-8 is sent as the bytes given
    from_arg = spawn.nnofi("cat", "--push", "--connect", url, "-D", b"\xffarg".decode("utf-8", "surrogateescape"))
    assert from_arg.finish()[0] == 0, from_arg.stderr
    status, out, err = pull.finish()
    assert status == 0, err
    assert out == b'"\\x00\\x69\\x6e\\xfe"\n"\\xff\\x61\\x72\\x67"\n'


def test_a_file_in_chunks_arrives_whole(spawn, ipc_dir):
    data = bytes((i * 7919) % 256 for i in range(3 * 65536 + 123))
    path = f"{ipc_dir}/file.bin"
    with open(path, "wb") as f:
        f.write(data)
    url = bind_url("tcp", ipc_dir)
    pull = spawn.nnofi("cat", "--pull", "--bind", url, "--count", "4", "--raw", "--recv-timeout", "20")
    push = spawn.nnofi("cat", "--push", "--connect", bound(pull, url), "-F", path, "--chunk", "64K")
    assert push.finish()[0] == 0, push.stderr
    status, out, err = pull.finish()
    assert status == 0, err
    assert out == data  # four messages: three of 64 KiB and the rest
