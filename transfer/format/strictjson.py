"""Strict parsing of one untrusted JSON line: the reader's only JSON entry point.

Refuses invalid UTF-8, nesting deeper than a limit (checked before parsing), duplicate
object keys, NaN/Infinity (and numbers that overflow to infinity), integers outside the
64-bit range canonical JSON can encode, and lone UTF-16 surrogate escapes.

Two paths, one verdict. :func:`compact_loads` is the fast path: it accepts a line only if
orjson parses it *and* writes the parsed value back to exactly the same bytes (plus the
depth check). Such a line is the compact form orjson itself writes — what every Ferry
writer produces — and passes every strict rule by construction: orjson refuses invalid
UTF-8, NaN/Infinity, overflowing numbers and lone surrogates, and a dropped duplicate key
or any integer outside the 64-bit range would change the bytes written back. Anything
else takes the slow path of :func:`strict_loads`, which finds and names the problem.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = [
    "NOT_COMPACT",
    "StrictJSONError",
    "compact_loads",
    "json_depth_exceeds",
    "strict_loads",
    "value_depth_exceeds",
]

_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError
_JSONEncodeError = orjson.JSONEncodeError


class _NotCompact:
    """Type of :data:`NOT_COMPACT`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_COMPACT"


NOT_COMPACT: Any = _NotCompact()


class StrictJSONError(ValueError):
    """The line is not acceptable JSON; the message says why."""


def json_depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """True if brackets outside strings nest deeper than ``max_depth`` (cheap pre-scan)."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:  # an upper bound, and cheap
        return False
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


def value_depth_exceeds(value: Any, max_depth: int) -> bool:
    """True if a parsed value nests containers deeper than ``max_depth`` (``[]`` is 1)."""
    level = [value] if type(value) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        inner = []
        for container in level:
            items = container.values() if type(container) is dict else container
            inner += [item for item in items if type(item) in (dict, list)]
        level = inner
    return False


def compact_loads(raw: bytes, max_depth: int) -> Any:
    """The value of a line in orjson's compact form, or :data:`NOT_COMPACT` (use the slow path).

    Never accepts a line :func:`strict_loads` would refuse, and returns an equal value.
    """
    try:
        value = _loads(raw)
        if _dumps(value) != raw:
            return NOT_COMPACT
    except (_JSONDecodeError, _JSONEncodeError):
        return NOT_COMPACT
    # Every "[" or "{" (even one inside a string) could open a level: an upper bound.
    if raw.count(b"{") + raw.count(b"[") > max_depth and value_depth_exceeds(value, max_depth):
        return NOT_COMPACT
    return value


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
    value = compact_loads(raw, max_depth)
    if value is not NOT_COMPACT:
        return value
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
