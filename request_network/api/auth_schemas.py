"""What the auth, API-key and account-lock routes accept and return."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.security.api_keys import SCOPES

ScopeName = Literal[tuple(SCOPES)]  # type: ignore[valid-type]


class CreateApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    scopes: list[ScopeName] = Field(min_length=1, max_length=len(SCOPES))
    expires_in_days: int = Field(default=90, ge=1, le=365)


class ApiKeyOut(BaseModel):
    key_id: str
    prefix: str
    name: str
    scopes: list[str]
    environment: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    status: Literal["active", "expired", "revoked"]


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key. It is shown this once and never again.")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]


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
    source: str = Field(description="Where it comes from: override, user, profile_type, none.")
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
    recent_requests: list[AdminRecentRequest]
    lock: AccountLockOut
