"""Admin: the response cache — its statistics, clearing it, maintaining it (each audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from request_network.api.deps import AdminDep
from request_network.api.schemas import CacheCleared, CacheMaintenance, CacheStats
from request_network.services import response_cache_stats
from request_network.services import response_cache_upkeep as upkeep
from request_network.services.response_cache import Policy
from shared.validation import RequestId, UserId

router = APIRouter(tags=["admin-cache"])

_UNAVAILABLE = {503: {"description": "Redis cannot be reached"}}


@router.get("/api/v1/admin/cache/stats", response_model=CacheStats, responses=_UNAVAILABLE)
def cache_stats(caller: AdminDep) -> CacheStats:
    """Entries and bytes now, the largest entries, hits, misses and hit ratio since counting
    began and over the last hour, evictions by reason, and the last maintenance run."""
    with caller.unit() as unit:
        report = response_cache_stats.stats(
            caller.cache,
            session=unit.session,
            actor=unit.user.id,
            policy=Policy.of(caller.settings, session=unit.session),
        )
    return CacheStats.model_validate(report)


@router.delete(
    "/api/v1/admin/cache",
    response_model=CacheCleared,
    responses=_UNAVAILABLE,
)
def clear_cache(
    caller: AdminDep,
    user_id: Annotated[UserId | None, Query(description="only this user's entries")] = None,
    request_id: Annotated[RequestId | None, Query(description="only this request's entry")] = None,
) -> CacheCleared:
    """Remove every cached response, or one user's, or one request's (given both: that
    request's if it is that user's); says what went."""
    with caller.unit() as unit:
        out = upkeep.clear(
            caller.cache,
            session=unit.session,
            actor=unit.user.id,
            user_id=user_id,
            request_id=request_id,
        )
    return CacheCleared.model_validate(out)


@router.post(
    "/api/v1/admin/cache/optimize", response_model=CacheMaintenance, responses=_UNAVAILABLE
)
def optimize_cache(caller: AdminDep) -> CacheMaintenance:
    """What the hourly `cache_maintenance` task does, now: count what Redis dropped, drop
    expired, oversized, orphaned and stale entries, pre-warm responses read recently."""
    settings = caller.settings
    with caller.unit() as unit:
        report = upkeep.optimize(
            caller.cache,
            session=unit.session,
            policy=Policy.of(settings, session=unit.session),
            prewarm_seconds=settings.response_cache_prewarm_seconds,
            prewarm_max=settings.response_cache_prewarm_max,
            actor=unit.user.id,
        )
    return CacheMaintenance.model_validate(report)
