"""Looking after the response cache: clearing and maintenance (its statistics:
`request_network.services.response_cache_stats`).

The admin routes (`request_network.api.admin_cache`, each audited) and the hourly
`cache_maintenance` task call these. Keys are found with SCAN (never KEYS) and read in
pipelines; the key layout is `request_network.services.response_cache`'s.

Maintenance (`optimize`):

1. counts what Redis dropped on its own: an indexed entry gone after its expiry went by
   TTL, one gone before it was evicted by Redis (memory);
2. drops entries that are *expired* (older than the TTL now set, or without a TTL),
   *oversized* (over the size cap now set), *orphaned* (the request is gone or its user
   inactive) or *stale* (another version of the response is in the database);
3. pre-warms: responses read within `response_cache_prewarm_seconds` whose entry is gone
   are read from the database and cached again (at most `response_cache_prewarm_max`);
   only responses whose first read is noted, since a hit never notes one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import Redis, RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from request_network.models import AuditLog, Request, Response, User
from request_network.services import response_cache as rc
from shared.audit import record
from shared.problems import Problem

SCAN_COUNT = 1000
DB_CHUNK = 1000
_UUID_LEN = 36


def unavailable(exc: RedisError) -> Problem:
    return Problem(
        503,
        "Response cache unavailable",
        f"Redis cannot be reached: {type(exc).__name__}",
        headers={"Retry-After": "5"},
    )


@dataclass(frozen=True)
class Entry:
    request_id: str
    user_id: str
    size: int
    version: int
    at: int  # when it was filled (epoch seconds)
    ttl: int  # seconds left (-1: none)


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def as_int(value: Any) -> int:
    return int(value) if value is not None else 0


def _scan(cache: Redis, match: str) -> Iterator[list[str]]:
    """The keys matching `match`, a SCAN page at a time (decoded)."""
    cursor = 0
    while True:
        cursor, keys = cache.scan(cursor, match=match, count=SCAN_COUNT)
        if keys:
            yield [k.decode() for k in keys]
        if cursor == 0:
            return


def cached_ids(cache: Redis) -> tuple[set[str], set[str]]:
    """(ids with a body key, ids with a meta key): every entry Redis holds, whole or not."""
    bodies: set[str] = set()
    metas: set[str] = set()
    for page in _scan(cache, rc.PREFIX + "*"):
        for key in page:
            rest = key[len(rc.PREFIX) :]
            if len(rest) == _UUID_LEN and ":" not in rest:
                bodies.add(rest)
            elif rest.startswith("meta:"):
                metas.add(rest[len("meta:") :])
    return bodies, metas


def read_entries(cache: Redis, ids: list[str]) -> list[Entry]:
    """The entries of `ids` whose meta and body both exist."""
    found = []
    for start in range(0, len(ids), SCAN_COUNT):
        chunk = ids[start : start + SCAN_COUNT]
        pipe = cache.pipeline(transaction=False)
        for rid in chunk:
            pipe.hmget(rc.meta_key(rid), "user", "size", "version", "at")
            pipe.ttl(rc.body_key(rid))
        replies = pipe.execute()
        for rid, meta, ttl in zip(chunk, replies[::2], replies[1::2], strict=True):
            user, size, version, at = meta
            if user is None or ttl == -2:
                continue  # gone meanwhile, or half an entry
            found.append(Entry(rid, user.decode(), as_int(size), as_int(version), as_int(at), ttl))
    return found


# -- clearing --------------------------------------------------------------------------------


def clear(
    cache: Redis,
    *,
    session: Session,
    actor: str,
    user_id: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Drop every entry, a user's, or one request's (with both: that request's, if it is
    that user's); audited. Returns what went."""
    scope = "request" if request_id else "user" if user_id else "all"
    try:
        if request_id is not None:
            owner = cache.hget(rc.meta_key(request_id), "user")
            mine = user_id is None or (owner is not None and owner.decode() == user_id)
            ids = [request_id] if mine else []
        elif user_id is not None:
            ids = rc.user_entries(cache, user_id)
        else:
            bodies, metas = cached_ids(cache)
            indexed = {m.decode() for m in cache.zrange(rc.INDEX, 0, -1)}
            ids = sorted(bodies | metas | indexed)
        entries, size = rc.drop(cache, ids, reason="cleared")
        if user_id is not None and request_id is None:
            cache.delete(rc.user_key(user_id))
        elif request_id is None:
            for page in _scan(cache, rc.user_key("*")):
                cache.delete(*page)
    except RedisError as exc:
        raise unavailable(exc) from exc
    target = request_id or user_id or "all"
    out = {"scope": scope, "target": target, "entries": entries, "bytes": size}
    record(session, AuditLog, actor=actor, action="cache.cleared", target=target, detail=out)
    return out


# -- maintenance -----------------------------------------------------------------------------


def optimize(
    cache: Redis,
    *,
    session: Session,
    policy: rc.Policy,
    prewarm_seconds: int,
    prewarm_max: int,
    actor: str | None = None,
) -> dict[str, Any]:
    """Count what Redis dropped, drop what should not stay, pre-warm what was read recently;
    the report is kept for the statistics and, with an `actor`, audited."""
    started = time.monotonic()
    now = time.time()
    try:
        report = _optimize(cache, session, policy, now, prewarm_seconds, prewarm_max)
        report["took_ms"] = round((time.monotonic() - started) * 1000, 1)
        cache.hset(rc.STATS, "last_optimize", orjson.dumps(report))
    except RedisError as exc:
        raise unavailable(exc) from exc
    if actor is not None:
        record(
            session,
            AuditLog,
            actor=actor,
            action="cache.optimized",
            target="responses",
            detail={k: report[k] for k in ("reconciled", "dropped", "prewarmed")},
        )
    return report


def _optimize(
    cache: Redis, session: Session, policy: rc.Policy, now: float, window: int, most: int
) -> dict[str, Any]:
    reconciled = _reconcile_index(cache, now)
    bodies, metas = cached_ids(cache)
    reasons: dict[str, str] = {rid: "stale" for rid in bodies - metas}  # no meta: not ours
    reasons |= {rid: "memory" for rid in metas - bodies}  # its body evicted by Redis
    entries = read_entries(cache, sorted(bodies & metas))
    for e in entries:
        if e.ttl == -1 or e.at + policy.ttl < now:
            reasons[e.request_id] = "expired"
        elif e.size > policy.max_bytes:
            reasons[e.request_id] = "oversized"
    checked = [e for e in entries if e.request_id not in reasons]
    reasons |= _judge_in_database(session, checked)
    dropped: Counter[str] = Counter()
    dropped_bytes = 0
    for reason in sorted(set(reasons.values())):
        n, size = rc.drop(cache, [r for r, why in reasons.items() if why == reason], reason=reason)
        dropped[reason] += n
        dropped_bytes += size
    live = {e.request_id for e in entries} - set(reasons)
    prewarmed, warmed_bytes = _prewarm(cache, session, policy, now, window, most, live)
    kept = [e for e in entries if e.request_id in live]
    return {
        "at": iso(now),
        "reconciled": reconciled,
        "dropped": {r: dropped[r] for r in ("expired", "oversized", "orphaned", "stale", "memory")},
        "dropped_bytes": dropped_bytes,
        "prewarmed": prewarmed,
        "entries": len(kept) + prewarmed,
        "bytes": sum(e.size for e in kept) + warmed_bytes,
    }


def _reconcile_index(cache: Redis, now: float) -> dict[str, int]:
    """Indexed entries that are gone: by TTL (past their expiry) or evicted by Redis."""
    gone = {"ttl": [], "memory": []}
    start = 0
    while True:
        page = cache.zrange(rc.INDEX, start, start + SCAN_COUNT - 1, withscores=True)
        if not page:
            break
        pipe = cache.pipeline(transaction=False)
        for member, _ in page:
            pipe.exists(rc.body_key(member.decode()))
        for (member, expiry), present in zip(page, pipe.execute(), strict=True):
            if not present:
                gone["ttl" if expiry <= now else "memory"].append(member.decode())
        start += SCAN_COUNT
    out = {}
    for reason, ids in gone.items():
        out[reason] = len(ids)
        if ids:
            cache.zrem(rc.INDEX, *ids)
            cache.hincrby(rc.STATS, f"evicted_{reason}", len(ids))
            cache.delete(*(rc.meta_key(rid) for rid in ids))
    return out


def _judge_in_database(session: Session, entries: list[Entry]) -> dict[str, str]:
    """Orphaned (request gone, user inactive) and stale (another version) entries."""
    reasons = {}
    for start in range(0, len(entries), DB_CHUNK):
        chunk = entries[start : start + DB_CHUNK]
        rows = session.execute(
            select(Request.id, User.active, Response.received_at)
            .join(User, User.id == Request.user_id)
            .outerjoin(Response, Response.request_id == Request.id)
            .where(Request.id.in_([e.request_id for e in chunk]))
        ).all()
        found = {rid: (active, received) for rid, active, received in rows}
        for e in chunk:
            active, received = found.get(e.request_id, (False, None))
            if not active:
                reasons[e.request_id] = "orphaned"
            elif received is None or rc.version_of(received) != e.version:
                reasons[e.request_id] = "stale"
    return reasons


def _prewarm(
    cache: Redis,
    session: Session,
    policy: rc.Policy,
    now: float,
    window: int,
    most: int,
    live: set[str],
) -> tuple[int, int]:
    """Cache again the responses read within `window` seconds whose entry is gone; returns
    (entries, bytes) stored. A response never read (one that replaced what was read, e.g.
    after a retry) is left to its first read, which notes it."""
    since = now - window
    cache.zremrangebyscore(rc.READS, "-inf", f"({since}")
    if most <= 0 or window <= 0:
        return 0, 0
    recent = [m.decode() for m in cache.zrevrangebyscore(rc.READS, "+inf", since)]
    wanted = [rid for rid in recent if rid not in live][:most]
    if not wanted:
        return 0, 0
    gens = dict(zip(wanted, cache.mget([rc.gen_key(rid) for rid in wanted]), strict=True))
    filled = size = 0
    for start in range(0, len(wanted), DB_CHUNK):
        chunk = wanted[start : start + DB_CHUNK]
        rows = session.execute(
            select(Response, Request.user_id)
            .join(Request, Request.id == Response.request_id)
            .join(User, User.id == Request.user_id)
            .where(
                Response.request_id.in_(chunk),
                Response.first_read_at.is_not(None),  # a hit notes no first read
                User.active.is_(True),
            )
        ).all()
        for response, user_id in rows:
            loaded = rc.encode(response)
            if len(loaded.body) > policy.max_bytes:
                continue
            rid = response.request_id
            gen = gens[rid] or b"0"
            if rc.fill(
                cache, rid, loaded, etag=loaded.etag, user_id=user_id, policy=policy, gen=gen
            ):
                filled, size = filled + 1, size + len(loaded.body)
    return filled, size
