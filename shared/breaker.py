"""Circuit breakers: a dependency that keeps failing is not called for a while.

Each process keeps one breaker per dependency (`breaker("search")`), or per dependency and
server where a process may talk to several (`breaker("redis", "10.0.0.5:6379")`):

- **closed**: calls go through; a failure counts, a success clears the count. After
  `failures` failures in a row the breaker opens.
- **open**: calls fail at once (`CircuitOpen`, with the seconds left) for `cooldown_s`,
  instead of each waiting for a timeout.
- **half-open**: the cool-down is over; one call goes through as a trial. Its success
  closes the breaker, its failure opens it for another cool-down; calls meanwhile fail at
  once as when open.

Only failures that say the dependency itself is unwell count (refused connections,
timeouts), never an error in the call (a bad query). The state is per process, like the
connections it protects: `/api/v1/admin/health` shows the answering process's breakers,
and `ferry_circuit_breaker_state` every process's. `configure` sets the thresholds from the
settings (`breaker_failures`, `breaker_cooldown_s`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_NUMBER = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
DEFAULT_FAILURES = 5
DEFAULT_COOLDOWN_S = 30.0


class CircuitOpen(Exception):
    """The breaker is open: the call was not made. `retry_after`: seconds until a trial."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name} is failing: circuit open, next try in {retry_after:.0f} s")
        self.name = name
        self.retry_after = retry_after


@dataclass(frozen=True)
class Snapshot:
    name: str
    state: str
    failures: int  # failures in a row
    opened_at: float | None  # epoch seconds, while open or half-open
    retry_after: float  # seconds until a trial is let through (0: now)

    def as_dict(self) -> dict:
        return {
            "state": self.state,
            "failures": self.failures,
            "opened_at": self.opened_at,
            "retry_after_s": round(self.retry_after, 1),
        }


class CircuitBreaker:
    """One dependency's breaker (thread-safe). `clock`: monotonic seconds (tests pass one)."""

    def __init__(
        self,
        name: str,
        *,
        failures: int = DEFAULT_FAILURES,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.dependency = name  # what it guards; the registry's may be at several targets
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened: float | None = None  # clock time it opened
        self._opened_wall: float | None = None
        self._trial: float | None = None  # when a half-open trial began (clock time)
        self.listeners: list[Callable[[str, str], None]] = []

    def _state(self, now: float) -> str:
        if self._opened is None:
            return CLOSED
        return OPEN if now < self._opened + self.cooldown_s else HALF_OPEN

    @property
    def state(self) -> str:
        with self._lock:
            return self._state(self._clock())

    def before(self) -> None:
        """Let a call through, or raise `CircuitOpen`. Half-open, one trial at a time."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == CLOSED:
                return
            stale = self._trial is not None and now >= self._trial + self.cooldown_s
            if state == HALF_OPEN and (self._trial is None or stale):
                self._trial = now  # a trial never reported is given up after a cool-down
                return
            left = max(0.0, self._opened + self.cooldown_s - now) if self._opened else 0.0
            raise CircuitOpen(self.name, left or self.cooldown_s)

    def success(self) -> None:
        with self._lock:
            was = self._state(self._clock())
            self._failures, self._opened, self._opened_wall, self._trial = 0, None, None, None
        if was != CLOSED:
            self._tell(CLOSED)

    def failure(self) -> None:
        with self._lock:
            now = self._clock()
            was = self._state(now)
            self._failures += 1
            opens = was == HALF_OPEN or (was == CLOSED and self._failures >= self.threshold)
            if opens:
                self._opened, self._opened_wall, self._trial = now, time.time(), None
        if opens:
            self._tell(OPEN)

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            state = self._state(now)
            left = max(0.0, self._opened + self.cooldown_s - now) if self._opened else 0.0
            return Snapshot(self.name, state, self._failures, self._opened_wall, left)

    def _tell(self, state: str) -> None:
        for listener in list(self.listeners):
            listener(self.name, state)


_BREAKERS: dict[str, CircuitBreaker] = {}
_REGISTRY_LOCK = threading.Lock()
_CONFIG = {"failures": DEFAULT_FAILURES, "cooldown_s": DEFAULT_COOLDOWN_S}
_LISTENERS: list[Callable[[str, str], None]] = []


def breaker(dependency: str, target: str | None = None) -> CircuitBreaker:
    """This process's breaker for `dependency` (at `target`, e.g. a server's host:port, when
    a process may use more than one), made on first use with the configured thresholds."""
    name = dependency if target is None else f"{dependency}@{target}"
    with _REGISTRY_LOCK:
        found = _BREAKERS.get(name)
        if found is None:
            found = _BREAKERS[name] = CircuitBreaker(name, **_CONFIG)
            found.dependency = dependency
            found.listeners.append(_forward)
            made = True
        else:
            made = False
    if made:
        _forward(name, CLOSED)
    return found


def _worst(dependency: str) -> str:
    with _REGISTRY_LOCK:
        same = [b for b in _BREAKERS.values() if b.dependency == dependency]
    return max((b.state for b in same), key=STATE_NUMBER.__getitem__, default=CLOSED)


def _forward(name: str, state: str) -> None:
    """Tell the listeners the state of a breaker's dependency: the most open of its breakers."""
    dependency = name.split("@", 1)[0]
    worst = _worst(dependency)
    with _REGISTRY_LOCK:
        listeners = list(_LISTENERS)
    for listener in listeners:
        listener(dependency, worst)


def configure(*, failures: int, cooldown_s: float) -> None:
    """The thresholds of every breaker of this process, those made already included."""
    with _REGISTRY_LOCK:
        _CONFIG.update(failures=failures, cooldown_s=cooldown_s)
        for found in _BREAKERS.values():
            found.threshold, found.cooldown_s = failures, cooldown_s


def configure_from(settings: object) -> None:
    """`configure` from a network's settings (`breaker_failures`, `breaker_cooldown_s`)."""
    configure(
        failures=settings.breaker_failures,  # type: ignore[attr-defined]
        cooldown_s=settings.breaker_cooldown_s,  # type: ignore[attr-defined]
    )


def on_change(listener: Callable[[str, str], None]) -> None:
    """Call `listener(dependency, state)` when a breaker is made (closed) or changes state:
    the dependency's state is the most open of its breakers."""
    with _REGISTRY_LOCK:
        _LISTENERS.append(listener)
        dependencies = {b.dependency for b in _BREAKERS.values()}
    for dependency in sorted(dependencies):
        listener(dependency, _worst(dependency))


def reset() -> None:
    """Forget this process's breakers: each starts closed again on its next use."""
    with _REGISTRY_LOCK:
        _BREAKERS.clear()


def snapshots() -> dict[str, dict]:
    """Every breaker of this process, by name (`dependency` or `dependency@target`)."""
    with _REGISTRY_LOCK:
        found = list(_BREAKERS.values())
    return {b.name: b.snapshot().as_dict() for b in sorted(found, key=lambda b: b.name)}


__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "STATE_NUMBER",
    "CircuitBreaker",
    "CircuitOpen",
    "breaker",
    "configure",
    "configure_from",
    "on_change",
    "reset",
    "snapshots",
]
