"""Login throttling and lockout counters in Redis.

Every counter is keyed by what the caller sent (client address, username), never by whether
the account exists, so a username that does not exist is counted, throttled and locked out
exactly like one that does. Usernames are hashed into key names. Redis errors propagate:
login fails closed without Redis.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

ATTEMPTS_BY_CLIENT = "auth:login:ip:"
ATTEMPTS_BY_ACCOUNT = "auth:login:acct:"
FAILURES = "auth:login:fail:"
LOCK = "auth:login:lock:"


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
    def __init__(self, cache: redis.Redis, limits: LoginLimits) -> None:
        self.cache, self.limits = cache, limits

    def count_attempt(self, *, client: str, username: str) -> int:
        """Count one attempt against the client and the account (fixed one-minute windows).

        Returns 0 when the attempt may go on, else the seconds until the fuller window resets.
        """
        keys = (ATTEMPTS_BY_CLIENT + client, ATTEMPTS_BY_ACCOUNT + account_key(username))
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
        ttl = self.cache.ttl(LOCK + account_key(username))
        return ttl if ttl > 0 else 0

    def failures(self, username: str) -> int:
        return int(self.cache.get(FAILURES + account_key(username)) or 0)

    def record_failure(self, username: str) -> int:
        """One more failure; failures are forgotten after a lockout period without one."""
        key = FAILURES + account_key(username)
        pipe = self.cache.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.limits.lockout_seconds)
        count, _ = pipe.execute()
        return int(count)

    def lock(self, username: str) -> int:
        """Lock the username out for the lockout period; its failure count starts again."""
        name = account_key(username)
        pipe = self.cache.pipeline(transaction=True)
        pipe.set(LOCK + name, 1, ex=self.limits.lockout_seconds)
        pipe.delete(FAILURES + name)
        pipe.execute()
        return self.limits.lockout_seconds

    def clear(self, username: str) -> None:
        """Forget failures and any lock (a good login, or an admin lifting the lock)."""
        name = account_key(username)
        self.cache.delete(FAILURES + name, LOCK + name)
