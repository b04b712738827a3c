"""Governed settings (DESIGN.md §9): the keys the response network sets for both networks.

The response network is their authority: an admin sets a key there, it travels as a
`setting` record on the `settings` stream and applies on the request network without a
restart. Each key has a type, a default, bounds and a description, and validates a value
(`GovernedKey.validate`). A key the authority has not set (or has set back to null) takes
the deployment's own setting where there is one (`environment`: the field of the network's
settings class), else its default: `resolve` says which, per key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)

from shared.records import ProfileTypeName, RateLimitOverrides
from shared.validation import INT32_MAX, json_int

__all__ = [
    "KEY_PATTERN",
    "REGISTRY",
    "GovernedKey",
    "GovernedValues",
    "InForce",
    "InvalidSettings",
    "governed_values",
    "lookup",
    "resolve",
    "safe_text",
    "validate_values",
]

log = logging.getLogger("ferry.governed")

#: What a key looks like (the `setting` record's id, `shared.records.SettingData.key`).
KEY_PATTERN = r"^[a-z][a-z0-9_.-]{0,127}$"
MIB = 1024 * 1024

GOVERNED, ENVIRONMENT, DEFAULT = "governed", "environment", "default"


def _json_number(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("expected a number")
    return value


def _number(**bounds: float) -> Any:
    """A JSON number within bounds (an integer counts; true or "0.5" do not; never NaN)."""
    return Annotated[float, Field(allow_inf_nan=False, **bounds), BeforeValidator(_json_number)]


Role = Literal["user", "operator", "admin"]
#: {profile type: {role: {minute, hour, day}}}: each limit 0..MAX_LIMIT, a window left out
#: falls through to the profile type's own limit.
ByRole = dict[ProfileTypeName, dict[Role, RateLimitOverrides]]


class InvalidSettings(ValueError):
    """Values refused, each naming its key: ``errors`` is [(key, why)]."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{key}: {why}" for key, why in errors))

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.errors]


def safe_text(text: str, limit: int = 80) -> str:
    """Text from a caller as it may be echoed in a reply or a log line: encodable (a lone
    surrogate becomes its escape) and bounded."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class GovernedKey:
    """One governed key: its type, default, bounds, description, and the deployment setting
    that stands in for it until the authority sets it (`environment`)."""

    key: str
    type: Literal["number", "integer", "object"]
    default: Any
    description: str
    annotation: Any = field(repr=False, compare=False)
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    environment: str | None = None

    @cached_property
    def _adapter(self) -> TypeAdapter:
        return TypeAdapter(self.annotation)

    def validate(self, value: Any) -> Any:
        """The value in its stored (JSON) form, or `InvalidSettings` naming this key."""
        try:
            parsed = self._adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidSettings([(self.key, _why(exc))]) from None
        return self._adapter.dump_python(parsed, mode="json", exclude_none=True)

    def bounds(self) -> dict[str, Any]:
        return {
            "minimum": self.minimum,
            "maximum": self.maximum,
            "exclusive_minimum": self.exclusive_minimum,
        }

    def environment_value(self, settings: Any) -> Any:
        """The deployment's own setting standing in for this key (None: it has none)."""
        if self.environment is None:
            return None
        return getattr(settings, self.environment, None)


def _why(exc: ValidationError) -> str:
    problems = []
    for item in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(safe_text(str(part), 64) for part in item["loc"])
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(problems)


def _key(
    key: str,
    kind: Literal["number", "integer", "object"],
    default: Any,
    description: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    environment: str | None = None,
) -> GovernedKey:
    if kind == "integer":
        assert minimum is not None and maximum is not None
        annotation: Any = json_int(int(minimum), int(maximum))
    elif kind == "number":
        low = {"gt": minimum} if exclusive_minimum else {"ge": minimum}
        annotation = _number(**low, le=maximum)
    else:
        annotation = ByRole
    return GovernedKey(
        key=key,
        type=kind,
        default=default,
        description=description,
        annotation=annotation,
        minimum=minimum,
        maximum=maximum,
        exclusive_minimum=exclusive_minimum,
        environment=environment,
    )


_KEYS = (
    _key(
        "rate_limits.soft_ratio",
        "number",
        0.8,
        "Share of a window's limit past which a request is allowed with a soft warning.",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        environment="rate_limit_soft_ratio",
    ),
    _key(
        "rate_limits.grace_ratio",
        "number",
        1.1,
        "Multiple of a window's limit a user may reach inside a grace period.",
        minimum=1,
        maximum=10,
        environment="rate_limit_grace_ratio",
    ),
    _key(
        "rate_limits.grace_seconds",
        "integer",
        300,
        "Length of a grace period in seconds (never longer than the window; 0: no grace).",
        minimum=0,
        maximum=86_400,
        environment="rate_limit_grace_seconds",
    ),
    _key(
        "rate_limits.by_role",
        "object",
        {},
        "Default limits per profile type and role, {profile_type: {role: {minute, hour, "
        "day}}}: they apply to a user without limits of their own, over the profile type's "
        "limits (a window left out keeps the profile type's).",
    ),
    _key(
        "response_cache.ttl_seconds",
        "integer",
        3600,
        "How long a cached response lives, in seconds.",
        minimum=1,
        maximum=604_800,
        environment="response_cache_ttl_seconds",
    ),
    _key(
        "response_cache.max_bytes",
        "integer",
        MIB,
        "The largest response kept in the cache, in bytes (larger ones are served, not cached).",
        minimum=0,
        maximum=64 * MIB,
        environment="response_cache_max_bytes",
    ),
    _key(
        "requests.expiry_hours",
        "integer",
        168,
        "Hours a request may wait for its answer after it was (last) sent before it expires.",
        minimum=1,
        maximum=8760,
        environment="request_expiry_hours",
    ),
    _key(
        "retention.task_history_days",
        "integer",
        14,
        "Days of task runs kept.",
        minimum=1,
        maximum=3650,
        environment="task_history_days",
    ),
    _key(
        "retention.health_history_days",
        "integer",
        7,
        "Days of health samples kept.",
        minimum=1,
        maximum=3650,
        environment="health_history_days",
    ),
    _key(
        "notifications.unacked_batch_hours",
        "number",
        24,
        "Notify when a sent batch is unacknowledged this many hours.",
        minimum=0,
        maximum=8760,
        exclusive_minimum=True,
    ),
    _key(
        "notifications.quarantine_count",
        "integer",
        1,
        "Notify when this many batches are in quarantine.",
        minimum=1,
        maximum=INT32_MAX,
    ),
    _key(
        "notifications.escalation_minutes",
        "integer",
        30,
        "An alert nobody has acknowledged for this many minutes goes to the next level.",
        minimum=1,
        maximum=10_080,
        environment="notification_escalation_minutes",
    ),
    _key(
        "notifications.queue_depth",
        "integer",
        1000,
        "Notify when a task queue holds this many messages.",
        minimum=1,
        maximum=INT32_MAX,
    ),
)
REGISTRY: dict[str, GovernedKey] = {k.key: k for k in _KEYS}


def _values_model() -> type[BaseModel]:
    """The edge's model of `{key: value}`: every key optional (null: back to the default),
    typed and bounded as the registry says, any other key refused; its JSON schema documents
    each key (an API's `PUT /api/v1/admin/settings` body)."""
    fields: dict[str, Any] = {
        entry.key.replace(".", "__"): (
            Optional[entry.annotation],  # noqa: UP045 - the annotation is built at runtime
            Field(default=None, alias=entry.key, description=entry.description),
        )
        for entry in _KEYS
    }
    return create_model(  # type: ignore[call-overload]
        "GovernedValues", __config__=ConfigDict(extra="forbid"), **fields
    )


#: `{key: value}` as an API takes it: `GovernedValues.model_validate(...)`, then
#: `.model_dump(mode="json", by_alias=True, exclude_unset=True)` for `validate_values`.
GovernedValues = _values_model()


def lookup(key: str) -> GovernedKey:
    """The registry entry of `key`, or `InvalidSettings` for a key it does not know."""
    entry = REGISTRY.get(key)
    if entry is None:
        raise InvalidSettings([(safe_text(key), "not a governed setting")])
    return entry


def validate_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every value in its stored form (None stays None: back to the default), or one
    `InvalidSettings` naming every key refused."""
    out: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for key, value in values.items():
        try:
            out[key] = None if value is None else lookup(key).validate(value)
        except InvalidSettings as exc:
            errors += exc.errors
    if errors:
        raise InvalidSettings(errors)
    return out


def governed_values(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The stored values this code can apply: known keys, not null, valid now. A value that
    no longer validates (bounds tightened by an upgrade) is skipped, with a warning."""
    out = {}
    for key, value in stored.items():
        entry = REGISTRY.get(key)
        if entry is None or value is None:
            continue
        try:
            out[key] = entry.validate(value)
        except InvalidSettings as exc:
            log.warning("governed setting %s ignored: %s", key, exc)
    return out


@dataclass(frozen=True)
class InForce:
    """Every key's value in force and where it came from (governed, environment, default)."""

    values: dict[str, Any]
    sources: dict[str, str]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def resolve(governed: Mapping[str, Any], settings: Any) -> InForce:
    """The value in force of every key: the governed one (from `governed_values`), else the
    deployment's setting, else the default."""
    values, sources = {}, {}
    for key, entry in REGISTRY.items():
        if key in governed:
            values[key], sources[key] = governed[key], GOVERNED
            continue
        environment = entry.environment_value(settings)
        if environment is not None:
            values[key], sources[key] = environment, ENVIRONMENT
        else:
            values[key], sources[key] = entry.default, DEFAULT
    return InForce(values, sources)
