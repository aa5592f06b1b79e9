"""Fixtures of the interop tests (defined in _sides.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _sides import new_url, peer, sides, transport  # noqa: E402,F401
