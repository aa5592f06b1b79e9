"""`nnofi lab`: status and list (read-only), run (pytest --lab, for real on
the local lab, whose nodes are this machine's processes and always up),
and a clear error where the lab is not installed. No test brings a lab up
or down: other runs use the labs of this machine."""
import sys

import pytest

from clihelpers import TIMEOUT, one_line_error, run


def test_status_of_the_local_lab():
    r = run("lab", "status", "--topology", "local")
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "lab local (local," in out and "3 of 3 nodes up" in out
    for i in (1, 2, 3):
        assert f"node{i}  127.0.0.1{i}  up" in out


def test_status_of_whatever_lab_there_is():
    """Without a topology: the lab `up` chose last, or the one this machine
    can run; up (0) or down (1), its nodes listed either way."""
    r = run("lab", "status", timeout=90)
    out = r.stdout.decode()
    assert r.returncode in (0, 1), out + r.stderr.decode()
    assert "Traceback" not in out + r.stderr.decode()
    assert " nodes up" in out and "node   address" in out, out


def test_status_says_which_nodes_are_down():
    """The netns lab: up (status 0) only if every node is; each node's row
    says up or down (its namespace is missing)."""
    r = run("lab", "status", "--topology", "netns")
    out = r.stdout.decode()
    rows = [line.split() for line in out.splitlines() if line.startswith("node") and "10.77.0." in line]
    assert len(rows) == 3, out
    states = [row[2] for row in rows]
    assert set(states) <= {"up", "down"}, out
    assert r.returncode == (0 if states == ["up"] * 3 else 1), out
    if "down" in states:
        assert "no namespace nnofi-netns-node" in out


def test_status_by_path_and_an_unknown_topology():
    r = run("lab", "status", "--topology", "lab/topologies/local.yaml")
    assert r.returncode == 0 and b"lab local (local," in r.stdout, r.stdout
    r = run("lab", "status", "--topology", "nonesuch")
    assert r.returncode == 2 and b"no topology named 'nonesuch'" in r.stdout


def test_list():
    r = run("lab", "list")
    names = [line.split()[0] for line in r.stdout.decode().splitlines()]
    assert r.returncode == 0 and {"laptop", "netns", "local"} <= set(names), names


def test_run_dry_run_shows_the_pytest_command():
    r = run("lab", "run", "--dry-run", "-t", "netns", "-k", "pair", "-x")
    argv = r.stdout.decode().split()
    assert r.returncode == 0, r.stderr
    assert argv[:5] == [sys.executable, "-m", "pytest", "--lab", "netns"]
    assert argv[5:7] == ["-k", "pair"] and argv[7] == "-x"
    assert argv[8].endswith("tests/lab")  # no test named: the lab's tests
    r = run("lab", "run", "--dry-run", "tests/lab/test_lab_pair.py::test_pair_across_nodes", "--", "-n", "2")
    assert r.stdout.decode().split()[3:] == ["--lab", "auto", "tests/lab/test_lab_pair.py::test_pair_across_nodes",
                                             "-n", "2"]


def test_run_runs_pytest_on_the_lab():
    """One lab test on the local lab: it passes only if --lab reached pytest
    (without it, the lab fixtures skip the test)."""
    r = run("lab", "run", "--topology", "local", "tests/lab/test_lab_pair.py", "-k", "tcp and not ofi",
            "-p", "no:xdist", "-q", "-rs", timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "1 passed" in out and "skipped" not in out, out
    assert r.stderr.decode().startswith("nnofi lab run: pytest --lab local tests/lab/test_lab_pair.py")


def test_run_fails_when_its_tests_fail():
    r = run("lab", "run", "--topology", "local", "tests/lab/test_lab_pair.py", "-k", "no_such_test",
            "-p", "no:xdist", "-q", timeout=120)
    assert r.returncode == 5  # pytest: no tests collected


@pytest.mark.parametrize("hidden, says", [
    ("nnofi_lab", "nnofi lab: the lab (package nnofi_lab) is not installed: it ships in nnofi's source tree; "
                  "there, pip install -e '.[lab]'"),
    ("execnet", "nnofi lab: the lab needs the Python package execnet, which is missing: pip install 'nnofi[lab]'"),
    ("yaml", "nnofi lab: the lab needs the Python package pyyaml, which is missing: pip install 'nnofi[lab]'"),
])
@pytest.mark.parametrize("verb", ["status", "up", "run"])
def test_without_the_lab_installed(hidden, says, verb):
    """As a plain wheel install without the [lab] extra: importing the
    package (or one it needs) fails."""
    import subprocess

    code = (f"import sys; sys.modules[{hidden!r}] = None; sys.argv[0] = 'nnofi'; "
            "from nnofi.cli import main; sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", code, "lab", verb], capture_output=True, timeout=TIMEOUT)
    assert one_line_error(r) == says
    assert r.returncode == 1


def test_up_draws_progress_and_relays_the_lab_s_output():
    """The progress path of `lab up` (a child whose output is relayed under
    a progress line), with a topology that does not exist: it fails at
    once, nothing is brought up."""
    r = run("lab", "up", "--topology", "nonesuch", "--progress")
    assert r.returncode == 2
    assert b"error: no topology named 'nonesuch'" in r.stdout
    err = r.stderr.decode()
    assert err.startswith("\rnnofi lab up") and "failed (2)" in err and err.endswith("\n"), err
