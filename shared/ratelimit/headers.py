"""HTTP headers for a decision: the IETF httpapi ratelimit-headers draft and X-RateLimit-*.

- ``RateLimit-Policy: "minute";q=30;w=60, "hour";q=500;w=3600, "day";q=2000;w=86400``
  (structured-field list, one item per window: quota ``q`` over ``w`` seconds);
- ``RateLimit: "minute";r=29;t=119, "hour";r=499;t=7199, "day";r=1999;t=172799``
  (remaining ``r`` and ``t`` = seconds until the window's count has drained to zero);
- ``X-RateLimit-Limit/Remaining/Used/Reset`` of the binding window (the most constrained);
- ``X-RateLimit-Warning: soft|grace`` on an allowed request past the soft threshold;
- ``Retry-After`` (whole seconds, rounded up) on a blocked one.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.ratelimit.decision import Decision
from shared.ratelimit.policy import WINDOWS


def policy_header(limits: Mapping[str, int]) -> str:
    return ", ".join(f'"{w}";q={limits[w]};w={seconds}' for w, seconds in WINDOWS.items())


def decision_headers(decision: Decision) -> dict[str, str]:
    limits = {w.window: w.limit for w in decision.windows}
    binding = decision.binding
    headers = {
        "RateLimit-Policy": policy_header(limits),
        "RateLimit": ", ".join(
            f'"{w.window}";r={w.remaining};t={w.reset}' for w in decision.windows
        ),
        "X-RateLimit-Limit": str(binding.limit),
        "X-RateLimit-Remaining": str(binding.remaining),
        "X-RateLimit-Used": str(binding.count),
        "X-RateLimit-Reset": str(binding.reset),
    }
    if decision.allowed and decision.warning:
        headers["X-RateLimit-Warning"] = decision.warning
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after)
    return headers
