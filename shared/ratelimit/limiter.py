"""The limiter: one EVALSHA per check, all windows at once, reloaded on NOSCRIPT.

``RateLimiter`` (sync redis-py, the API) and ``AsyncRateLimiter`` (redis.asyncio, the
benchmark) share the script, the key layout and the reply parsing. Given a ``tally`` prefix,
a check also counts its decision in this hour's tally, in the same call (``tally``); given
a ``crossings`` key too, it appends the thresholds it crossed to that list (``crossings``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from importlib import resources

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

from shared.ratelimit.decision import Decision, parse_reply
from shared.ratelimit.policy import Policy, check_limits, keys_for
from shared.ratelimit.tally import tally_key

SCRIPT = resources.files(__package__).joinpath("sliding_window.lua").read_text()
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

#: Errors that mean "the limiter's Redis cannot answer now" (not a bug in the call).
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
)


class RateLimiterUnavailable(Exception):
    """Redis could not be reached; the caller decides to fail open or closed.
    `retry_after`: seconds until Redis is tried again, when a circuit breaker knows."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _unavailable(exc: Exception) -> RateLimiterUnavailable:
    return RateLimiterUnavailable(str(exc), getattr(exc, "retry_after", None))


def _keys(
    user_id: str, tally: str | None, crossings: str | None, charge: bool, now_ms: int | None
) -> list[str]:
    keys = keys_for(user_id)
    if tally is not None and charge:
        keys.append(tally_key(tally, time.time() if now_ms is None else now_ms / 1000))
        if crossings is not None:
            keys.append(crossings)
    return keys


def _crossings_need_tally(tally: str | None, crossings: str | None) -> None:
    if crossings is not None and tally is None:
        raise ValueError("a crossings list is kept only by a limiter with a tally")


def _args(policy: Policy, charge: bool, limits: Mapping[str, int], now_ms: int | None) -> tuple:
    # now_ms is a test-only override of redis.call('TIME'); production never passes it.
    now = b"" if now_ms is None else str(int(now_ms)).encode()
    return (b"1" if charge else b"0", now, *policy.script_args(limits))


class RateLimiter:
    """Sliding-window limits per user over minute, hour and day, in one round trip; with a
    `tally` prefix, every check's decision is counted per hour (`shared.ratelimit.tally`);
    with a `crossings` key too, the thresholds crossed are listed (`shared.ratelimit.crossings`).

    `policy` is a `Policy`, or a function giving the policy in force, asked at every check
    (so a change of the ratios applies to a limiter already made)."""

    def __init__(
        self,
        client: redis.Redis,
        policy: Policy | Callable[[], Policy] | None = None,
        *,
        tally: str | None = None,
        crossings: str | None = None,
    ) -> None:
        _crossings_need_tally(tally, crossings)
        self.client = client
        self._policy = policy or Policy()
        self.tally = tally
        self.crossings = crossings

    @property
    def policy(self) -> Policy:
        source = self._policy
        return source if isinstance(source, Policy) else source()

    def _run(self, user_id: str, limits: Mapping[str, int], charge: bool, now_ms) -> Decision:
        limits = check_limits(limits)
        keys = _keys(user_id, self.tally, self.crossings, charge, now_ms)
        args = _args(self.policy, charge, limits, now_ms)
        try:
            try:
                reply = self.client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
            except NoScriptError:  # a restarted Redis or SCRIPT FLUSH: load it, try again
                self.client.script_load(SCRIPT)
                reply = self.client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        return parse_reply(reply, limits)

    def check(
        self, user_id: str, limits: Mapping[str, int], *, now_ms: int | None = None
    ) -> Decision:
        """Count one request if every window allows it; a blocked request counts nowhere."""
        return self._run(user_id, limits, True, now_ms)

    def peek(
        self, user_id: str, limits: Mapping[str, int], *, now_ms: int | None = None
    ) -> Decision:
        """Where the user stands, and where a next request would fall; changes nothing."""
        return self._run(user_id, limits, False, now_ms)

    def reset(self, user_id: str) -> None:
        """Forget the user's counters, grace periods and blocks (one DEL, one slot)."""
        try:
            self.client.delete(*keys_for(user_id))
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc


class AsyncRateLimiter:
    """The same limiter on redis.asyncio."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        policy: Policy | None = None,
        *,
        tally: str | None = None,
        crossings: str | None = None,
    ) -> None:
        _crossings_need_tally(tally, crossings)
        self.client = client
        self.policy = policy or Policy()
        self.tally = tally
        self.crossings = crossings

    async def _run(self, user_id: str, limits: Mapping[str, int], charge: bool, now_ms):
        limits = check_limits(limits)
        keys = _keys(user_id, self.tally, self.crossings, charge, now_ms)
        args = _args(self.policy, charge, limits, now_ms)
        try:
            try:
                reply = await self.client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
            except NoScriptError:
                await self.client.script_load(SCRIPT)
                reply = await self.client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        return parse_reply(reply, limits)

    async def check(
        self, user_id: str, limits: Mapping[str, int], *, now_ms: int | None = None
    ) -> Decision:
        return await self._run(user_id, limits, True, now_ms)

    async def peek(
        self, user_id: str, limits: Mapping[str, int], *, now_ms: int | None = None
    ) -> Decision:
        return await self._run(user_id, limits, False, now_ms)

    async def reset(self, user_id: str) -> None:
        try:
            await self.client.delete(*keys_for(user_id))
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
