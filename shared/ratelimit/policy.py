"""What a limit is: the three windows, the thresholds of DESIGN.md §4 and how they round.

Rounding (decided once, here, and used by the Lua script through its arguments):

- soft threshold  S = floor(soft_ratio · L): a request whose count c ≤ S is plain ``ok``;
- grace ceiling   X = floor(grace_ratio · L): ``L < c ≤ X`` is allowed only in a grace period;
- both are computed in decimal from the setting's written value (``Decimal(str(0.8))``), so
  ``0.29 · 100`` is 29, never the binary-float 28.999…;
- grace length    G = min(grace_seconds, window), in milliseconds; G = 0 means no grace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

#: The windows, shortest first, with their length in seconds and their key suffix.
WINDOWS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
SUFFIX = {"minute": "m", "hour": "h", "day": "d"}
#: The largest limit of any window: it keeps every product in the script exact (far below
#: 2^53). Every place a limit is written checks it (the admin API's schema, the replicated
#: records, a CHECK on the override table); `request_network.services.rate_limits` clamps a
#: stored value above it when it reads one.
MAX_LIMIT = 10_000_000


def keys_for(user_id: str) -> list[str]:
    """One hash per window, all in the user's cluster slot (hash tag ``{u:<id>}``)."""
    return [f"rl:{{u:{user_id}}}:{SUFFIX[w]}" for w in WINDOWS]


def _floor_ratio(ratio: float, limit: int) -> int:
    return math.floor(Decimal(str(ratio)) * limit)


@dataclass(frozen=True)
class Policy:
    """The ratios and grace length (from settings) shared by every user."""

    soft_ratio: float = 0.8
    grace_ratio: float = 1.1
    grace_seconds: int = 300

    def __post_init__(self) -> None:
        if not 0 < self.soft_ratio <= 1:
            raise ValueError("soft_ratio must be in (0, 1]")
        if self.grace_ratio < 1:
            raise ValueError("grace_ratio must be at least 1")
        if self.grace_seconds < 0:
            raise ValueError("grace_seconds must not be negative")

    def thresholds(self, window: str, limit: int) -> Thresholds:
        if not 0 <= limit <= MAX_LIMIT:
            raise ValueError(f"{window} limit must be between 0 and {MAX_LIMIT}")
        seconds = WINDOWS[window]
        return Thresholds(
            window=window,
            window_ms=seconds * 1000,
            limit=limit,
            soft=_floor_ratio(self.soft_ratio, limit),
            grace=max(limit, _floor_ratio(self.grace_ratio, limit)),
            grace_ms=min(self.grace_seconds, seconds) * 1000,
        )

    def script_args(self, limits: Mapping[str, int]) -> tuple[bytes, ...]:
        """The five integers per window the Lua script takes, in window order (cached)."""
        return _script_args(self, tuple(limits[w] for w in WINDOWS))


@dataclass(frozen=True)
class Thresholds:
    window: str
    window_ms: int
    limit: int
    soft: int
    grace: int
    grace_ms: int


@lru_cache(maxsize=4096)
def _script_args(policy: Policy, limits: tuple[int, ...]) -> tuple[bytes, ...]:
    args: list[int] = []
    for window, limit in zip(WINDOWS, limits, strict=True):
        t = policy.thresholds(window, limit)
        args += [t.window_ms, t.limit, t.soft, t.grace, t.grace_ms]
    return tuple(str(a).encode() for a in args)


def check_limits(limits: Mapping[str, int]) -> dict[str, int]:
    """A complete ``{"minute": L, "hour": L, "day": L}`` of non-negative integers."""
    missing = [w for w in WINDOWS if w not in limits]
    if missing:
        raise ValueError(f"limits lack {', '.join(missing)}")
    out = {}
    for window in WINDOWS:
        value = limits[window]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{window} limit must be a non-negative integer")
        out[window] = value
    return out
