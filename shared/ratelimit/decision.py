"""What one check says: per window where the request fell, and for the caller what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.ratelimit.policy import WINDOWS

OK, SOFT, GRACE, BLOCKED = "ok", "soft", "grace", "blocked"
STATES = (OK, SOFT, GRACE, BLOCKED)  # index = the script's state code, and the severity
FIELDS_PER_WINDOW = 6


def _seconds(ms: int) -> int:
    """Whole seconds, rounded up: a client that waits this long is never early."""
    return -(-ms // 1000)


@dataclass(slots=True)
class WindowStatus:
    """One window after a check (or, for a peek, as it stands now).

    ``state`` is where this request fell in the window (for a peek: where the next one
    would fall). ``count`` is the sliding count after the decision; a blocked request
    adds nothing. ``reset`` is the number of seconds until the count has drained to zero
    (the full quota is back); ``retry_after_ms`` is the time until one more request fits
    within the limit (0 when it does now).
    """

    window: str
    limit: int
    count: int
    state: str
    reset_ms: int
    retry_after_ms: int
    grace_until_ms: int | None
    grace_reopens_at_ms: int | None

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def reset(self) -> int:
        return _seconds(self.reset_ms)

    @property
    def window_seconds(self) -> int:
        return WINDOWS[self.window]

    @property
    def severity(self) -> int:
        return STATES.index(self.state)


@dataclass(slots=True)
class Decision:
    """The answer to one check or peek for one user, over all windows."""

    allowed: bool
    now_ms: int
    windows: tuple[WindowStatus, ...]

    @property
    def by_window(self) -> dict[str, WindowStatus]:
        return {w.window: w for w in self.windows}

    @property
    def violated(self) -> list[str]:
        return [w.window for w in self.windows if w.state == BLOCKED]

    @property
    def state(self) -> str:
        """The most severe window state: ok < soft < grace < blocked."""
        return STATES[max(w.severity for w in self.windows)]

    @property
    def warning(self) -> str | None:
        """``soft`` or ``grace`` for an allowed request that went past the soft threshold."""
        return self.state if self.state in (SOFT, GRACE) else None

    def _retry_plan(self) -> tuple[int, WindowStatus]:
        """When a refused request would be allowed, and the window that decides it.

        Every violated window must be back to c ≤ L. A window that allowed this request
        only through an open grace period must be too, if that grace period is over by
        then (it cannot be relied on to reopen). Counts only fall while nothing is
        allowed, so at that moment the request is allowed; never earlier than the moment
        the violated windows' counts are back to their limits.
        """
        blocked = [w for w in self.windows if w.state == BLOCKED]
        decider = max(blocked, key=lambda w: w.retry_after_ms)
        at = decider.retry_after_ms
        changed = True
        while changed:
            changed = False
            for w in self.windows:
                if (
                    w.state != BLOCKED
                    and w.retry_after_ms > at
                    and w.grace_until_ms is not None
                    and w.grace_until_ms - self.now_ms <= at
                ):
                    decider, at, changed = w, w.retry_after_ms, True
        return at, decider

    @property
    def retry_after_ms(self) -> int:
        """For a refused request: ms until a request would be allowed (0 when allowed)."""
        return 0 if self.allowed else self._retry_plan()[0]

    @property
    def retry_after(self) -> int:
        return _seconds(self.retry_after_ms)

    @property
    def binding(self) -> WindowStatus:
        """The most constrained window.

        Refused: the window that decides ``retry_after``. Otherwise the most severe state,
        then the fewest remaining, then the longest reset.
        """
        if not self.allowed:
            return self._retry_plan()[1]
        return max(self.windows, key=lambda w: (w.severity, -w.remaining, w.reset_ms))


_OFFSETS = tuple((w, 2 + i * FIELDS_PER_WINDOW) for i, w in enumerate(WINDOWS))


def parse_reply(reply: Sequence[int], limits: Mapping[str, int]) -> Decision:
    """Turn the script's flat integer reply into a `Decision` (on the hot path: kept lean)."""
    r = reply  # integer replies arrive as ints
    windows = tuple(
        WindowStatus(
            window,
            limits[window],
            r[i + 1],
            STATES[r[i]],
            r[i + 2],
            r[i + 3],
            r[i + 4] or None,
            r[i + 5] or None,
        )
        for window, i in _OFFSETS
    )
    return Decision(r[0] == 1, r[1], windows)
