"""How many checks ended in each decision, per UTC hour: the admin statistics read it.

A limiter made with a tally prefix (`RateLimiter(..., tally=prefix)`) has its script count
every check (never a peek) in the hash ``<prefix><YYYYMMDDHH>``, one field per decision:
``ok`` (allowed plainly), ``soft`` (allowed with a soft warning), ``grace`` (allowed in a
grace period), ``blocked`` (refused). The count rides on the check's own EVALSHA: no extra
round trip, and a check that cannot reach Redis counts nothing (and fails as it always did).
Each hour's hash expires `TTL_SECONDS` after it was made, long enough for a 24-hour sum.
"""

from __future__ import annotations

import time

import redis

from shared.ratelimit.decision import STATES

#: How long an hour's hash lives: the 24 hours a sum reads, plus the hour partly inside them.
TTL_SECONDS = 25 * 3600
HOUR = 3600


def tally_key(prefix: str, moment: float) -> str:
    """The hash counting the decisions of the UTC hour holding `moment` (epoch seconds)."""
    return prefix + time.strftime("%Y%m%d%H", time.gmtime(moment))


def _counts(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items() if v.isdigit()}


def read_tally(
    client: redis.Redis, prefix: str, now: float | None = None
) -> dict[str, dict[str, int]]:
    """Decisions by state over the last hour and the last 24 hours, summed over every API
    process: the whole hours inside the span plus the share of the oldest hour still in it
    (pro rata, as the response cache's last hour is counted). One pipelined round trip;
    raises `redis.RedisError` when Redis cannot answer."""
    now = time.time() if now is None else now
    hour_start = now - now % HOUR
    pipe = client.pipeline(transaction=False)
    for k in range(25):
        pipe.hgetall(tally_key(prefix, hour_start - HOUR * k))
    buckets = [_counts(raw) for raw in pipe.execute()]
    share = 1 - (now - hour_start) / HOUR

    def span(hours: int) -> dict[str, int]:
        return {
            s: round(sum(b.get(s, 0) for b in buckets[:hours]) + share * buckets[hours].get(s, 0))
            for s in STATES
        }

    return {"last_hour": span(1), "last_24h": span(24)}
