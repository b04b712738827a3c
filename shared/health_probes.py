"""The probes both networks run (`shared.health`): database, Redis, broker, workers, beat.

Each function returns a `Probe` whose check opens what it needs itself, with a timeout of its
own, in the probe's thread: a database probe reads in a unit of its own (`shared.db.reading`,
statements outside a transaction), since a session cannot be shared between threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shared import breaker, celery_control
from shared.cache import get_redis
from shared.db import reading, utcnow
from shared.health import Finding, Probe, degraded, down, ok
from shared.history import last_runs

Reads = Callable[[], AbstractContextManager[Session]]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@cache
def code_heads(network: str) -> tuple[str, ...]:
    """The migration heads of this code's Alembic environment for `network`."""
    from alembic.script import ScriptDirectory

    from shared.migrate import alembic_config

    return tuple(sorted(ScriptDirectory.from_config(alembic_config(network, "")).get_heads()))


def database_probe(network: str, url: str, timeout_s: float) -> Probe:
    """Reachable, how quickly, and at the migration head of this code."""

    def check() -> Finding:
        started = time.perf_counter()
        with reading(url) as session:
            session.execute(text("SELECT 1"))
            latency = _ms(started)
            try:
                heads = session.execute(text("SELECT version_num FROM alembic_version")).scalars()
                at = tuple(sorted(heads))
            except SQLAlchemyError:
                at = ()
        code = code_heads(network)
        details = {"latency_ms": latency, "migration": ", ".join(at) or None, "code": code[0]}
        if at != code:
            where = ", ".join(at) or "no migration"
            return degraded(
                f"the database is at {where}, this code at {', '.join(code)}: "
                f"run `ferry {network} db upgrade`",
                **details,
            )
        return ok(**details)

    return Probe("database", check, timeout_s)


def redis_probe(url: str, timeout_s: float) -> Probe:
    def check() -> Finding:
        started = time.perf_counter()
        if url.startswith("fakeredis://"):
            get_redis(url).ping()
            return ok("in-process stand-in (demo)", latency_ms=_ms(started))
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            client.ping()
        finally:
            client.close()
        return ok(latency_ms=_ms(started))

    return Probe("redis", check, timeout_s)


def breakers_probe(timeout_s: float) -> Probe:
    """This process's circuit breakers (`shared.breaker`): degraded while one is not closed
    (its dependency failing: calls to it fail at once until the cool-down ends)."""

    def check() -> Finding:
        found = breaker.snapshots()
        tripped = {name: b for name, b in found.items() if b["state"] != breaker.CLOSED}
        if tripped:
            why = ", ".join(
                f"{name} {b['state'].replace('_', '-')} (next try in {b['retry_after_s']:.0f} s)"
                for name, b in tripped.items()
            )
            return degraded(f"circuit breaker: {why}", breakers=found)
        return ok("every circuit closed" if found else "no call made yet", breakers=found)

    return Probe("circuit_breakers", check, timeout_s)


def broker_probe(broker: str, *, eager: bool, timeout_s: float) -> Probe:
    def check() -> Finding:
        if eager or celery_control.is_memory(broker):
            return ok("tasks run in-process (celery_eager): no broker")
        started = time.perf_counter()
        celery_control.broker_reachable(broker, timeout_s)
        return ok(url=celery_control.masked(broker), latency_ms=_ms(started))

    return Probe("broker", check, timeout_s)


def workers_probe(broker: str, *, eager: bool, timeout_s: float) -> Probe:
    """Workers answering a ping within `timeout_s`; none is `down`."""

    def check() -> Finding:
        if eager or celery_control.is_memory(broker):
            return ok("tasks run in-process (celery_eager): no worker")
        answered = celery_control.ping_workers(broker, timeout_s)
        if not answered:
            return down(f"no worker answered a ping within {timeout_s:g} s", workers=[])
        return ok(f"{len(answered)} answered", workers=sorted(answered))

    return Probe("workers", check, timeout_s + 1.0)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def beat_entries(
    beat: Mapping[str, Mapping[str, Any]], runs: Mapping[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """Each beat entry with its last run (by start), the time it was next due after that,
    and how late that is (0 when not yet due)."""
    entries = []
    for key, entry in beat.items():
        run = runs.get(entry["task"])
        last = run.started_at if run is not None else None
        if last is not None and last.tzinfo is None:  # SQLite hands back naive UTC
            last = last.replace(tzinfo=UTC)
        due = celery_control.next_run(entry["schedule"], last, now)
        entries.append(
            {
                "entry": key,
                "task": entry["task"],
                "schedule": celery_control.describe_schedule(entry["schedule"]),
                "last_run_at": last,
                "last_outcome": run.outcome if run is not None else None,
                "next_run_at": due,
                "late_s": round(max(0.0, (now - due).total_seconds()), 1) if last else None,
            }
        )
    return entries


def beat_probe(
    beat: Mapping[str, Mapping[str, Any]],
    task_model: type,
    reads: Reads,
    *,
    eager: bool,
    grace_s: float,
    timeout_s: float,
) -> Probe:
    """Beat, judged by the recorded runs of its entries: `down` when nothing has run or every
    entry that is due is late by more than `grace_s`; `degraded` when some are late or some
    never ran."""

    def check() -> Finding:
        if eager:
            return ok("tasks run in-process (celery_eager): no beat")
        with reads() as session:
            runs = last_runs(session, task_model, [e["task"] for e in beat.values()])
        now = utcnow()
        entries = beat_entries(beat, runs, now)
        details = {
            "entries": [
                {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in e.items()}
                for e in entries
            ]
        }
        if not runs:
            return down("no scheduled task has a recorded run", **details)
        due = [e for e in entries if e["late_s"] is not None and e["next_run_at"] <= now]
        late = [e for e in due if e["late_s"] > grace_s]
        never = [e["entry"] for e in entries if e["last_run_at"] is None]
        said = [f"{e['entry']} late by {_age(e['late_s'])}" for e in late]
        if never:
            said.append(f"never ran: {', '.join(never)}")
        if late and len(late) == len(due):
            return down("every due entry is late: " + "; ".join(said), **details)
        if said:
            return degraded("; ".join(said), **details)
        return ok(**details)

    return Probe("beat", check, timeout_s)


__all__ = [
    "beat_entries",
    "beat_probe",
    "broker_probe",
    "code_heads",
    "database_probe",
    "redis_probe",
    "workers_probe",
]
