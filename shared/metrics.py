"""Prometheus metrics (prometheus-client's default registry)."""

from __future__ import annotations

from prometheus_client import Counter

RATELIMIT_DECISIONS = Counter(
    "ferry_ratelimit_decisions",
    "Rate-limit decisions taken with Redis, by the most severe window state.",
    ["state"],
)
RATELIMIT_REDIS_UNAVAILABLE = Counter(
    "ferry_ratelimit_redis_unavailable",
    "Rate-limit decisions taken without Redis (it could not be reached), by outcome.",
    ["decision"],  # "allowed" (fail open) or "refused" (fail closed)
)

__all__ = ["RATELIMIT_DECISIONS", "RATELIMIT_REDIS_UNAVAILABLE"]
