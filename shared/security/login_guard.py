"""Login throttling and lockout counters in Redis.

Every counter is keyed by what the caller sent (client address, username), never by whether
the account exists, so a username that does not exist is counted, throttled and locked out
exactly like one that does. Usernames are hashed into key names. Redis errors propagate:
login fails closed without Redis.

Each network counts under its own `prefix` (the request network under the bare `auth:login:`
it has always used), so two networks sharing one Redis (the demo) never share counters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

PREFIX = "auth:login:"
ATTEMPTS_BY_CLIENT = "ip:"
ATTEMPTS_BY_ACCOUNT = "acct:"
FAILURES = "fail:"
LOCK = "lock:"


def account_key(username: str) -> str:
    return hashlib.sha256(username.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoginLimits:
    per_client_per_minute: int
    per_account_per_minute: int
    max_failures: int
    lockout_seconds: int
    window_seconds: int = 60


class LoginGuard:
    def __init__(self, cache: redis.Redis, limits: LoginLimits, *, prefix: str = PREFIX) -> None:
        self.cache, self.limits, self.prefix = cache, limits, prefix

    def _key(self, kind: str, username: str) -> str:
        """The key of `kind` (FAILURES, LOCK, ATTEMPTS_BY_ACCOUNT) for a username."""
        return self.prefix + kind + account_key(username)

    def count_attempt(self, *, client: str, username: str) -> int:
        """Count one attempt against the client and the account (fixed one-minute windows).

        Returns 0 when the attempt may go on, else the seconds until the fuller window resets.
        """
        keys = (
            self.prefix + ATTEMPTS_BY_CLIENT + client,
            self._key(ATTEMPTS_BY_ACCOUNT, username),
        )
        pipe = self.cache.pipeline(transaction=True)
        for key in keys:
            pipe.set(key, 0, ex=self.limits.window_seconds, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
        results = pipe.execute()
        caps = (self.limits.per_client_per_minute, self.limits.per_account_per_minute)
        wait = 0
        for i, cap in enumerate(caps):
            count, ttl = results[3 * i + 1], results[3 * i + 2]
            if count > cap:
                wait = max(wait, ttl if ttl > 0 else self.limits.window_seconds)
        return wait

    def locked_for(self, username: str) -> int:
        """Seconds the username stays locked out (0 when it is not)."""
        ttl = self.cache.ttl(self._key(LOCK, username))
        return ttl if ttl > 0 else 0

    def failures(self, username: str) -> int:
        return int(self.cache.get(self._key(FAILURES, username)) or 0)

    def record_failure(self, username: str) -> int:
        """One more failure; failures are forgotten after a lockout period without one."""
        key = self._key(FAILURES, username)
        pipe = self.cache.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.limits.lockout_seconds)
        count, _ = pipe.execute()
        return int(count)

    def lock(self, username: str) -> int:
        """Lock the username out for the lockout period; its failure count starts again."""
        pipe = self.cache.pipeline(transaction=True)
        pipe.set(self._key(LOCK, username), 1, ex=self.limits.lockout_seconds)
        pipe.delete(self._key(FAILURES, username))
        pipe.execute()
        return self.limits.lockout_seconds

    def clear(self, username: str) -> None:
        """Forget failures and any lock (a good login, or an admin lifting the lock)."""
        self.cache.delete(self._key(FAILURES, username), self._key(LOCK, username))
