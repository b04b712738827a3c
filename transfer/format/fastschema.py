"""The fast path's schema for the bulk streams: :mod:`shared.records`, checked in C.

``shared.records.validate_record`` (pydantic, one record at a time) is the authority.
Here its ``request`` and ``result`` models are restated as msgspec ``TypedDict`` types,
so that a whole run of lines is decoded and checked at once (:mod:`transfer.format.fastpath`).
The restatement may be *stricter* than the models, never looser: anything it does not
accept goes to the strict path, where ``validate_record`` itself decides and names the
problem. So the verdict on every record is ``validate_record``'s. Where it is stricter:
``part`` must be absent or 0 (multi-part results take the strict path), and
``correlation_id`` and ``traceparent`` must be absent or strings (an explicit null takes
the strict path). Checks msgspec cannot make without a Python call per value run over the
whole run at once: canonical request UUIDs (byte slicing), profile type names (each
distinct name once, by the models' own pydantic type) and timestamps (pydantic's own
``AwareDatetime`` validator over the run's list of strings).

The other streams (users, settings, profile types, acks) are small: their records are
checked by the generic fast path for strict JSON and envelope, then by ``validate_record``.
``tests/transfer/format/test_fastschema.py`` holds the two to the same verdicts; change both
together. (No ``from __future__ import annotations`` here: ``TypedDict`` needs the
``NotRequired`` markers evaluated to know its required keys.)
"""

from collections.abc import Callable, Iterable
from functools import lru_cache
from operator import itemgetter
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import msgspec
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from shared.records import ProfileTypeName, validate_record
from transfer.format.fastpath import Envelopes, RunCheck, RunDecoder, Version, generic_decoder

__all__ = ["canonical_uuids", "run_decoder", "typed_schema"]

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
UuidText = Annotated[str, msgspec.Meta(min_length=36, max_length=36)]  # + canonical_uuids
ProfileText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # + the pattern
# The models' patterns, anchored with \Z: msgspec matches with Python's `re`, whose `$` also
# matches before a final newline (the models' engine does not).
CorrelationText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]{1,128}\Z")
]
TraceparentText = Annotated[
    str,
    msgspec.Meta(
        min_length=55, max_length=55, pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z"
    ),
]


class RequestFields(TypedDict):
    """``shared.records.RequestData``."""

    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    profile_type: ProfileText
    query: dict[str, Any]
    submitted_at: str  # a timestamp: checked over the run
    cancelled: NotRequired[bool]
    correlation_id: NotRequired[CorrelationText]
    traceparent: NotRequired[TraceparentText]


class RequestEnvelope(TypedDict):
    data: RequestFields
    id: UuidText
    kind: Literal["record"]
    type: Literal["request"]
    version: Version


class ResultFields(TypedDict):
    """``shared.records.ResultData``, only single-part results (``part`` absent or 0)."""

    status: Literal["DONE", "FAILED"]
    total: NonNegative | None
    hits: list[dict[str, Any]]
    error: str | None
    executed_at: str  # a timestamp: checked over the run
    took_ms: NonNegative | None
    part: NotRequired[Literal[0]]  # so part < parts holds for any parts >= 1
    parts: NotRequired[Annotated[int, msgspec.Meta(ge=1)]]
    correlation_id: NotRequired[CorrelationText]
    traceparent: NotRequired[TraceparentText]


class ResultEnvelope(TypedDict):
    data: ResultFields
    id: UuidText
    kind: Literal["record"]
    type: Literal["result"]
    version: Version


_HEX = b"0123456789abcdef"
_ID = itemgetter("id")
_DATA = itemgetter("data")
# A timestamp reaches the models' Timestamp type as a str, which its BeforeValidator passes
# through unchanged to AwareDatetime; validating the str with AwareDatetime is the same.
_TIMESTAMPS = TypeAdapter(list[AwareDatetime])
_PROFILE_NAME = TypeAdapter(ProfileTypeName)
_GOOD_PROFILE_NAMES: set[str] = set()


def canonical_uuids(ids: list[str]) -> bool:
    """True if every id (each known to be 36 characters) is a lower-case hyphenated UUID.

    Equivalent to ``shared.records``' ``_CANONICAL_UUID_RE.fullmatch`` on each, in a few
    passes over the joined ids: all ASCII (else the UTF-8 is longer than 36 a piece), only
    hex digits and hyphens, and the hyphens exactly at 8, 13, 18 and 23 of each id.
    """
    joined = "".join(ids).encode()
    count = len(ids)
    if len(joined) != 36 * count or joined.translate(None, _HEX) != b"-" * (4 * count):
        return False
    hyphens = b"-" * count
    return all(joined[offset::36] == hyphens for offset in (8, 13, 18, 23))


def _ids_are_uuids(envelopes: Envelopes) -> bool:
    return canonical_uuids(list(map(_ID, envelopes)))


def _profile_names_ok(values: Iterable[str]) -> bool:
    distinct = set(values)
    if distinct <= _GOOD_PROFILE_NAMES:
        return True
    for value in distinct - _GOOD_PROFILE_NAMES:
        try:
            _PROFILE_NAME.validate_python(value)
        except ValidationError:
            return False
        if len(_GOOD_PROFILE_NAMES) < 64:
            _GOOD_PROFILE_NAMES.add(value)
    return True


def _timestamps_ok(values: Iterable[str]) -> bool:
    try:
        _TIMESTAMPS.validate_python(list(values))
    except ValidationError:
        return False
    return True


def _data_checks(**checks: Callable[[Iterable[Any]], bool]) -> RunCheck:
    """A run check applying ``checks[field]`` to the ``data[field]`` values of the run."""
    getters = [(itemgetter(name), check) for name, check in checks.items()]

    def check_data(envelopes: Envelopes) -> bool:
        datas = list(map(_DATA, envelopes))
        return all(check(map(get, datas)) for get, check in getters)

    return check_data


_TYPED: dict[str, tuple[type, list[RunCheck]]] = {
    "requests": (
        RequestEnvelope,
        [
            _ids_are_uuids,
            _data_checks(profile_type=_profile_names_ok, submitted_at=_timestamps_ok),
        ],
    ),
    "results": (ResultEnvelope, [_ids_are_uuids, _data_checks(executed_at=_timestamps_ok)]),
}


def typed_schema(stream: str) -> tuple[type, list[RunCheck]] | None:
    """The envelope type and run checks that stand for ``validate_record`` on ``stream``."""
    return _TYPED.get(stream)


@lru_cache(maxsize=64)
def _decoder(stream: str | None, max_depth: int) -> RunDecoder:
    if stream is None:
        return generic_decoder(max_depth)
    envelope, checks = _TYPED[stream]
    return RunDecoder(envelope, checks, max_depth)


def run_decoder(stream: str, validator: object, max_depth: int) -> tuple[RunDecoder, bool]:
    """The fast path for a batch of ``stream`` checked by ``validator``: (decoder, checked).

    ``checked`` is True if a record the decoder returns needs no ``validator`` call: no
    validator, or ``validate_record`` on a stream with a typed schema here.
    """
    if validator is validate_record and stream in _TYPED:
        return _decoder(stream, max_depth), True
    return _decoder(None, max_depth), validator is None
