"""The reader's fast path: a run of record lines decoded and checked at once, in C.

:class:`RunDecoder` turns a run of record lines (the reader passes a few dozen at a time)
into :class:`~transfer.format.spec.Record` objects, or answers ``None``: "not proven good, take
the strict path line by line" (:mod:`transfer.format.lines`), which then names the problem. It
must never accept a line the strict path refuses, nor read one differently. The proof:

1. Each line on its own is decoded by ``msgspec`` into a typed ``TypedDict`` envelope (a
   plain dict): exactly one JSON value, with the keys ``data``, ``id``, ``kind``, ``type``
   and ``version``; ``kind`` must be ``"record"``, ``id`` a string of 1..256 characters,
   ``version`` an integer >= 0, ``data`` an object. With a typed schema
   (:mod:`transfer.format.fastschema`) the envelope and ``data`` are checked field by field too.
   msgspec refuses invalid UTF-8, lone surrogates, NaN/Infinity and overflowing numbers.
2. ``orjson.dumps`` of the run's envelopes must give back exactly the bytes of the lines
   joined as a JSON array. A key given twice anywhere (msgspec keeps the last), a key the
   typed schema does not know (msgspec drops it), or an integer outside the 64-bit range
   (orjson refuses to write it) changes or stops the output; so does a line that is not
   in orjson's compact form, which is what every Ferry writer produces. As each line is
   one complete value (step 1), equal runs mean every line equals its own envelope's
   compact form: a line cannot be a prefix of, or extend past, a complete object.
3. Nesting: the run's bytes with everything but ``[``, ``{`` and newlines deleted must not
   hold more than ``max_depth`` opening brackets in a row, i.e. no line opens more than
   ``max_depth`` brackets at all (brackets inside strings count too: an upper bound).
4. Checks over the whole run that msgspec cannot make without a Python call per value
   (record type names, canonical UUIDs, timestamps): each a few C-level passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import starmap
from operator import itemgetter
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import orjson

from transfer.format.spec import MAX_RECORD_ID_CHARS, RECORD_TYPE_RE, Record

__all__ = [
    "Envelopes",
    "RecordId",
    "RunCheck",
    "RunDecoder",
    "Version",
    "generic_decoder",
    "names_match",
    "nesting_may_exceed",
]

Envelopes = list[dict[str, Any]]
RunCheck = Callable[[Envelopes], bool]  # True if every envelope of the run passes

RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_RECORD_ID_CHARS)]
Version = Annotated[int, msgspec.Meta(ge=0)]

_OPENERS = bytes.maketrans(b"[", b"{")
_NOT_OPENERS = bytes(byte for byte in range(256) if byte not in b"[{\n")
_FIELDS = itemgetter("type", "id", "version", "data")
_TYPE = itemgetter("type")
_dumps = orjson.dumps


class _Envelope(TypedDict):
    """Any record line (no schema for ``data``)."""

    data: dict[str, Any]
    id: RecordId
    kind: Literal["record"]
    type: str
    version: Version


def nesting_may_exceed(lines: bytes, max_depth: int) -> bool:
    """True unless every newline-separated line opens at most ``max_depth`` brackets."""
    openers = lines.translate(_OPENERS, _NOT_OPENERS)
    return b"{" * (max_depth + 1) in openers


def names_match(values: Iterable[str], pattern: re.Pattern[str], known: set[str]) -> bool:
    """True if each distinct value fully matches ``pattern``; remembers up to 64 that did."""
    distinct = set(values)
    if distinct <= known:
        return True
    for value in distinct - known:
        if pattern.fullmatch(value) is None:
            return False
        if len(known) < 64:
            known.add(value)
    return True


_GOOD_TYPES: set[str] = set()


def _type_names_ok(envelopes: Envelopes) -> bool:
    return names_match(map(_TYPE, envelopes), RECORD_TYPE_RE, _GOOD_TYPES)


class RunDecoder:
    """Decodes and checks runs of record lines against one envelope type and run checks."""

    def __init__(self, envelope: type, checks: Sequence[RunCheck], max_depth: int) -> None:
        self._decode = msgspec.json.Decoder(envelope).decode
        self._checks = tuple(checks)
        self._max_depth = max_depth

    def __call__(self, lines: Sequence[Any]) -> Iterator[Record] | None:
        """The run's records (an iterator, in order), or ``None`` if any line is in doubt."""
        try:
            joined = b"\n".join(lines)  # TypeError: a marker (over-long, unterminated)
        except TypeError:
            return None
        if nesting_may_exceed(joined, self._max_depth):
            return None
        try:
            envelopes = list(map(self._decode, lines))
            if _dumps(envelopes) != b"[" + joined.replace(b"\n", b",") + b"]":
                return None
        except (msgspec.DecodeError, orjson.JSONEncodeError, RecursionError):
            return None
        for check in self._checks:
            if not check(envelopes):
                return None
        return starmap(Record, map(_FIELDS, envelopes))


def generic_decoder(max_depth: int) -> RunDecoder:
    """Checks every record line's envelope and strict JSON, not what ``data`` holds."""
    return RunDecoder(_Envelope, [_type_names_ok], max_depth)
