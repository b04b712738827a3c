"""Admin panel sessions, kept in the network's Redis so that logging out and the timeouts are
real: a session ends when it is idle for `panel_idle_minutes` or `panel_absolute_hours` after
its login, whichever comes first, and logging out deletes it at once.

The browser holds a random session id; Redis holds only its SHA-256
(`panel:<network>:s:<digest>`), so reading Redis does not give anyone a usable cookie, and a
session of one network's panel is never one of the other's, even in one Redis (the demo).
Each session is a hash (who, role, when it began, when it was last used, its CSRF token) with
a TTL that each use moves on, never past the absolute deadline; one-shot messages for the
next page ("flash") sit in a list beside it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import redis


def key_prefix(network: str) -> str:
    """Where a network's panel sessions live in Redis."""
    return f"panel:{network}:s:"


FLASH = ":flash"
MAX_FLASH = 10


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class PanelSession:
    """One signed-in browser: who, with which role, since when, and its CSRF token."""

    key: str  # the Redis key (holds the id's digest, never the id)
    user_id: str
    username: str
    role: str
    created: float
    seen: float
    csrf: str


class SessionStore:
    """Create, read (and keep alive), and end panel sessions. `clock` gives epoch seconds."""

    def __init__(
        self,
        cache: redis.Redis,
        *,
        network: str,
        idle_s: float,
        absolute_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache, self.idle_s, self.absolute_s, self.clock = cache, idle_s, absolute_s, clock
        self.prefix = key_prefix(network)

    def _ttl(self, created: float, now: float) -> int:
        left = min(self.idle_s, created + self.absolute_s - now)
        return max(1, math.ceil(left))

    def create(
        self, *, user_id: str, username: str, role: str, replacing: str | None = None
    ) -> tuple[str, PanelSession]:
        """A new session (a new id, so a session id known before login is worth nothing
        after it); the session `replacing` names, if any, ends."""
        if replacing:
            self.destroy(replacing)
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        found = PanelSession(
            key=self.prefix + digest(session_id),
            user_id=user_id,
            username=username,
            role=role,
            created=now,
            seen=now,
            csrf=secrets.token_urlsafe(32),
        )
        fields = {
            "user_id": user_id,
            "username": username,
            "role": role,
            "created": repr(now),
            "seen": repr(now),
            "csrf": found.csrf,
        }
        pipe = self.cache.pipeline(transaction=True)
        pipe.hset(found.key, mapping=fields)
        pipe.expire(found.key, self._ttl(now, now))
        pipe.execute()
        return session_id, found

    def load(self, session_id: str | None, *, touch: bool = True) -> PanelSession | None:
        """The session the id names, if it is still alive; with `touch`, marks it used now
        (a page's own background refresh does not: it is not the admin at work)."""
        if not session_id or len(session_id) > 128:
            return None
        key = self.prefix + digest(session_id)
        raw = {k.decode(): v.decode() for k, v in self.cache.hgetall(key).items()}
        if not raw:
            return None
        now = self.clock()
        try:
            created, seen = float(raw["created"]), float(raw["seen"])
            found = PanelSession(
                key, raw["user_id"], raw["username"], raw["role"], created, now, raw["csrf"]
            )
        except (KeyError, ValueError):
            self.cache.delete(key, key + FLASH)
            return None
        if now - seen > self.idle_s or now - created > self.absolute_s:
            self.cache.delete(key, key + FLASH)
            return None
        if not touch:
            return found
        ttl = self._ttl(created, now)
        pipe = self.cache.pipeline(transaction=True)
        pipe.hset(key, "seen", repr(now))
        pipe.expire(key, ttl)
        pipe.expire(key + FLASH, ttl)
        pipe.execute()
        return found

    def destroy(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 128:
            key = self.prefix + digest(session_id)
            self.cache.delete(key, key + FLASH)

    # One-shot messages for the next page --------------------------------------------------

    def flash(self, session: PanelSession, level: str, text: str) -> None:
        item = orjson.dumps({"level": level, "text": text[:2000]})
        pipe = self.cache.pipeline(transaction=True)
        pipe.rpush(session.key + FLASH, item)
        pipe.ltrim(session.key + FLASH, -MAX_FLASH, -1)
        pipe.expire(session.key + FLASH, self._ttl(session.created, self.clock()))
        pipe.execute()

    def take_flashes(self, session: PanelSession) -> list[dict[str, str]]:
        pipe = self.cache.pipeline(transaction=True)
        pipe.lrange(session.key + FLASH, 0, -1)
        pipe.delete(session.key + FLASH)
        items, _ = pipe.execute()
        return [orjson.loads(item) for item in items]
