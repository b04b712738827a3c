"""Admin: what the request network has been doing, read from its tables and its Redis."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from request_network.api.deps import AdminDep
from request_network.services import stats
from shared.admin_schemas import BatchDays

router = APIRouter(tags=["admin-stats"])


class HourCount(BaseModel):
    hour: str = Field(description="UTC hour, e.g. 2026-12-05T10:00:00Z")
    count: int


class Turnaround(BaseModel):
    days: int
    responses: int
    p50_seconds: float | None = Field(description="Submit to response available")
    p95_seconds: float | None


class DecisionCounts(BaseModel):
    ok: int = Field(description="Allowed plainly")
    soft: int = Field(description="Allowed with a soft warning")
    grace: int = Field(description="Allowed in a grace period")
    blocked: int = Field(description="Refused (429)")


class RateLimitDecisions(BaseModel):
    last_hour: DecisionCounts
    last_24h: DecisionCounts


class HitCounts(BaseModel):
    hits: int
    misses: int
    hit_ratio: float | None = Field(description="hits ÷ (hits + misses); null before any read")


class CacheHitRatio(BaseModel):
    since: datetime | None = Field(description="When the cache began counting")
    total: HitCounts
    last_hour: HitCounts


class RequestNetworkStats(BaseModel):
    at: datetime
    requests_by_status: dict[str, int]
    submissions_per_hour: list[HourCount] = Field(description="The last 24 hours, oldest first")
    turnaround: Turnaround
    batches: BatchDays = Field(description="The last 14 days, oldest first")
    rate_limit_refusals_24h: dict[str, int] = Field(description="Refused submissions by window")
    rate_limit_decisions: RateLimitDecisions | None = Field(
        description="Submissions checked by the rate limiter, by decision (summed over every "
        "API process); null while Redis cannot be reached"
    )
    response_cache: CacheHitRatio | None = Field(
        description="The response cache's hits and misses (as GET /api/v1/admin/cache/stats "
        "counts them); null while Redis cannot be reached"
    )


@router.get("/api/v1/admin/stats", response_model=RequestNetworkStats, response_model_by_alias=True)
def admin_stats(caller: AdminDep) -> dict:
    with caller.reads() as unit:
        return stats.stats(session=unit.session, cache=caller.cache)
