"""PEP 517 backend: setuptools plus nnofi's extension modules.

cffi's `cffi_modules` can only be passed to setup(), and the layout keeps
no setup.py, so this wraps setuptools.setup and hands the build to
setuptools.build_meta unchanged.
"""
import os

import setuptools
from setuptools import Extension

_setup = setuptools.setup


def _ext_flags():
    flags = ["-Wall", "-Wextra", "-std=c11"]
    if os.environ.get("NNOFI_WERROR"):
        flags.append("-Werror")
    return flags


def _nnofi_setup(**kwargs):
    kwargs.setdefault("cffi_modules", ["native/build_ffi.py:ffibuilder"])
    kwargs.setdefault(
        "ext_modules",
        [
            # lets nnofi.Message export the buffer protocol (no __buffer__ before 3.12)
            Extension(
                "nnofi._msgbuf",
                sources=["native/python/msgbuf.c"],
                extra_compile_args=_ext_flags(),
            ),
            # Socket.send/recv of small messages without cffi's per-call costs
            Extension(
                "nnofi._fast",
                sources=["native/python/fast.c"],
                include_dirs=["native/include"],
                extra_compile_args=_ext_flags(),
            ),
        ],
    )
    return _setup(**kwargs)


setuptools.setup = _nnofi_setup

from setuptools.build_meta import *  # noqa: E402,F401,F403
