"""`python -m build` makes an sdist and, from it, a wheel that works on its
own: installed into a fresh venv (no system site-packages, no source tree
on the path) it runs REQ/REP over inproc, tcp and ofi against the system's
libfabric, `nnofi info` runs as a console script, and a user's program
type-checks against it (py.typed and the stubs of the compiled modules)."""
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

pytest.importorskip("build", reason="build is part of the test extra: pip install -e '.[test]'")
pytest.importorskip("mypy", reason="mypy is part of the test extra: pip install -e '.[test]'")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
# cffi's wheel (the compiled module's runtime), fetched from PyPI once and
# installed offline from here after that
WHEELHOUSE = os.path.join(ROOT, "build", "wheelhouse")
# not the tree's own state: builds, caches, environments
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "*.so", "*.o",
                                     ".mypy_cache", ".pytest_cache")
# what the sdist must carry for the wheel, and the wheel for its users
SDIST_NEEDS = ["native/build_backend.py", "native/build_ffi.py", "native/include/nnofi.h",
               "native/include/nnofi_fast.h", "native/core/core.h", "native/python/fast.c",
               "nnofi/perf/nanomsg_driver.c", "nnofi/py.typed", "lab/nnofi_lab/plugin.py"]
WHEEL_NEEDS = ["nnofi/_native.abi3.so", "nnofi/_fast.*.so", "nnofi/_msgbuf.*.so", "nnofi/py.typed",
               "nnofi/_native.pyi", "nnofi/_fast.pyi", "nnofi/_msgbuf.pyi", "nnofi/perf/nanomsg_driver.c",
               "nnofi_lab/plugin.py"]  # the pytest11 entry point names it
TYPED_USER_CODE = """\
import nnofi
with nnofi.Sub(topics=b"", recv_timeout=100) as sub:
    sub.recv_timeout = 200
    data: bytes = sub.recv(block=False)
nnofi.Req(recv_timeot=5)  # ERROR
"""


def run(argv, timeout, **kw):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} (exit {done.returncode}):\n{done.stdout}{done.stderr}"
    return done


def clean_env():
    """The environment of a user who installed the wheel: no path to a
    source tree, no sanitizer of `make test-asan`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "NNOFI_SANITIZE", "LD_PRELOAD")}
    return env


def matches(names, pattern):
    prefix, _, suffix = pattern.partition("*")
    return any(n.startswith(prefix) and n.endswith(suffix) for n in names)


def install(venv_python, dist):
    """The wheel and its dependencies (cffi), offline when the wheelhouse
    has cffi's wheel; else that is fetched from PyPI first."""
    cffi = f"cffi=={importlib.metadata.version('cffi')}"  # the cffi nnofi was just built with
    pip = [sys.executable, "-m", "pip", "--python", str(venv_python)]
    offline = pip + ["install", "--no-index", "--find-links", str(dist), "--find-links", WHEELHOUSE, "nnofi", cffi]
    os.makedirs(WHEELHOUSE, exist_ok=True)
    first = subprocess.run(offline, capture_output=True, text=True, timeout=180)
    if first.returncode == 0:
        return
    fetch = subprocess.run(pip[:3] + ["download", "--dest", WHEELHOUSE, "--only-binary", ":all:", cffi],
                           capture_output=True, text=True, timeout=180)
    if fetch.returncode != 0:
        pytest.skip(f"no {cffi} wheel in {WHEELHOUSE} and PyPI unreachable:\n{first.stderr}{fetch.stderr}")
    run(offline, 180)


@pytest.mark.timeout(900)  # every step below has its own timeout; a cold build on a busy machine is slow
def test_sdist_wheel_and_fresh_venv(tmp_path):
    src, dist, venv, cwd = tmp_path / "src", tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCES)
    env = clean_env()

    # the sdist, then the wheel built from it (build's default): proves the sdist complete
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)], 600, env=env)
    (sdist,) = dist.glob("nnofi-*.tar.gz")
    (wheel,) = dist.glob("nnofi-*.whl")
    with tarfile.open(sdist) as tar:
        in_sdist = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    assert [n for n in SDIST_NEEDS if n not in in_sdist] == []
    assert [n for n in in_sdist if n.endswith((".so", ".o"))] == []
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = whl.namelist()
        entry_points = whl.read(next(n for n in in_wheel if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert [p for p in WHEEL_NEEDS if not matches(in_wheel, p)] == []
    assert "nnofi = nnofi.cli:main" in entry_points

    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 120, env=env)
    python = venv / "bin" / "python"
    install(python, dist)

    cwd.mkdir()  # not the tree: its nnofi/ must not shadow the installed one
    shutil.copy(os.path.join(HERE, "wheel_smoke.py"), cwd)
    smoke = run([str(python), "wheel_smoke.py"], 120, cwd=cwd, env=env)
    assert smoke.stdout.count("round trip ok") == 3, smoke.stdout

    info = run([str(venv / "bin" / "nnofi"), "info", "--provider", "tcp"], 60, cwd=cwd, env=env)
    assert info.stdout.startswith("libfabric "), info.stdout
    assert "tcp" in info.stdout.splitlines()[3], info.stdout  # a first provider row after the header lines

    # PEP 561: mypy finds nnofi's types in the venv, checks a user's code against them
    (cwd / "user.py").write_text(TYPED_USER_CODE)
    typed = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy-cache"),
                            "--python-executable", str(python), "user.py"],
                           cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    errors = [line for line in typed.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("user.py:5:") and "recv_timeot" in errors[0], typed.stdout
