"""What the request API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.ratelimit import MAX_LIMIT
from shared.validation import json_int


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "profile_type": "articles",
                    "query": {"query": {"match": {"field": "title", "value": "ferry"}}, "size": 10},
                }
            ]
        },
    )

    profile_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    query: dict[str, Any] = Field(description="A query in Ferry's query spec (shared/query_spec)")


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


# `shared.records.RateLimitValue`'s bounds, as JSON numbers (12944.0 is the integer 12944).
ApiRateLimit = json_int(0, MAX_LIMIT)


class SetRateLimits(Strict):
    """Custom limits for one user; a window left null keeps the inherited limit.

    A window's limit has the bounds of `shared.records.RateLimitValue`, the type a replicated
    user's own limits take: an integer from 0 to the limiter's bound
    `shared.ratelimit.MAX_LIMIT`, which the OpenAPI schema shows (a JSON number with no
    fraction, like 100.0, is that integer; a string or boolean is refused).
    """

    minute: ApiRateLimit | None = None
    hour: ApiRateLimit | None = None
    day: ApiRateLimit | None = None
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
