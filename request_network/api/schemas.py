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
    version: str = ""  # the installed Ferry's


# Rate limits --------------------------------------------------------------------------


class RateLimitWindow(BaseModel):
    """One window: the limit, where it came from, the sliding count and what comes next."""

    window: Literal["minute", "hour", "day"]
    window_seconds: int
    limit: int
    source: Literal["override", "user", "by_role", "profile_type", "none"] = Field(
        description="an admin's override, the user's own limits, the governed default of the "
        "user's profile type and role (rate_limits.by_role), the profile type's, or none"
    )
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
    key_id: str | None = Field(default=None, description="The API key used (null: a login).")


class RateLimitViolationPage(BaseModel):
    items: list[RateLimitViolationOut]
    total: int
    limit: int
    offset: int


# Response cache (admin) ---------------------------------------------------------------


class CacheCounts(BaseModel):
    hits: int
    misses: int
    hit_ratio: float | None = Field(description="hits ÷ (hits + misses); null before any read")
    bytes_served: int = Field(description="bytes of bodies sent from the cache")


class CacheTotals(CacheCounts):
    not_modified: int = Field(description="hits answered 304 (If-None-Match)")
    fills: int = Field(description="entries stored (first reads and pre-warming)")
    not_cached_oversize: int = Field(description="responses served but too large to cache")


class CacheHour(BaseModel):
    hour: datetime
    hits: int
    misses: int
    bytes_served: int


class CacheEntryOut(BaseModel):
    request_id: str
    user_id: str
    bytes: int
    ttl_seconds: int
    cached_at: datetime | None


class CacheEvictions(BaseModel):
    """Entries dropped since counting began, by why."""

    ttl: int = Field(description="expired by their TTL")
    memory: int = Field(description="evicted by Redis before their TTL (maxmemory)")
    expired: int = Field(description="older than the TTL now set (maintenance)")
    oversized: int = Field(description="over the size cap now set (maintenance)")
    orphaned: int = Field(description="request gone or user inactive (maintenance)")
    stale: int = Field(description="another version of the response is stored (maintenance)")
    invalidated: int = Field(description="a newer response, a disabled user, a cancel")
    cleared: int = Field(description="removed by an admin")


class CacheMaintenance(BaseModel):
    """What one maintenance run (the hourly task or an admin's optimize) did."""

    at: datetime
    reconciled: dict[str, int] = Field(description="entries Redis had dropped, counted now")
    dropped: dict[str, int] = Field(description="entries dropped, by reason")
    dropped_bytes: int
    prewarmed: int = Field(description="responses read recently, evicted, cached again")
    entries: int
    bytes: int
    took_ms: float


class CacheStats(BaseModel):
    entries: int
    bytes: int
    ttl_seconds: int
    max_entry_bytes: int
    since: datetime | None = Field(description="when counting began")
    total: CacheTotals
    last_hour: CacheCounts = Field(
        description="this hour's counts plus the share of the last hour's still in the past "
        "60 minutes (summed over every API process)"
    )
    hours: list[CacheHour] = Field(description="the last 24 hour buckets, newest first")
    evictions: CacheEvictions
    largest: list[CacheEntryOut]
    last_maintenance: CacheMaintenance | None


class CacheCleared(BaseModel):
    scope: Literal["all", "user", "request"]
    target: str
    entries: int = Field(description="entries removed")
    bytes: int = Field(description="bytes of the bodies removed")
