"""The response cache's statistics: what it holds now, and its hits and misses.

Every API process adds to the same counters in Redis (`resp:stats`, since counting began,
and the hour buckets `resp:stats:h:<YYYYMMDDHH>`; key layout:
`request_network.services.response_cache`). `stats` is the cache's own admin report (it
scans the entries, and is audited); `hit_ratio` is the part of it the network's statistics
show, read in one round trip.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis import Redis, RedisError
from sqlalchemy.orm import Session

from request_network.models import AuditLog
from request_network.services import response_cache as rc
from request_network.services.response_cache_upkeep import (
    cached_ids,
    iso,
    read_entries,
    unavailable,
)
from shared.audit import record

LARGEST = 10
HOURS = 24
EVICTION_REASONS = (
    "ttl",
    "memory",
    "expired",
    "oversized",
    "orphaned",
    "stale",
    "invalidated",
    "cleared",
)


def _ratio(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None


def _counts(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items() if v.isdigit()}


def _hits(
    totals: dict[str, int], this_hour: dict[str, int], hour_before: dict[str, int], now: float
) -> dict[str, Any]:
    """Hits, misses and their ratio since counting began and over the last hour: this hour's
    bucket and the share of the one before still inside the last 60 minutes."""
    share = 1 - (now % 3600) / 3600
    last = {
        k: round(this_hour.get(k, 0) + share * hour_before.get(k, 0))
        for k in ("hits", "misses", "bytes")
    }
    hits, misses = totals.get("hits", 0), totals.get("misses", 0)
    return {
        "since": iso(totals.get("since")),
        "total": {"hits": hits, "misses": misses, "hit_ratio": _ratio(hits, misses)},
        "last_hour": {
            "hits": last["hits"],
            "misses": last["misses"],
            "hit_ratio": _ratio(last["hits"], last["misses"]),
            "bytes_served": last["bytes"],
        },
    }


def hit_ratio(cache: Redis, now: float | None = None) -> dict[str, Any]:
    """Hits, misses and hit ratio since counting began and over the last hour, counted as
    `stats` counts them, without its scan of the entries and not audited (one pipelined
    round trip). Raises `RedisError` when Redis cannot answer."""
    now = time.time() if now is None else now
    hour_start = now - now % 3600
    pipe = cache.pipeline(transaction=False)
    pipe.hgetall(rc.STATS)
    pipe.hgetall(rc.hour_key(hour_start))
    pipe.hgetall(rc.hour_key(hour_start - 3600))
    totals, this_hour, hour_before = (_counts(raw) for raw in pipe.execute())
    return _hits(totals, this_hour, hour_before, now)


def stats(cache: Redis, *, session: Session, actor: str, policy: rc.Policy) -> dict[str, Any]:
    """Entries and bytes now, the largest entries, hits and misses since counting began and
    over the last hour (summed over every API process), evictions by reason; audited."""
    try:
        report = _stats(cache, policy, time.time())
    except RedisError as exc:
        raise unavailable(exc) from exc
    detail = {"entries": report["entries"], "bytes": report["bytes"]}
    record(session, AuditLog, actor=actor, action="cache.stats", target="responses", detail=detail)
    return report


def _stats(cache: Redis, policy: rc.Policy, now: float) -> dict[str, Any]:
    bodies, metas = cached_ids(cache)
    entries = read_entries(cache, sorted(bodies & metas))
    hour_start = now - now % 3600
    hours = [hour_start - 3600 * k for k in range(HOURS)]
    pipe = cache.pipeline(transaction=False)
    pipe.hgetall(rc.STATS)
    pipe.zcount(rc.INDEX, "-inf", now)
    for h in hours:
        pipe.hgetall(rc.hour_key(h))
    totals_raw, pending_ttl, *buckets_raw = pipe.execute()
    totals = _counts(totals_raw)
    buckets = [_counts(b) for b in buckets_raw]
    hits = _hits(totals, buckets[0], buckets[1], now)
    evictions = {r: totals.get(f"evicted_{r}", 0) for r in EVICTION_REASONS}
    evictions["ttl"] += pending_ttl  # gone by TTL, not yet counted by maintenance
    largest = sorted(entries, key=lambda e: (-e.size, e.request_id))[:LARGEST]
    last_run = totals_raw.get(b"last_optimize")
    return {
        "entries": len(entries),
        "bytes": sum(e.size for e in entries),
        "ttl_seconds": policy.ttl,
        "max_entry_bytes": policy.max_bytes,
        "since": hits["since"],
        "total": {
            **hits["total"],
            "bytes_served": totals.get("bytes", 0),
            "not_modified": totals.get("not_modified", 0),
            "fills": totals.get("fills", 0),
            "not_cached_oversize": totals.get("not_cached_oversize", 0),
        },
        "last_hour": hits["last_hour"],
        "hours": [
            {
                "hour": iso(h),
                "hits": b.get("hits", 0),
                "misses": b.get("misses", 0),
                "bytes_served": b.get("bytes", 0),
            }
            for h, b in zip(hours, buckets, strict=True)
        ],
        "evictions": evictions,
        "largest": [
            {
                "request_id": e.request_id,
                "user_id": e.user_id,
                "bytes": e.size,
                "ttl_seconds": e.ttl,
                "cached_at": iso(e.at),
            }
            for e in largest
        ],
        "last_maintenance": orjson.loads(last_run) if last_run else None,
    }
