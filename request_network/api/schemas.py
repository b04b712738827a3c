"""What the request API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitRequest(Strict):
    profile_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    query: dict[str, Any]


class Accepted(BaseModel):
    id: str
    status: str
    links: dict[str, str]


class StatusEvent(BaseModel):
    status: str
    at: datetime
    detail: str


class RequestOut(BaseModel):
    id: str
    profile_type: str
    query: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    history: list[StatusEvent]


class RequestPage(BaseModel):
    items: list[RequestOut]
    total: int
    limit: int
    offset: int


class ResponseOut(BaseModel):
    request_id: str
    status: str
    total: int | None
    hits: list[dict[str, Any]]
    error: str | None
    executed_at: datetime
    took_ms: int | None
    received_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: str
    expires_at: datetime


class Health(BaseModel):
    status: str
    checks: dict[str, str]


# Rate limits --------------------------------------------------------------------------

MAX_RATE_LIMIT = 10_000_000
RateLimitValue = Annotated[int | None, Field(default=None, ge=0, le=MAX_RATE_LIMIT)]


class RateLimitWindow(BaseModel):
    """One window: the limit, where it came from, the sliding count and what comes next."""

    window: Literal["minute", "hour", "day"]
    window_seconds: int
    limit: int
    source: Literal["override", "user", "profile_type", "none"]
    count: int
    remaining: int
    reset: int = Field(description="seconds until the count has drained to zero")
    state: Literal["ok", "soft", "grace", "blocked"] = Field(
        description="where a request made now would fall in this window"
    )
    retry_after: int = Field(description="seconds until a request fits within the limit")
    grace_until: datetime | None = Field(description="end of the grace period now open")
    grace_reopens_at: datetime | None = Field(
        description="a new grace period cannot open before this time"
    )


class RateLimitOverrideOut(BaseModel):
    minute: int | None
    hour: int | None
    day: int | None
    reason: str
    set_by: str
    set_at: datetime


class RateLimitStatus(BaseModel):
    user_id: str
    state: Literal["ok", "soft", "grace", "blocked"]
    windows: list[RateLimitWindow]
    override: RateLimitOverrideOut | None = None


class SetRateLimits(Strict):
    """Custom limits for one user; a window left null keeps the inherited limit."""

    minute: RateLimitValue = None
    hour: RateLimitValue = None
    day: RateLimitValue = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class RateLimitViolationOut(BaseModel):
    id: int
    user_id: str
    window: str
    count: int
    limit: int
    path: str
    at: datetime


class RateLimitViolationPage(BaseModel):
    items: list[RateLimitViolationOut]
    total: int
    limit: int
    offset: int
