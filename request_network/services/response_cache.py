"""The response cache: a user's response read from Redis after its first read.

An entry is keyed by request id and carries its owner: a read asks the cache first, and a
hit (`lookup`) is one round trip that is also the ownership check, served only to the user
the entry was stored for. Anything else (no entry, another user's, Redis down) goes to the
database, which checks the owner (a 404 for anyone else) before it reads the response and
fills the cache (`requests.get_response`). Each entry is two keys with one TTL:

- ``resp:<id>``: the response's JSON, the exact bytes every reply sends (a hit sends them
  as they are: no decoding, no validation);
- ``resp:meta:<id>``: a hash of its strong ETag (a digest of those bytes), owner, version
  (the response's ``received_at`` in microseconds), size and fill time.

Alongside: ``resp:user:<user id>`` (the ids cached for a user, so a disabled user's entries
can go), ``resp:index`` (id → expiry, so entries dropped by their TTL or by Redis are
counted), ``resp:reads`` (id → last read, for pre-warming), ``resp:stats`` and the hour
buckets ``resp:stats:h:<YYYYMMDDHH>`` (hits, misses, bytes: every API process adds to the same
counters), and per request ``resp:gen:<id>`` (a generation) and ``resp:fence:<id>``.

A refill never writes an answer older than what committed: a reader takes the generation
before it reads the database, and its fill only lands if the generation is unchanged and no
fence stands. An import that replaces a response fences its id and drops the entry *before*
its commit (so from then on nothing is cached for it), then bumps the generation, drops the
entry again and lifts the fence *after* the commit (so a reader that read the old row can no
longer store it). Between the two nobody can fill, and no hit can serve the old body once the
new one is committed.

Redis down: the database answers, a metric counts it, the user sees no error. One Redis is
assumed (not a cluster): the maintenance scripts name keys of many requests. What operators
see and do: docs/OPERATIONS.md, "Response cache".
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import Redis, RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from request_network.services import governed
from request_network.services import response_cache_scripts as scripts
from shared.metrics import (
    RESPONSE_CACHE_LOOKUPS,
    RESPONSE_CACHE_REDIS_UNAVAILABLE,
    RESPONSE_CACHE_SERVED_BYTES,
)

log = logging.getLogger("ferry.response_cache")

PREFIX = "resp:"
INDEX, READS, STATS = "resp:index", "resp:reads", "resp:stats"
GEN_TTL = 24 * 3600  # a generation outlives any refill that could have read before it moved
FENCE_TTL = 900  # a fence left by a process that died before its commit heals by itself
BUCKET_TTL = 49 * 3600  # hour buckets: the last 24 full hours stay readable
ETAG_BYTES = 16


def body_key(rid: str) -> str:
    return f"{PREFIX}{rid}"


def meta_key(rid: str) -> str:
    return f"{PREFIX}meta:{rid}"


def gen_key(rid: str) -> str:
    return f"{PREFIX}gen:{rid}"


def fence_key(rid: str) -> str:
    return f"{PREFIX}fence:{rid}"


def user_key(user_id: str) -> str:
    return f"{PREFIX}user:{user_id}"


def hour_key(moment: float) -> str:
    return f"{STATS}:h:{time.strftime('%Y%m%d%H', time.gmtime(moment))}"


@dataclass(frozen=True)
class Policy:
    """How long an entry lives and the largest body kept: the governed `response_cache.*`
    in force (else the deployment's settings `response_cache_*`)."""

    ttl: int
    max_bytes: int

    @classmethod
    def of(cls, settings: Any, *, session: Session | None = None) -> Policy:
        now = governed.in_force(settings, session=session)
        return cls(now["response_cache.ttl_seconds"], now["response_cache.max_bytes"])


@dataclass(frozen=True)
class Served:
    """What a response read sends: the body (None for a 304), its ETag, and whether the
    cache answered (`X-Cache: HIT`)."""

    body: bytes | None
    etag: str
    hit: bool

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True)
class Loaded:
    """A response read from the database, encoded once: its bytes and version."""

    body: bytes
    version: int

    @property
    def etag(self) -> str:
        return etag_of(self.body)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=ETAG_BYTES).hexdigest() + '"'


def version_of(received_at: datetime) -> int:
    """The response's version: its arrival time in microseconds (naive values are UTC)."""
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    delta = received_at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode(row: Any) -> Loaded:
    """A `Response` row as the bytes the API sends (the `ResponseOut` shape)."""
    body = {
        "request_id": row.request_id,
        "status": row.status,
        "total": row.total,
        "hits": row.hits,
        "error": row.error,
        "executed_at": row.executed_at,
        "took_ms": row.took_ms,
        "received_at": row.received_at,
    }
    options = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
    return Loaded(orjson.dumps(body, option=options), version_of(row.received_at))


def tags_of(if_none_match: str | None) -> list[str]:
    """The entity tags of an If-None-Match header (weak ones compare as strong: RFC 9110's
    weak comparison), or ``*``."""
    if not if_none_match:
        return []
    tags = []
    for part in if_none_match.split(","):
        tag = part.strip()
        tags.append(tag[2:] if tag.startswith("W/") else tag)
    return [t for t in tags if t]


# -- the read path ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """What the cache said before the database was asked: the hit to send, else the
    generation a refill must present (None: Redis could not answer, or the entry is another
    user's; either way nothing is stored)."""

    served: Served | None
    gen: bytes | None = None


def lookup(
    cache: Redis | None, rid: str, *, user_id: str, if_none_match: str | None = None
) -> Lookup:
    """The caller's cached response of request `rid`, in one round trip that is also the
    ownership check: an entry is served only to the user it was stored for (its meta's
    ``user``), so a hit needs no database read. An entry of another user is not served, and
    nothing is counted or noted; the database then decides (a 404).

    Without If-None-Match the body comes from a GET in the same MULTI/EXEC as the script; with
    it, the script sends the body itself in the rare case that no tag matched."""
    if cache is None:
        return Lookup(None)
    tags = tags_of(if_none_match)
    now = int(time.time())
    keys = [body_key(rid), meta_key(rid), gen_key(rid), STATS, hour_key(now), READS]
    args = [now, rid, BUCKET_TTL, user_id, 1 if tags else 0, *tags]
    try:
        if tags:
            reply, body = scripts.run(cache, scripts.READ, keys, args), None
        else:
            reply, body = scripts.run_then_get(cache, scripts.READ, keys, args, body_key(rid))
    except RedisError as exc:
        _unavailable("read", exc)
        return Lookup(None)
    if reply[0] == 0:
        return Lookup(None, gen=reply[1])
    if reply[0] == 3:
        return Lookup(None)
    RESPONSE_CACHE_LOOKUPS.labels("hit").inc()
    if reply[0] == 1:
        return Lookup(Served(None, reply[1].decode(), hit=True))
    body = reply[2] if len(reply) > 2 else body
    RESPONSE_CACHE_SERVED_BYTES.inc(len(body))
    return Lookup(Served(body, reply[1].decode(), hit=True))


def read_through(
    cache: Redis | None,
    rid: str,
    *,
    looked: Lookup,
    user_id: str,
    policy: Policy,
    load: Callable[[], Loaded],
    if_none_match: str | None = None,
) -> Served:
    """A read of request `rid` (whose owner the caller is) that the cache did not answer
    (`looked`): from `load` (the database), then counted as a miss and stored, in one round
    trip, if the lookup could take a generation."""
    loaded = load()
    etag = loaded.etag
    if cache is not None and looked.gen is not None:
        RESPONSE_CACHE_LOOKUPS.labels("miss").inc()
        fill(
            cache, rid, loaded, etag=etag, user_id=user_id, policy=policy, gen=looked.gen, read=True
        )
    tags = tags_of(if_none_match)
    matched = "*" in tags or etag in tags
    return Served(None if matched else loaded.body, etag, hit=False)


def fill(
    cache: Redis,
    rid: str,
    loaded: Loaded,
    *,
    etag: str,
    user_id: str,
    policy: Policy,
    gen: bytes | str,
    read: bool = False,
) -> bool:
    """Store an entry unless it is too large (counted as such), its generation moved on
    since `gen` was read (before the database read), or a fence stands; with `read`, count
    the read that missed as well. True if it was stored."""
    oversize = len(loaded.body) > policy.max_bytes
    now = int(time.time())
    keys = [body_key(rid), meta_key(rid), gen_key(rid), fence_key(rid), user_key(user_id)]
    keys += [INDEX, STATS, hour_key(now), READS]
    body = b"" if oversize else loaded.body
    args = [body, etag, user_id, loaded.version, policy.ttl, gen, now, rid, BUCKET_TTL]
    args += [int(read), int(oversize)]
    try:
        return bool(scripts.run(cache, scripts.FILL, keys, args))
    except RedisError as exc:
        _unavailable("fill", exc)
        return False


def _unavailable(step: str, exc: Exception) -> None:
    RESPONSE_CACHE_REDIS_UNAVAILABLE.labels(step).inc()
    log.warning("response cache: Redis unavailable at %s (%s)", step, exc)


# -- dropping entries ------------------------------------------------------------------------

DROP_CHUNK = 500


def drop(
    cache: Redis, request_ids: Iterable[str], *, reason: str, fence: int = 0
) -> tuple[int, int]:
    """Drop the entries of `request_ids` and move their generations on (so a refill that
    read before this cannot land); `fence` raises (1) or lowers (-1) their fences. Returns
    (entries, bytes) dropped, counted in the stats as evictions for `reason`."""
    ids = list(dict.fromkeys(request_ids))
    entries = size = 0
    for start in range(0, len(ids), DROP_CHUNK):
        chunk = ids[start : start + DROP_CHUNK]
        n, b = scripts.run(
            cache, scripts.DROP, [INDEX, STATS], [reason, fence, GEN_TTL, FENCE_TTL, *chunk]
        )
        entries, size = entries + n, size + b
    return entries, size


def invalidate(cache: Redis | None, request_ids: Iterable[str]) -> int:
    """Drop the cached responses of these requests (a newer response committed, a request
    cancelled); call it after the commit. Redis down: logged and counted, never raised.
    Returns how many entries went."""
    if cache is None:
        return 0
    try:
        return drop(cache, request_ids, reason="invalidated")[0]
    except RedisError as exc:
        _unavailable("invalidate", exc)
        return 0


def user_entries(cache: Redis, user_id: str) -> list[str]:
    return [m.decode() for m in cache.smembers(user_key(user_id))]


def invalidate_users(cache: Redis | None, user_ids: Iterable[str]) -> int:
    """Drop every cached response of these users (e.g. disabled). After the commit."""
    if cache is None:
        return 0
    dropped = 0
    try:
        for user_id in user_ids:
            dropped += drop(cache, user_entries(cache, user_id), reason="invalidated")[0]
            cache.delete(user_key(user_id))
    except RedisError as exc:
        _unavailable("invalidate", exc)
    return dropped


# -- invalidation around a commit ------------------------------------------------------------

_CLIENT, _PENDING, _FENCED = ("ferry.response_cache." + k for k in ("client", "pending", "fenced"))


def watch_commits(session: Session, cache: Redis) -> None:
    """Let `invalidate_on_commit` work in this session's transactions: ids noted during a
    transaction are fenced before its commit and invalidated after it (or unfenced after a
    rollback). The entry point that owns the transaction calls this."""
    session.info[_CLIENT] = cache
    event.listen(session, "before_commit", _before_commit)
    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_rollback", _after_rollback)


def invalidate_on_commit(
    session: Session, *, request_ids: Iterable[str] = (), user_ids: Iterable[str] = ()
) -> None:
    """Note responses (and users' cached responses) that this transaction makes stale."""
    pending = session.info.setdefault(_PENDING, {"requests": set(), "users": set()})
    pending["requests"].update(request_ids)
    pending["users"].update(user_ids)
    if _CLIENT not in session.info and (pending["requests"] or pending["users"]):
        log.debug("response cache: stale entries noted in a session nobody watches")


def _before_commit(session: Session) -> None:
    cache = session.info.get(_CLIENT)
    ids = session.info.get(_PENDING, {}).get("requests")
    if cache is None or not ids:
        return
    try:
        drop(cache, ids, reason="invalidated", fence=1)
        session.info[_FENCED] = set(ids)
    except RedisError as exc:
        _unavailable("invalidate", exc)


def _after_commit(session: Session) -> None:
    cache = session.info.get(_CLIENT)
    pending = session.info.pop(_PENDING, None) or {"requests": set(), "users": set()}
    fenced = session.info.pop(_FENCED, set())
    if cache is None:
        return
    try:
        if fenced:
            drop(cache, fenced, reason="invalidated", fence=-1)
        if pending["requests"] - fenced:
            drop(cache, pending["requests"] - fenced, reason="invalidated")
    except RedisError as exc:
        _unavailable("invalidate", exc)
        stale = len(fenced | pending["requests"])
        log.error("response cache: %d entries may be stale until maintenance", stale)
    invalidate_users(cache, pending["users"])


def _after_rollback(session: Session) -> None:
    cache = session.info.get(_CLIENT)
    session.info.pop(_PENDING, None)
    fenced = session.info.pop(_FENCED, set())
    if cache is not None and fenced:
        try:
            drop(cache, fenced, reason="invalidated", fence=-1)
        except RedisError as exc:
            _unavailable("invalidate", exc)
