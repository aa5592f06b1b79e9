"""cffi build script for nnofi._native (API mode).

The cdef is the marked block of native/include/nnofi.h, so the C header
stays the single source of truth. NNOFI_SANITIZE=1 builds with ASan+UBSan.
"""
import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "include", "nnofi.h")


def _cdef() -> str:
    text = open(HEADER, encoding="utf-8").read()
    block = text.split("/* CDEF-BEGIN */")[1].split("/* CDEF-END */")[0]
    block = re.sub(r"/\*.*?\*/", "", block, flags=re.S)
    return block


def _sources(absolute: bool) -> list:
    files = []
    for sub in ("core", "proto", "transport"):
        files += sorted(glob.glob(os.path.join(HERE, sub, "*.c")))
    if absolute:
        return files
    return [os.path.relpath(f, os.path.dirname(HERE)) for f in files]


def _flags():
    cflags = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-O2", "-g", "-pthread"]
    ldflags = ["-pthread"]
    if os.environ.get("NNOFI_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
        cflags += san
        ldflags += san
    if os.environ.get("NNOFI_WERROR"):
        cflags.append("-Werror")
    return cflags, ldflags


def make_builder(absolute: bool = False) -> FFI:
    """absolute=True names sources by absolute path (builds outside the tree)."""
    builder = FFI()
    builder.cdef(_cdef())
    cflags, ldflags = _flags()
    base = os.path.dirname(HERE) if absolute else ""
    builder.set_source(
        "nnofi._native",
        '#include "nnofi.h"\n',
        sources=_sources(absolute),
        include_dirs=[os.path.join(base, "native", "include"), os.path.join(base, "native", "core")],
        libraries=["fabric"],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
