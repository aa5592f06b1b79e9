"""PEP 517 backend: setuptools plus nnofi's two extension modules.

cffi's `cffi_modules` can only be passed to setup(), and the layout keeps
no setup.py, so this wraps setuptools.setup and hands the build to
setuptools.build_meta unchanged.
"""
import setuptools
from setuptools import Extension

_setup = setuptools.setup


def _nnofi_setup(**kwargs):
    kwargs.setdefault("cffi_modules", ["native/build_ffi.py:ffibuilder"])
    kwargs.setdefault(
        "ext_modules",
        [
            # lets nnofi.Message export the buffer protocol (no __buffer__ before 3.12)
            Extension(
                "nnofi._msgbuf",
                sources=["native/python/msgbuf.c"],
                extra_compile_args=["-Wall", "-Wextra", "-std=c11"],
            )
        ],
    )
    return _setup(**kwargs)


setuptools.setup = _nnofi_setup

from setuptools.build_meta import *  # noqa: E402,F401,F403
