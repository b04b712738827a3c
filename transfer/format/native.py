"""The native line checker (``linecheck.c`` beside this file), for verifying without building
records.

``make install`` compiles ``linecheck.c`` into ``_linecheck.so`` next to this file when a C
compiler is present; a library older than its source is not used (``make install`` is
due). :func:`line_checker` gives, for a stream whose records it knows (``requests``,
``results``), a function that counts the record lines of one read that are proven good;
the first line it cannot prove, the caller sends through the Python checks
(:mod:`transfer.format.body`), which accept it or name the problem. It only ever proves a line
the Python checks accept, so the verdict on every file is theirs, with or without it.
Without the library (no compiler) every line takes the Python path: slower, the same.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache
from pathlib import Path

__all__ = ["LIBRARY", "SOURCE", "LineChecker", "available", "built", "line_checker"]

LIBRARY = Path(__file__).with_name("_linecheck.so")
SOURCE = Path(__file__).with_name("linecheck.c")
_SHAPES = {"requests": 1, "results": 2}  # SHAPE_REQUEST, SHAPE_RESULT in linecheck.c

# (joined lines, offset of the first, at most this many) -> (lines proven, offset after them)
LineChecker = Callable[[bytes, int, int], tuple[int, int]]


def built() -> bool:
    """Whether the library is here and not older than its source."""
    try:
        library_time = LIBRARY.stat().st_mtime
    except FileNotFoundError:
        return False
    return not SOURCE.exists() or library_time >= SOURCE.stat().st_mtime


@cache
def _library() -> ctypes.CDLL | None:
    if not built():
        return None
    library = ctypes.CDLL(str(LIBRARY))
    check = library.ferry_check
    check.restype = ctypes.c_size_t
    check.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_size_t),
    ]
    return library


def available() -> bool:
    """Whether the compiled checker is here (``make install`` builds it)."""
    return _library() is not None


def line_checker(stream: str, max_depth: int) -> LineChecker | None:
    """The native checker for ``stream``'s records nested at most ``max_depth`` deep, if any."""
    shape = _SHAPES.get(stream)
    library = _library()
    if shape is None or library is None:
        return None
    check = library.ferry_check
    after = ctypes.c_size_t()
    where = ctypes.byref(after)

    def proven(joined: bytes, start: int, most: int) -> tuple[int, int]:
        good = check(joined, len(joined), start, most, shape, max_depth, where)
        return good, after.value

    return proven
