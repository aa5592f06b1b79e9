"""--help of every command (status 0, its options and examples named),
`nnofi info` and `nnofi perf --help`, through the console script too."""
import os
import sys

import pytest

from clihelpers import TIMEOUT, run

HELP = {
    ("--help",): ["info", "cat", "perf", "lab", "demo", "examples:"],
    ("info", "--help"): ["--provider", "--interface", "examples:"],
    ("cat", "--help"): ["--pair", "--push", "--pull", "--req", "--rep", "--pub", "--sub", "--surveyor",
                        "--respondent", "--bus", "--type", "--bind", "--connect", "--data", "--file",
                        "--interval", "--delay", "--count", "--recv-timeout", "--send-timeout", "--subscribe",
                        "--ascii", "--quoted", "--hex", "--raw", "--progress", "examples:", "exit status"],
    ("perf", "--help"): ["--quick", "--sizes", "--transports", "--libs"],
    ("lab", "--help"): ["up", "down", "status", "run", "examples:"],
    ("lab", "run", "--help"): ["--topology", "--dry-run", "examples:"],
    ("lab", "up", "--help"): ["--topology", "--nodes", "--rxe"],
    ("lab", "status", "--help"): ["--topology"],
    ("demo", "--help"): ["REQ/REP"],
}


@pytest.mark.parametrize("args", list(HELP), ids=lambda a: " ".join(a))
def test_help(args):
    r = run(*args)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert out.startswith("usage: "), out[:200]
    missing = [word for word in HELP[args] if word not in out]
    assert not missing, f"{' '.join(args)} does not mention {missing}"


def test_console_script():
    script = os.path.join(os.path.dirname(sys.executable), "nnofi")
    if not os.path.exists(script):
        pytest.skip(f"no console script at {script} (nnofi not pip-installed into this interpreter's prefix)")
    import subprocess

    r = subprocess.run([script, "cat", "--help"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0 and b"usage: nnofi cat" in r.stdout


def test_info_lists_providers():
    r = run("info")
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    lines = out.splitlines()
    assert lines[0].startswith("libfabric 1.")
    assert lines[1].split() == ["provider", "ep_type", "fabric", "domain", "address", "caps"]
    assert any(line.split()[0] == "tcp" for line in lines[3:]), out  # the tests' own ofi provider


def test_info_filters_by_provider_and_says_when_nothing_matches():
    r = run("info", "-p", "tcp")
    rows = r.stdout.decode().splitlines()[3:]
    assert r.returncode == 0 and rows and all(row.split()[0] in ("tcp", "tcp;ofi_rxm") for row in rows), rows
    r = run("info", "-p", "nonesuch")
    assert r.returncode == 1
    assert r.stdout.decode().splitlines()[1] == "fi_getinfo offers no provider 'nonesuch'"


def test_perf_bad_option_is_the_bench_s_usage_error():
    r = run("perf", "--frob")
    assert r.returncode == 2 and b"unrecognized arguments: --frob" in r.stderr and b"Traceback" not in r.stderr
