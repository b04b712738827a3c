"""Thresholds crossed, as the limiter saw them: read after the fact, never on the hot path.

A limiter made with a crossings key (`RateLimiter(..., tally=..., crossings=key)`) has its
script append one entry to that Redis list whenever a check crosses a threshold of one of the
user's windows, in the same EVALSHA as the check (no extra round trip, nothing when nothing
is crossed):

- ``soft``: the soft threshold is passed; told again only after the count fell back to it;
- ``grace``: a grace period opened (the first request past the limit);
- ``blocked``: a request was refused, the first since the window was last within its limit.

An entry is ``<user id>\\t<time ms>\\t<crossing>[,<crossing>…]`` with each crossing
``<state>:<window number, 1-based>:<count>:<limit>``. A reader (the request network's
`notify` task) takes entries from the head with `read` and drops them with `forget` once
what it made of them is committed: read again after a crash, an entry gives the same
`Crossing.key`, so whatever it made is recognised and not made twice. Unread, the list keeps
its newest `MAX_ENTRIES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.ratelimit.policy import WINDOWS

#: Entries kept when nobody reads them (the script's CROSSINGS_MAX).
MAX_ENTRIES = 100_000
STATES = ("soft", "grace", "blocked")
_WINDOW_NAMES = tuple(WINDOWS)


@dataclass(frozen=True)
class Crossing:
    user_id: str
    at_ms: int
    state: str  # "soft", "grace" or "blocked"
    window: str  # "minute", "hour" or "day"
    count: int  # the window's count with the request (refused: had it been allowed)
    limit: int
    key: str  # the same for the same crossing read twice


def parse(entry: bytes | str) -> list[Crossing]:
    """The crossings of one entry; an entry that is not one (written by hand) gives none."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    try:
        user_id, at, crossed = text.split("\t")
        found = []
        for item in crossed.split(","):
            state, window, count, limit = item.split(":")
            if state not in STATES:
                return []
            found.append(
                Crossing(
                    user_id=user_id,
                    at_ms=int(at),
                    state=state,
                    window=_WINDOW_NAMES[int(window) - 1],
                    count=int(count),
                    limit=int(limit),
                    key=f"{user_id}:{at}:{state}:{window}",
                )
            )
    except (ValueError, IndexError):
        return []
    return found


def read(client: redis.Redis, key: str, limit: int) -> tuple[int, list[Crossing]]:
    """The first `limit` entries: how many were read (for `forget`) and their crossings."""
    entries = client.lrange(key, 0, limit - 1)
    return len(entries), [c for entry in entries for c in parse(entry)]


def forget(client: redis.Redis, key: str, count: int) -> None:
    """Drop the first `count` entries (those `read` returned): new ones stay."""
    if count:
        client.ltrim(key, count, -1)


__all__ = ["MAX_ENTRIES", "Crossing", "forget", "parse", "read"]
