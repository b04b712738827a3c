"""Health probes: every component checked with its own short timeout, all at the same time.

A `Probe` names a component, how to check it and how long to wait for it. `run_probes`
starts each probe in a thread of its own and waits for each at most its timeout, counted
from the start: one slow component cannot make the report slow. A probe that has not
answered by then is `down` ("no answer within 2 s", `timed_out`), and its thread finishes
in the background (every client a probe uses has a timeout of its own too). A probe returns
a `Finding` (status, reason, details); one that raises is `down` with the error as reason.
The report's status is the worst of its components (`ok` < `degraded` < `down`).

`run_concurrently` is the same machinery for any set of calls (the queue view uses it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

from shared.db import utcnow

OK, DEGRADED, DOWN = "ok", "degraded", "down"
STATUSES = (OK, DEGRADED, DOWN)
_RANK = {OK: 0, DEGRADED: 1, DOWN: 2}

T = TypeVar("T")


def worst(statuses: Iterable[str]) -> str:
    """The worst of `statuses` (`ok` when there are none)."""
    return max(statuses, key=_RANK.__getitem__, default=OK)


@dataclass(frozen=True)
class Finding:
    """What a probe found: a status, why (empty when all is well), and figures."""

    status: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def ok(reason: str = "", **details: Any) -> Finding:
    return Finding(OK, reason, details)


def degraded(reason: str, **details: Any) -> Finding:
    return Finding(DEGRADED, reason, details)


def down(reason: str, **details: Any) -> Finding:
    return Finding(DOWN, reason, details)


@dataclass(frozen=True)
class Probe:
    name: str
    check: Callable[[], Finding]
    timeout_s: float


@dataclass(frozen=True)
class Component:
    name: str
    status: str
    reason: str
    latency_ms: float | None  # how long the probe took; None when it did not answer in time
    timed_out: bool
    details: dict[str, Any]


@dataclass(frozen=True)
class HealthReport:
    status: str
    version: str
    checked_at: datetime
    components: list[Component]

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    @property
    def down(self) -> list[str]:
        return [c.name for c in self.components if c.status == DOWN]

    def states(self) -> dict[str, dict[str, str]]:
        """Each component's status and reason (what a health sample keeps)."""
        return {c.name: {"status": c.status, "reason": c.reason} for c in self.components}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        return data


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One call of `run_concurrently`: its value, or the error it raised, or no answer."""

    value: T | None = None
    error: BaseException | None = None
    timed_out: bool = False
    elapsed_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


def _run(call: Callable[[], Any], future: Future) -> None:
    started = time.perf_counter()
    try:
        value = call()
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
        future.set_result(Outcome(error=exc, elapsed_s=time.perf_counter() - started))
    else:
        future.set_result(Outcome(value=value, elapsed_s=time.perf_counter() - started))


def run_concurrently(
    calls: Mapping[str, Callable[[], T]], timeouts: Mapping[str, float] | float
) -> dict[str, Outcome[T]]:
    """Run every call in a daemon thread of its own; wait for each at most its timeout
    (counted from the start, so the whole wait is the longest timeout, not their sum)."""
    start = time.monotonic()
    futures: dict[str, Future] = {}
    for name, call in calls.items():
        future: Future = Future()
        futures[name] = future
        threading.Thread(
            target=_run, args=(call, future), name=f"ferry-probe-{name}", daemon=True
        ).start()
    results: dict[str, Outcome[T]] = {}
    for name, future in futures.items():
        limit = timeouts if isinstance(timeouts, int | float) else timeouts[name]
        try:
            results[name] = future.result(timeout=max(0.0, start + limit - time.monotonic()))
        except TimeoutError:
            results[name] = Outcome(timed_out=True)
    return results


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_probes(probes: Iterable[Probe]) -> HealthReport:
    """Every probe at once, each within its own timeout; the worst status is the report's."""
    probes = list(probes)
    outcomes = run_concurrently(
        {p.name: p.check for p in probes}, {p.name: p.timeout_s for p in probes}
    )
    components = []
    for probe in probes:
        outcome = outcomes[probe.name]
        latency = None if outcome.elapsed_s is None else round(outcome.elapsed_s * 1000, 1)
        if outcome.timed_out:
            finding = down(f"no answer within {probe.timeout_s:g} s")
        elif outcome.error is not None:
            finding = down(describe_error(outcome.error))
        else:
            finding = outcome.value
            if not isinstance(finding, Finding) or finding.status not in _RANK:
                finding = down(f"the probe gave no finding: {finding!r:.100}")
        components.append(
            Component(
                probe.name,
                finding.status,
                finding.reason,
                latency,
                outcome.timed_out,
                dict(finding.details),
            )
        )
    return HealthReport(worst(c.status for c in components), ferry_version(), utcnow(), components)


@cache
def ferry_version() -> str:
    """The installed distribution's version ("unknown" when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ferry")
    except PackageNotFoundError:
        return "unknown"


__all__ = [
    "DEGRADED",
    "DOWN",
    "OK",
    "STATUSES",
    "Component",
    "Finding",
    "HealthReport",
    "Outcome",
    "Probe",
    "degraded",
    "describe_error",
    "down",
    "ferry_version",
    "ok",
    "run_concurrently",
    "run_probes",
    "worst",
]
