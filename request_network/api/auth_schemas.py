"""What the auth, API-key and account-lock routes accept and return."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.security.api_keys import SCOPES

ScopeName = Literal[tuple(SCOPES)]  # type: ignore[valid-type]


class CreateApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    scopes: list[ScopeName] = Field(min_length=1, max_length=len(SCOPES))
    expires_in_days: int = Field(default=90, ge=1, le=365)


class ApiKeySecret(BaseModel):
    which: Literal["current", "previous"] = Field(
        description="current, or previous: the secret the last rotation replaced, in its grace "
        "period"
    )
    prefix: str = Field(description="Masked: the key's public prefix, never the secret.")
    valid_until: datetime | None = Field(description="When this secret stops working.")


class ApiKeyUsage(BaseModel):
    since: date = Field(description="The first UTC day counted (30 days up to today).")
    requests: int | None = Field(
        description="Calls the key (or the user's keys) authenticated since then (null: Redis "
        "unreachable)."
    )
    requests_by_day: dict[date, int] | None = Field(
        description="Calls per UTC day, days without calls left out (null: Redis unreachable)."
    )
    refused: dict[str, int] = Field(
        description="Submissions the rate limiter refused since then, by violated window "
        "(minute, hour, day)."
    )
    last_used_at: datetime | None


class ApiKeyOut(BaseModel):
    key_id: str
    prefix: str
    name: str
    scopes: list[str]
    environment: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None = Field(description="Revoked by its owner: final.")
    rotated_at: datetime | None = Field(description="When the current secret was issued.")
    disabled_at: datetime | None = Field(description="Disabled by an admin (reversible).")
    status: Literal["active", "expired", "disabled", "revoked"]
    secrets: list[ApiKeySecret] = Field(
        description="The secrets that open the key, masked: the current one and, during a "
        "rotation's grace period, the previous one."
    )
    usage: ApiKeyUsage | None = Field(
        default=None,
        description="Use over the last 30 days (in listings; null in replies that change a key).",
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key. It is shown this once and never again.")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    usage: ApiKeyUsage = Field(description="Your keys' use over the last 30 days, summed.")


class AdminApiKeyOut(ApiKeyOut):
    user_id: str
    disabled_by: str | None = Field(description="The admin who disabled the key.")
    changed: bool = Field(description="False: the key already was in the state asked for.")


class Me(BaseModel):
    user_id: str
    username: str
    role: str
    via: Literal["jwt", "api_key"]
    scopes: list[str]
    key_id: str | None
    expires_at: datetime | None


class AccountLockOut(BaseModel):
    user_id: str
    username: str
    locked: bool
    locked_until: datetime | None
    failures: int = Field(description="Failed logins counted now (forgotten after a lockout).")
    locked_failures: int = Field(description="Failures that caused the last lock.")
    updated_at: datetime | None
    redis: Literal["ok", "unavailable"]


class AdminUserRow(BaseModel):
    id: str
    username: str
    role: str
    profile_type: str
    active: bool
    locked: bool
    has_custom_limits: bool
    updated_at: datetime
    last_login_at: datetime | None = Field(description="Last successful login (null: never).")


class AdminUserPage(BaseModel):
    items: list[AdminUserRow]
    total: int
    limit: int
    offset: int


class AdminRecentRequest(BaseModel):
    id: str
    profile_type: str
    status: str
    created_at: datetime
    updated_at: datetime
    batch_id: str | None


class AdminLimitInForce(BaseModel):
    window: str
    limit: int
    source: str = Field(
        description="Where it comes from: override, user, by_role, profile_type, none."
    )
    count: int | None = Field(description="Used in the current window (null: Redis unreachable).")
    remaining: int | None
    state: str | None = Field(description="ok, soft, grace or blocked (null: unknown).")


class AdminUserDetails(BaseModel):
    id: str
    username: str
    role: str
    profile_type: str
    active: bool
    version: int
    updated_at: datetime
    limits: list[AdminLimitInForce]
    usage_state: str | None = Field(description="The most severe window state (null: unknown).")
    api_keys: list[ApiKeyOut] = Field(description="Never the key: its public prefix only.")
    api_key_usage: ApiKeyUsage = Field(description="The user's keys' use over the last 30 days.")
    recent_requests: list[AdminRecentRequest]
    lock: AccountLockOut
    last_login_at: datetime | None = Field(description="Last successful login (null: never).")
