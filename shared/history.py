"""Task-run and health-sample history, the same on both networks (each passes its models).

- Task runs: `DatabaseRunRecorder` is what `shared.celery_app.house_task` calls around every
  run: a row when the task starts (outcome `started`), completed when it ends (`success`,
  `failure`, `timeout`, `retry`) with its duration, error and the counts it returned
  (`trim_counts`). Recording never breaks a task: if the database cannot be reached the
  run goes unrecorded and a warning says so.
- Health samples: `record_sample` keeps one row per `system_monitoring` run and says which
  components went down or recovered since the sample before; `components_down_since`
  answers "what is down now, and since when" for alerting.
- `trim` bounds both histories (age and runs kept per task) and marks runs that started
  long ago and never ended (a killed worker) as `lost`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from shared.db import reading, utcnow
from shared.health import DOWN, HealthReport
from shared.jsonutil import canonical

log = logging.getLogger("ferry.tasks")

STARTED, SUCCESS, FAILURE, TIMEOUT, RETRY, LOST = (
    "started",
    "success",
    "failure",
    "timeout",
    "retry",
    "lost",
)
#: A run still `started` this long after it began will never end (its worker died).
LOST_AFTER = timedelta(hours=2)
MAX_COUNTS_BYTES = 4096
MAX_KEYS = 32
MAX_NAMES = 8
MAX_TEXT = 200
MAX_ERROR = 2000


# Task runs --------------------------------------------------------------------------------


def _names(value: Any) -> bool:
    """A few short names (`["workers", "beat"]`): kept as they are."""
    return (
        isinstance(value, list | tuple)
        and len(value) <= MAX_NAMES
        and all(isinstance(v, str) and len(v) <= 64 for v in value)
    )


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if _names(value):
        return list(value)
    if isinstance(value, list | tuple | set | frozenset):
        return len(value)
    if isinstance(value, dict):
        return {str(k)[:64]: _scalar_only(v) for k, v in list(value.items())[:MAX_KEYS]}
    return str(value)[:MAX_TEXT]


def _scalar_only(value: Any) -> Any:
    """One level down: numbers and short text stay, collections become their size."""
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value)
    return _scalar(value)


def trim_counts(result: Any) -> dict[str, Any] | None:
    """What a task run keeps of its return value: at most 32 keys; lists as their length
    (but a few short names as they are); nested dicts one level deep; text cut to 200
    characters; the whole under 4 KiB (past that only the numbers are kept). A value that is
    not a dict is kept as {"result": …}."""
    if result is None:
        return None
    if not isinstance(result, dict):
        result = {"result": result}
    counts = {str(k)[:64]: _scalar(v) for k, v in list(result.items())[:MAX_KEYS]}
    if len(canonical(counts)) > MAX_COUNTS_BYTES:
        counts = {k: v for k, v in counts.items() if isinstance(v, int | float) or v is None}
    return counts


class DatabaseRunRecorder:
    """Records task runs in a network's `task_runs` table, each write a statement of its own
    (`shared.db.reading`). `database_url` is read at every run (the settings of the moment)."""

    def __init__(self, database_url: Callable[[], str], model: type) -> None:
        self.database_url = database_url
        self.model = model

    def started(self, *, name: str, task_id: str | None, worker: str | None, at: datetime):
        try:
            with reading(self.database_url()) as session:
                row = self.model(
                    name=name[:128], task_id=task_id, worker=worker, started_at=at, outcome=STARTED
                )
                session.add(row)
                session.flush()
                return row.id
        except Exception as exc:  # noqa: BLE001 - recording must never break the task
            log.warning("task %s (%s): its start was not recorded: %s", name, task_id, exc)
            return None

    def finished(
        self,
        token: Any,
        *,
        name: str,
        task_id: str | None,
        worker: str | None,
        started_at: datetime,
        finished_at: datetime,
        outcome: str,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        values = {
            "finished_at": finished_at,
            "duration_ms": round((finished_at - started_at).total_seconds() * 1000),
            "outcome": outcome,
            "counts": trim_counts(result),
            "error": None if error is None else error[:MAX_ERROR],
        }
        try:
            with reading(self.database_url()) as session:
                row = session.get(self.model, token) if token is not None else None
                if row is None:  # the start went unrecorded: the whole run in one row
                    row = self.model(name=name[:128], task_id=task_id, worker=worker)
                    row.started_at = started_at
                    session.add(row)
                for key, value in values.items():
                    setattr(row, key, value)
        except Exception as exc:  # noqa: BLE001 - recording must never break the task
            log.warning("task %s (%s): its %s was not recorded: %s", name, task_id, outcome, exc)


@dataclass(frozen=True)
class RunView:
    id: int
    name: str
    task_id: str | None
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    outcome: str
    counts: dict[str, Any] | None
    error: str | None

    @classmethod
    def of(cls, row: Any) -> RunView:
        return cls(
            row.id,
            row.name,
            row.task_id,
            row.worker,
            row.started_at,
            row.finished_at,
            row.duration_ms,
            row.outcome,
            row.counts,
            row.error,
        )


def last_runs(session: Session, model: type, names: Iterable[str]) -> dict[str, RunView]:
    """The latest run of each named task (by its start); a name never run is absent."""
    found = {}
    for name in dict.fromkeys(names):
        row = session.execute(
            select(model).where(model.name == name).order_by(model.started_at.desc()).limit(1)
        ).scalar_one_or_none()
        if row is not None:
            found[name] = RunView.of(row)
    return found


def run_for_task(session: Session, model: type, task_id: str) -> RunView | None:
    """The latest recorded run of one Celery task id (a redelivered task runs again)."""
    row = session.execute(
        select(model).where(model.task_id == task_id).order_by(model.id.desc()).limit(1)
    ).scalar_one_or_none()
    return None if row is None else RunView.of(row)


# Health samples ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """What changed since the sample before: components that went down, ones that recovered."""

    status: str
    down: list[str] = field(default_factory=list)
    newly_down: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)


def _down_in(components: dict[str, Any] | None) -> set[str]:
    return {n for n, c in (components or {}).items() if (c or {}).get("status") == DOWN}


def record_sample(
    session: Session, model: type, report: HealthReport, *, at: datetime | None = None
) -> Transition:
    """Keep `report` as a sample; what went down or recovered since the last one."""
    previous = session.execute(
        select(model.components).order_by(model.id.desc()).limit(1)
    ).scalar_one_or_none()
    before, now_down = _down_in(previous), set(report.down)
    session.add(model(at=at or report.checked_at, status=report.status, components=report.states()))
    session.flush()
    return Transition(
        report.status,
        sorted(now_down),
        sorted(now_down - before),
        sorted(before - now_down) if previous is not None else [],
    )


def components_down_since(session: Session, model: type, *, page: int = 500) -> dict[str, datetime]:
    """Each component down in the latest sample, with the time of the first sample of its
    current unbroken run of `down` samples (the flag the notifications use)."""
    since: dict[str, datetime] = {}
    open_: set[str] | None = None
    last_id: int | None = None
    while open_ is None or open_:
        query = select(model.id, model.at, model.components).order_by(model.id.desc()).limit(page)
        if last_id is not None:
            query = query.where(model.id < last_id)
        rows = session.execute(query).all()
        for row in rows:
            down_here = _down_in(row.components)
            if open_ is None:
                open_ = set(down_here)
            for name in list(open_):
                if name in down_here:
                    since[name] = row.at
                else:
                    open_.discard(name)
            if not open_:
                break
        if len(rows) < page:
            break
        last_id = rows[-1].id
    return since


# Bounds -----------------------------------------------------------------------------------


def trim(
    session: Session,
    *,
    task_model: type,
    sample_model: type,
    task_days: int,
    task_runs_per_name: int,
    sample_days: int,
    now: datetime | None = None,
) -> dict[str, int]:
    """Drop runs older than `task_days` and all but the last `task_runs_per_name` of each
    task, samples older than `sample_days`; mark runs started long ago and never ended as
    `lost`. The counts of each."""
    now = now or utcnow()
    quiet = {"synchronize_session": False}
    lost = session.execute(
        update(task_model)
        .where(task_model.outcome == STARTED, task_model.started_at < now - LOST_AFTER)
        .values(outcome=LOST, error="never finished: its worker stopped or was killed")
        .execution_options(**quiet)
    ).rowcount
    old_runs = session.execute(
        delete(task_model)
        .where(task_model.started_at < now - timedelta(days=task_days))
        .execution_options(**quiet)
    ).rowcount
    ranked = select(
        task_model.id,
        func.row_number()
        .over(partition_by=task_model.name, order_by=task_model.id.desc())
        .label("rank"),
    ).subquery()
    surplus = select(ranked.c.id).where(ranked.c.rank > task_runs_per_name)
    extra_runs = session.execute(
        delete(task_model).where(task_model.id.in_(surplus)).execution_options(**quiet)
    ).rowcount
    old_samples = session.execute(
        delete(sample_model)
        .where(sample_model.at < now - timedelta(days=sample_days))
        .execution_options(**quiet)
    ).rowcount
    return {
        "task_runs_lost": lost,
        "task_runs_trimmed": old_runs + extra_runs,
        "health_samples_trimmed": old_samples,
    }


__all__ = [
    "FAILURE",
    "LOST",
    "RETRY",
    "STARTED",
    "SUCCESS",
    "TIMEOUT",
    "DatabaseRunRecorder",
    "RunView",
    "Transition",
    "components_down_since",
    "last_runs",
    "record_sample",
    "run_for_task",
    "trim",
    "trim_counts",
]
