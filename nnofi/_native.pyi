# nnofi._native: the cffi (API mode) module built from the cdef block of
# native/include/nnofi.h by native/build_ffi.py. cffi's pointers and
# functions carry no static types, so both are Any to a type checker; the
# Python layer annotates what it takes out of them.
from typing import Any

ffi: Any
lib: Any
