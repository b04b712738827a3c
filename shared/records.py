"""Schemas of the record ``data`` that crosses the gap, and the per-stream record check.

Both networks build records from these models (``Model(...).model_dump(mode="json")``)
and the batch reader checks every arriving record with :func:`validate_record`.
``transfer/format/fastschema.py`` restates ``RequestData`` and ``ResultData`` for the reader's
fast path; ``tests/transfer/format/test_fastschema.py`` fails when they drift apart.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.notification_kinds import KINDS, Channel, KindName
from shared.ratelimit.policy import MAX_LIMIT

__all__ = [
    "ACK_TYPE",
    "RECORD_MODELS",
    "RECORD_TYPES_BY_STREAM",
    "STREAMS",
    "CORRELATION_ID_PATTERN",
    "TRACEPARENT_PATTERN",
    "AckData",
    "CorrelationId",
    "NotificationPreferences",
    "ProfileTypeData",
    "RateLimitOverrides",
    "RateLimitValue",
    "RateLimits",
    "RecordLike",
    "RequestData",
    "ResultData",
    "SettingData",
    "Traceparent",
    "UserChangeData",
    "UserData",
    "validate_record",
]

STREAMS: tuple[str, ...] = ("requests", "results", "users", "settings", "profile_types", "acks")
ACK_TYPE = "ack"
RECORD_TYPES_BY_STREAM: dict[str, frozenset[str]] = {
    "requests": frozenset({"request", "user_change"}),
    "results": frozenset({"result"}),
    "users": frozenset({"user"}),
    "settings": frozenset({"setting"}),
    "profile_types": frozenset({"profile_type"}),
    "acks": frozenset(),
}
_MAX_ERRORS_PER_RECORD = 10
_UUID_ID_TYPES = frozenset({"request", "result"})
_BCRYPT_RE = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_PROFILE_NAME = r"^[a-z0-9_-]{1,64}$"


class RecordLike(Protocol):
    """Anything shaped like ``transfer.format.Record``."""

    @property
    def type(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def data(self) -> dict[str, Any]: ...


def _timestamp_input(value: object) -> object:
    """Wire values must be RFC 3339 strings with an offset; naive datetimes are taken as UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return value
    raise ValueError("must be an RFC 3339 timestamp string")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_input)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
ProfileTypeName = Annotated[StrictStr, Field(pattern=_PROFILE_NAME)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimits(_Data):
    """Per-user request limits of a profile type, per window."""

    minute: NonNegativeInt
    hour: NonNegativeInt
    day: NonNegativeInt


#: One window's limit as a user's own limits and the admin API take it: an integer from 0 to
#: the limiter's bound (a larger one would make every check of that user fail).
RateLimitValue = Annotated[StrictInt, Field(ge=0, le=MAX_LIMIT)]


class RateLimitOverrides(_Data):
    """A user's own limits; ``None`` means "use the profile type's"."""

    minute: RateLimitValue | None = None
    hour: RateLimitValue | None = None
    day: RateLimitValue | None = None


#: A request's correlation id: the `X-Request-ID` it was submitted with (the letters, digits
#: and `._:-` the API's edge accepts), or the id the edge made for it.
CORRELATION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
CorrelationId = Annotated[
    StrictStr, Field(min_length=1, max_length=128, pattern=CORRELATION_ID_PATTERN)
]
#: W3C trace context, version 00: `00-<trace id>-<parent span id>-<flags>`, lower-case hex.
TRACEPARENT_PATTERN = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
Traceparent = Annotated[StrictStr, Field(min_length=55, max_length=55, pattern=TRACEPARENT_PATTERN)]


class RequestData(_Data):
    """``requests`` stream, type ``request``; record id = request UUID, version = which
    sending of the request it is (1, then one more per retry). ``cancelled``: the request
    was cancelled; the response network must not run this sending (or an earlier one).
    ``correlation_id``: the id the request was submitted under, on every log line of its
    life on both networks; ``traceparent``: the trace the submission ran in. Writers leave
    both out when they have none."""

    user_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    profile_type: ProfileTypeName
    query: dict[str, Any]
    submitted_at: Timestamp
    cancelled: StrictBool = False
    correlation_id: CorrelationId | None = None
    traceparent: Traceparent | None = None


class ResultData(_Data):
    """``results`` stream, type ``result``; record id = request UUID. ``correlation_id`` and
    ``traceparent``: those of the request it answers (left out when it had none)."""

    status: Literal["DONE", "FAILED"]
    total: NonNegativeInt | None
    hits: list[dict[str, Any]]
    error: StrictStr | None
    executed_at: Timestamp
    took_ms: NonNegativeInt | None
    part: NonNegativeInt = 0
    parts: Annotated[StrictInt, Field(ge=1)] = 1
    correlation_id: CorrelationId | None = None
    traceparent: Traceparent | None = None

    @model_validator(mode="after")
    def _part_in_range(self) -> ResultData:
        if self.part >= self.parts:
            raise ValueError(f"part {self.part} is not below parts {self.parts}")
        return self


class NotificationPreferences(_Data):
    """Which channels each kind of event reaches the user on (`shared.notification_kinds`):
    a kind not named keeps its default (a completed request: in-app; a failed or expired
    one: in-app and email). In-app is always on: naming a kind with [] leaves it in-app
    only."""

    channels: Annotated[dict[KindName, list[Channel]], Field(max_length=len(KINDS))] = Field(
        default_factory=dict
    )


DisplayName = Annotated[StrictStr, Field(min_length=1, max_length=128)]
Email = Annotated[
    StrictStr, Field(max_length=254, pattern=r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,189}$")
]


class UserData(_Data):
    """``users`` stream, type ``user``; record id = user id. ``sessions_valid_after``: login
    sessions and API keys from before it are refused (a password change, a reset)."""

    username: Annotated[
        StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    ]
    password_hash: Annotated[StrictStr, Field(repr=False)]
    role: Literal["user", "operator", "admin"]
    profile_type: ProfileTypeName
    active: StrictBool
    rate_limits: RateLimitOverrides | None = None
    display_name: DisplayName | None = None
    email: Email | None = None
    notification_preferences: NotificationPreferences | None = None
    sessions_valid_after: Timestamp | None = None

    @field_validator("password_hash")
    @classmethod
    def _bcrypt_only(cls, value: str) -> str:
        return _bcrypt_only(value)


def _bcrypt_only(value: str) -> str:
    if _BCRYPT_RE.fullmatch(value) is None:
        raise ValueError("must be a bcrypt hash ($2b$...), never a plaintext password")
    return value


class UserChangeData(_Data):
    """``requests`` stream, type ``user_change``; record id = user id, version = the request
    network's count of that user's own changes. What the user changed of their own account
    there, to be applied by the authority: ``base_version`` is the authority's version of
    the user the change was made on (an admin's password reset after it wins). A password
    travels as its bcrypt hash only."""

    base_version: Annotated[StrictInt, Field(ge=1)]
    changed_at: Timestamp
    password_hash: Annotated[StrictStr | None, Field(repr=False)] = None
    display_name: DisplayName | None = None
    email: Email | None = None
    notification_preferences: NotificationPreferences | None = None

    @field_validator("password_hash")
    @classmethod
    def _bcrypt_only(cls, value: str | None) -> str | None:
        return None if value is None else _bcrypt_only(value)


FieldKind = Literal["text", "keyword", "integer", "float", "date", "boolean"]
FieldName = Annotated[StrictStr, Field(pattern=r"^[A-Za-z_@][A-Za-z0-9_.@-]{0,127}$")]


class ProfileTypeData(_Data):
    """``profile_types`` stream, type ``profile_type``; record id = name."""

    name: ProfileTypeName
    index: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9._*-]{0,254}$")]
    fields: Annotated[dict[FieldName, FieldKind], Field(min_length=1)]
    return_fields: list[StrictStr]
    max_size: Annotated[StrictInt, Field(ge=1, le=10_000)]
    rate_limits: RateLimits

    @model_validator(mode="after")
    def _return_fields_known(self) -> ProfileTypeData:
        unknown = [name for name in self.return_fields if name not in self.fields]
        if unknown:
            raise ValueError(f"return_fields not in fields: {', '.join(unknown)}")
        return self


class SettingData(_Data):
    """``settings`` stream, type ``setting``; record id = key."""

    key: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_.-]{0,127}$")]
    value: JsonValue


class AckData(_Data):
    """Type ``ack`` (allowed on every stream): what the sender has received of ``stream``."""

    stream: Literal["requests", "results", "users", "settings", "profile_types", "acks"]
    through_seq: NonNegativeInt
    missing: Annotated[list[Annotated[StrictInt, Field(ge=1)]], Field(max_length=10_000)]
    rejected: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=300)]], Field(max_length=10_000)
    ]

    @field_validator("missing")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("sequence numbers must be unique")
        return value


RECORD_MODELS: dict[str, type[BaseModel]] = {
    "request": RequestData,
    "result": ResultData,
    "user": UserData,
    "user_change": UserChangeData,
    "profile_type": ProfileTypeData,
    "setting": SettingData,
    ACK_TYPE: AckData,
}


# exactly the strings with str(uuid.UUID(s)) == s: lower-case, hyphenated, ASCII hex
_CANONICAL_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _id_problems(record_type: str, record_id: str, data: BaseModel) -> list[str]:
    if record_type in _UUID_ID_TYPES:
        if _CANONICAL_UUID_RE.fullmatch(record_id) is None:
            return [f"{record_type} id must be a lower-case request UUID"]
        return []
    if isinstance(data, ProfileTypeData) and record_id != data.name:
        return ["profile_type id must equal data.name"]
    if isinstance(data, SettingData) and record_id != data.key:
        return ["setting id must equal data.key"]
    return []


def _format_errors(record_type: str, error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"])
        where = f"data.{where}" if where else "data"
        problems.append(f"{record_type} {where}: {item['msg']}")
    if len(problems) > _MAX_ERRORS_PER_RECORD:
        extra = len(problems) - _MAX_ERRORS_PER_RECORD
        problems = problems[:_MAX_ERRORS_PER_RECORD] + [f"{record_type}: {extra} more problems"]
    return problems


def validate_record(stream: str, record: RecordLike) -> list[str]:
    """Problems with ``record`` arriving on ``stream``; an empty list means it is fine."""
    allowed = RECORD_TYPES_BY_STREAM.get(stream)
    if allowed is None:
        return [f"unknown stream {stream!r}"]
    record_type = record.type
    if record_type != ACK_TYPE and record_type not in allowed:
        return [f"record type {record_type!r} is not allowed on stream {stream!r}"]
    record_id = record.id
    if not isinstance(record_id, str) or not record_id:
        return [f"{record_type} id must be a non-empty string"]
    data = record.data
    if not isinstance(data, dict):
        return [f"{record_type} data must be a JSON object"]
    try:
        # what RECORD_MODELS[record_type].model_validate(data) runs, minus a layer of calls
        parsed = RECORD_MODELS[record_type].__pydantic_validator__.validate_python(data)
    except ValidationError as error:
        return _format_errors(record_type, error)
    return _id_problems(record_type, record_id, parsed)
