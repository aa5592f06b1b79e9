"""A short, bounded libFuzzer run over the parsers a peer controls (URL,
SP header, frame decoder, backtrace); `make fuzz` runs it for minutes."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECONDS = int(os.environ.get("NNOFI_FUZZ_SECONDS", "15"))


def seeds(corpus):
    """Valid inputs to start from: URLs, SP headers, tcp and ipc frames."""
    frame = (12).to_bytes(8, "big") + (5).to_bytes(4, "big") + (0x80000001).to_bytes(4, "big") + b"body"
    items = {
        "url_tcp": b"\x00tcp://127.0.0.1:5555",
        "url_v6": b"\x00tcp://[::1]:0",
        "url_ipc": b"\x00ipc:///tmp/x.ipc",
        "sp_header": b"\x01\x00SP\x00\x00\x31\x00\x00",
        "tcp_frames": b"\x02" + frame + frame,
        "ipc_frames": b"\x03" + b"\x01" + frame + b"\x01" + frame,
    }
    for name, data in items.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)


def clean_env():
    """Without the sanitizer runtime `make test-asan` preloads into Python."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def test_fuzz_wire_parsers_find_no_crash(tmp_path):
    if not shutil.which("clang"):
        pytest.skip("clang not installed (make deps installs it): cannot build the libFuzzer target")
    binary = tmp_path / "fuzz_wire"
    build = subprocess.run(
        ["make", "-s", "-C", ROOT, "build/fuzz/fuzz_wire"], capture_output=True, text=True, timeout=120, env=clean_env()
    )
    if build.returncode != 0 and "fuzzer" in build.stderr and "cannot find" in build.stderr:
        pytest.skip(f"libFuzzer runtime missing (libclang-rt-14-dev): {build.stderr.strip()[-200:]}")
    assert build.returncode == 0, build.stderr
    shutil.copy(os.path.join(ROOT, "build", "fuzz", "fuzz_wire"), binary)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds(str(corpus))
    run = subprocess.run(
        [str(binary), f"-max_total_time={SECONDS}", "-print_final_stats=1", str(corpus)],
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
        cwd=tmp_path,
        env=clean_env(),
    )
    tail = run.stderr[-3000:]
    assert run.returncode == 0, f"fuzzer found a crash:\n{tail}"
    assert "Done" in run.stderr and "stat::number_of_executed_units" in run.stderr, tail
    executed = int(run.stderr.split("stat::number_of_executed_units:")[1].split()[0])
    assert executed > 1000, tail
