"""Build nnofi's extensions into OUT/nnofi beside a copy of the Python
package, so a differently-compiled core (e.g. NNOFI_SANITIZE=1 for
`make test-asan`) runs without touching the editable install."""
import os
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(out: str) -> None:
    out = os.path.abspath(out)
    pkg = os.path.join(out, "nnofi")
    os.makedirs(pkg, exist_ok=True)
    # the Python package (subpackages and their data too), not its builds
    shutil.copytree(os.path.join(ROOT, "nnofi"), pkg, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    os.chdir(ROOT)  # build_ffi names sources relative to the repository
    sys.path.insert(0, os.path.join(ROOT, "native"))
    from build_ffi import _flags, make_builder

    make_builder(absolute=True).compile(tmpdir=out, verbose=False)
    cflags, ldflags = _flags()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name in ("msgbuf", "fast"):
        subprocess.check_call(
            ["gcc", "-shared", "-fPIC", *cflags, "-I", sysconfig.get_paths()["include"],
             "-I", os.path.join(ROOT, "native", "include"),
             os.path.join(ROOT, "native", "python", name + ".c"),
             "-o", os.path.join(pkg, f"_{name}" + suffix), *ldflags]
        )
    print("built into", pkg, sorted(os.listdir(pkg)))


if __name__ == "__main__":
    main(sys.argv[1])
