"""Strict parsing of one untrusted JSON line: the reader's only JSON entry point.

Refuses invalid UTF-8, nesting deeper than a limit (checked before parsing), duplicate
object keys, NaN/Infinity (and numbers that overflow to infinity), integers outside the
64-bit range canonical JSON can encode, and lone UTF-16 surrogate escapes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = ["StrictJSONError", "json_depth_exceeds", "strict_loads"]

_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class StrictJSONError(ValueError):
    """The line is not acceptable JSON; the message says why."""


def json_depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """True if brackets outside strings nest deeper than ``max_depth`` (cheap pre-scan)."""
    brackets = _STRING_RE.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= max_depth:
        return False
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 21:
        raise StrictJSONError("integer is out of the 64-bit range")
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise StrictJSONError("integer is out of the 64-bit range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"duplicate key {key[:40]!r}")
            seen.add(key)
    return result


def strict_loads(raw: bytes, *, max_depth: int) -> Any:
    """Parse one line (without its newline) or raise :class:`StrictJSONError`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StrictJSONError(f"invalid UTF-8 at offset {error.start}") from None
    if json_depth_exceeds(raw, max_depth):
        raise StrictJSONError(f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except StrictJSONError:
        raise
    except json.JSONDecodeError as error:
        raise StrictJSONError(f"invalid JSON at column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise StrictJSONError(f"JSON nested deeper than {max_depth} levels") from None
    if _SURROGATE_ESCAPE_RE.search(text):
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise StrictJSONError("invalid \\u escape (lone surrogate)") from None
    return value
