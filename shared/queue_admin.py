"""Queues and tasks for admins, the same on both networks (each passes its `TaskPlane`).

- `queues_view`: each queue's depth on the broker, each worker's active, reserved and
  scheduled tasks (no worker answering is an answer), and the beat schedule with each
  entry's last run, its outcome and its next run;
- `run_now`: enqueue one task of the beat schedule now (audited);
- `task_status`: a task's state from the result backend and its recorded run;
- `purge`: empty one queue, only when `confirm` repeats its name (audited).

The broker is asked through `shared.celery_control`, with `health_worker_timeout_s`; the
database is read in units of its own (`shared.db.reading`), concurrently with the broker, so
no database connection waits on the broker. Writes (the audit rows) happen in the caller's
unit of work (`session`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session

from shared import audit, celery_control, history
from shared.db import reading, utcnow
from shared.health import describe_error, run_concurrently
from shared.health_probes import beat_entries
from shared.problems import Problem
from shared.settings import FerrySettings

log = logging.getLogger("ferry.api")

#: What a task's recorded run says of its state, when the result backend knows nothing.
RUN_STATES = {
    history.STARTED: "STARTED",
    history.SUCCESS: "SUCCESS",
    history.FAILURE: "FAILURE",
    history.TIMEOUT: "FAILURE",
    history.RETRY: "RETRY",
    history.LOST: "FAILURE",
}


@dataclass(frozen=True)
class TaskPlane:
    """One network's queues, beat schedule and the tables its task history and audit use."""

    network: str
    queues: tuple[str, ...]
    beat: Mapping[str, Mapping[str, Any]]
    task_model: type
    audit_model: type

    def entry(self, name: str) -> tuple[str, Mapping[str, Any]] | None:
        """The beat entry called `name`, by its key or by its task's name."""
        for key, entry in self.beat.items():
            if name in (key, entry["task"]):
                return key, entry
        return None

    @property
    def default_queue(self) -> str:
        return self.queues[0]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _unavailable(what: str, exc: BaseException) -> Problem:
    log.warning("%s: %s", what, describe_error(exc))
    return Problem(
        503,
        "Service unavailable",
        f"{what}: {describe_error(exc)}",
        headers={"Retry-After": "5"},
    )


def queues_view(settings: FerrySettings, plane: TaskPlane) -> dict[str, Any]:
    broker, wait = settings.celery_broker, settings.health_worker_timeout_s
    tasks = [e["task"] for e in plane.beat.values()]

    def runs() -> dict[str, history.RunView]:
        with reading(settings.database_url) as session:
            return history.last_runs(session, plane.task_model, tasks)

    calls: dict[str, Any] = {"runs": runs}
    in_process = settings.celery_eager or celery_control.is_memory(broker)
    if not in_process:
        calls["depths"] = lambda: celery_control.queue_depths(broker, plane.queues, wait)
        calls["workers"] = lambda: celery_control.inspect_workers(broker, wait)
    outcomes = run_concurrently(calls, wait + 2.0)

    def problem(name: str) -> str:
        outcome = outcomes[name]
        return "no answer in time" if outcome.timed_out else describe_error(outcome.error)

    queues = []
    depths = outcomes["depths"].value if "depths" in outcomes and outcomes["depths"].ok else {}
    for queue in plane.queues:
        depth = depths.get(queue) if depths else None
        error = None
        if in_process:
            error = "tasks run in-process (celery_eager): no broker queue"
        elif not outcomes["depths"].ok:
            error = problem("depths")
        elif not isinstance(depth, int):
            depth, error = None, str(depth)
        queues.append({"name": queue, "depth": depth, "error": error})

    workers: list[dict[str, Any]] = []
    note = None
    if in_process:
        note = "tasks run in-process (celery_eager): no worker"
    elif not outcomes["workers"].ok:
        note = problem("workers")
    else:
        found, errors = outcomes["workers"].value
        workers = [{"name": name, **found[name]} for name in sorted(found)]
        if errors:
            note = "; ".join(errors)
        elif not workers:
            note = f"no worker answered within {wait:g} s"

    last = outcomes["runs"].value if outcomes["runs"].ok else {}
    schedule = [
        {k: _jsonable(v) for k, v in entry.items()}
        for entry in beat_entries(plane.beat, last or {}, utcnow())
    ]
    return {
        "network": plane.network,
        "broker": celery_control.masked(broker),
        "checked_at": utcnow().isoformat(),
        "queues": queues,
        "workers": workers,
        "workers_note": note,
        "schedule": schedule,
        "schedule_note": None if outcomes["runs"].ok else problem("runs"),
    }


def run_now(
    settings: FerrySettings, plane: TaskPlane, name: str, *, session: Session, actor: str
) -> dict[str, Any]:
    """Enqueue the scheduled task `name` (its beat entry's key or task name) now."""
    found = plane.entry(name)
    if found is None:
        raise Problem(404, "Not found", f"no task called {name!r} in the beat schedule")
    key, entry = found
    if settings.celery_eager:
        raise Problem(409, "Conflict", "tasks run in-process (celery_eager): there is no worker")
    queue = entry.get("options", {}).get("queue", plane.default_queue)
    audit.record(
        session,
        plane.audit_model,
        actor=actor,
        action="task.run_now",
        target=entry["task"],
        detail={"entry": key, "queue": queue},
    )
    try:
        task_id = celery_control.send_task(
            settings.celery_broker, entry["task"], queue, settings.health_worker_timeout_s
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure is a 503 (audit rolls back)
        raise _unavailable("the task could not be sent to the broker", exc) from exc
    return {"task_id": task_id, "task": entry["task"], "entry": key, "queue": queue}


def task_status(settings: FerrySettings, plane: TaskPlane, task_id: str) -> dict[str, Any]:
    """The result backend's state and the task's recorded run; PENDING when neither knows
    the id (Celery cannot tell an unknown id from one still waiting in its queue)."""
    wait = settings.health_worker_timeout_s

    def run() -> history.RunView | None:
        with reading(settings.database_url) as session:
            return history.run_for_task(session, plane.task_model, task_id)

    calls: dict[str, Any] = {"run": run}
    if not settings.celery_eager:
        calls["backend"] = lambda: celery_control.task_state(settings.celery_broker, task_id, wait)
    outcomes = run_concurrently(calls, wait + 1.0)
    if not outcomes["run"].ok:
        error = outcomes["run"].error or TimeoutError(f"no answer within {wait + 1.0:g} s")
        raise _unavailable("the task history could not be read", error)
    recorded = outcomes["run"].value
    backend = outcomes.get("backend")
    state, result, backend_error = None, None, None
    if backend is not None and backend.ok:
        state, result = backend.value
    elif backend is not None:
        backend_error = "no answer in time" if backend.timed_out else describe_error(backend.error)
    if (state in (None, "PENDING")) and recorded is not None:
        state = RUN_STATES.get(recorded.outcome, "PENDING")
    return {
        "task_id": task_id,
        "state": state or "PENDING",
        "result": history.trim_counts(result) if state == "SUCCESS" else None,
        "backend_error": backend_error,
        "run": None
        if recorded is None
        else {k: _jsonable(v) for k, v in recorded.__dict__.items() if k != "id"},
    }


def purge(
    settings: FerrySettings,
    plane: TaskPlane,
    queue: str,
    *,
    confirm: str,
    session: Session,
    actor: str,
) -> dict[str, Any]:
    """Delete every message waiting in `queue`; `confirm` must repeat its name."""
    if queue not in plane.queues:
        raise Problem(404, "Not found", f"no queue called {queue!r} on this network")
    if confirm != queue:
        raise Problem(409, "Conflict", f"to purge, repeat the queue's name: ?confirm={queue}")
    try:
        purged = celery_control.purge_queue(
            settings.celery_broker, queue, settings.health_worker_timeout_s
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure is a 503
        raise _unavailable("the queue could not be purged", exc) from exc
    audit.record(
        session,
        plane.audit_model,
        actor=actor,
        action="queue.purged",
        target=queue,
        detail={"purged": purged, "broker": celery_control.masked(settings.celery_broker)},
    )
    log.warning("queue %s purged by %s: %d messages", queue, actor, purged)
    return {"queue": queue, "purged": purged}


def queue_depth_metric(settings: FerrySettings, plane: TaskPlane) -> list[GaugeMetricFamily]:
    """`ferry_queue_depth{queue}` read now (nothing when the broker cannot be read)."""
    if settings.celery_eager or celery_control.is_memory(settings.celery_broker):
        return []
    depths = celery_control.queue_depths(
        settings.celery_broker, plane.queues, settings.health_worker_timeout_s
    )
    family = GaugeMetricFamily(
        "ferry_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
    )
    for queue, depth in depths.items():
        if isinstance(depth, int):
            family.add_metric([queue], depth)
    return [family]


class QueueService:
    """The functions above bound to one network: its name, queues, beat schedule (`beat`
    builds it from the cadences in `settings.beat_seconds`) and tables. Each network's
    `services.queues` is one of these."""

    def __init__(
        self,
        *,
        network: str,
        queues: tuple[str, ...],
        beat: Callable[[Any], Mapping[str, Mapping[str, Any]]],
        task_model: type,
        audit_model: type,
    ) -> None:
        self._plane = {
            "network": network,
            "queues": queues,
            "task_model": task_model,
            "audit_model": audit_model,
        }
        self._beat = beat

    def plane(self, settings: FerrySettings) -> TaskPlane:
        """The queues, the beat schedule (cadences as `settings` set them) and the tables."""
        return TaskPlane(beat=self._beat(settings.beat_seconds), **self._plane)

    def queues_view(self, settings: FerrySettings) -> dict[str, Any]:
        return queues_view(settings, self.plane(settings))

    def run_now(self, settings: FerrySettings, name: str, *, session: Session, actor: str) -> dict:
        return run_now(settings, self.plane(settings), name, session=session, actor=actor)

    def task_status(self, settings: FerrySettings, task_id: str) -> dict[str, Any]:
        return task_status(settings, self.plane(settings), task_id)

    def purge(
        self, settings: FerrySettings, queue: str, *, confirm: str, session: Session, actor: str
    ) -> dict[str, Any]:
        return purge(
            settings, self.plane(settings), queue, confirm=confirm, session=session, actor=actor
        )

    def depth_metric(self, settings: FerrySettings) -> list[GaugeMetricFamily]:
        return queue_depth_metric(settings, self.plane(settings))


__all__ = [
    "QueueService",
    "TaskPlane",
    "purge",
    "queue_depth_metric",
    "queues_view",
    "run_now",
    "task_status",
]
