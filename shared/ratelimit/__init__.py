"""Per-user rate limits over minute, hour and day windows (DESIGN.md §4).

One Lua script (``sliding_window.lua``) checks and charges every window atomically in one
round trip; see ``policy`` for the thresholds and their rounding, ``decision`` for what a
check returns, ``headers`` for how the API shows it, ``tally`` for the per-hour counts of
decisions the admin statistics read and ``crossings`` for the thresholds crossed, which the
notifications tell.
"""

from shared.ratelimit.decision import BLOCKED, GRACE, OK, SOFT, Decision, WindowStatus
from shared.ratelimit.headers import decision_headers, policy_header
from shared.ratelimit.limiter import (
    AsyncRateLimiter,
    RateLimiter,
    RateLimiterUnavailable,
)
from shared.ratelimit.policy import MAX_LIMIT, WINDOWS, Policy, keys_for
from shared.ratelimit.tally import read_tally, tally_key

__all__ = [
    "BLOCKED",
    "GRACE",
    "MAX_LIMIT",
    "OK",
    "SOFT",
    "WINDOWS",
    "AsyncRateLimiter",
    "Decision",
    "Policy",
    "RateLimiter",
    "RateLimiterUnavailable",
    "WindowStatus",
    "decision_headers",
    "keys_for",
    "policy_header",
    "read_tally",
    "tally_key",
]
