"""Celery app factory and the house task decorator shared by both networks.

Every house task run is logged, counted in the metrics (`ferry_task_runs_total`,
`ferry_task_duration_seconds`, by task and outcome) and, once the network has named its
recorder (`record_runs_with`), recorded in its `task_runs` table: a row when the run starts,
completed when it ends with the outcome and the counts it returned (`shared.history`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import wraps
from typing import Any, Protocol

from celery import Celery, current_task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.signals import worker_process_init

from shared import tracing
from shared.breaker import configure_from
from shared.db import utcnow
from shared.health import describe_error
from shared.metrics import TASK_RUNS, TASK_SECONDS
from shared.task_logging import install as install_task_logging

log = logging.getLogger("ferry.tasks")

_RECORDER = "ferry_run_recorder"  # the attribute of the Celery app holding its recorder


def beat_schedule(
    entries: Mapping[str, tuple[str, float]], seconds: Mapping[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """A beat schedule from `entries` (entry → (task, default seconds between runs)), with
    `seconds` (entry → seconds) overriding the defaults."""
    cadence = {name: default for name, (_, default) in entries.items()} | dict(seconds or {})
    return {
        name: {"task": task, "schedule": timedelta(seconds=cadence[name])}
        for name, (task, _) in entries.items()
    }


def make_celery(
    name: str,
    *,
    broker: str,
    eager: bool,
    queue: str,
    beat: dict,
    visibility_timeout_s: float = 3600,
) -> Celery:
    """The network's Celery app. Tasks ack late: a task cut off with its worker (SIGKILL, a
    lost host) runs again, on Redis once `visibility_timeout_s` has passed since it was taken
    (FERRY_<NET>_BROKER_VISIBILITY_TIMEOUT_S; docs/OPERATIONS.md, "Stopping processes")."""
    install_task_logging()  # the house log format; task name and id on a task's lines
    backend = "cache+memory://" if broker.startswith("memory://") else broker
    app = Celery(name, broker=broker, backend=backend)
    app.conf.update(
        task_default_queue=queue,
        task_always_eager=eager,
        task_eager_propagates=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": visibility_timeout_s},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        beat_schedule=beat,
        timezone="UTC",
    )
    return app


def network_celery(
    settings: Any,
    *,
    queue: str,
    beat: Callable[[Mapping[str, float]], dict],
    recorder: RunRecorder,
) -> Celery:
    """A network's worker app, as both networks set it up: its circuit breakers' thresholds
    from `settings` (`shared.breaker`), a tracer installed in each worker process (off
    unless configured; an exporter's thread does not survive the fork), the app
    (`make_celery`, named `ferry-<network>`) with the beat schedule at the configured
    cadences, and its task runs recorded with `recorder`."""
    configure_from(settings)

    def start_tracing(**_: object) -> None:
        tracing.setup(f"ferry-{settings.network_id}", settings)

    worker_process_init.connect(start_tracing, weak=False)
    app = make_celery(
        f"ferry-{settings.network_id}",
        broker=settings.celery_broker,
        eager=settings.celery_eager,
        queue=queue,
        beat=beat(settings.beat_seconds),
        visibility_timeout_s=settings.broker_visibility_timeout_s,
    )
    record_runs_with(app, recorder)
    return app


class RunRecorder(Protocol):
    """Where a network keeps its task runs (`shared.history.DatabaseRunRecorder`)."""

    def started(self, *, name: str, task_id: str | None, worker: str | None, at: Any) -> Any: ...

    def finished(self, token: Any, **run: Any) -> None: ...


def record_runs_with(app: Celery, recorder: RunRecorder) -> None:
    """From now on every house task of `app` records its runs with `recorder`."""
    setattr(app, _RECORDER, recorder)


def _identity() -> tuple[str | None, str | None]:
    """The running task's id and worker (None when called as a plain function)."""
    task = current_task
    request = getattr(task, "request", None) if task else None
    return getattr(request, "id", None), getattr(request, "hostname", None)


def house_task(app: Celery, name: str, *, queue: str, soft_time_limit: int = 300) -> Callable:
    """`app.task` with an explicit name, queue, time limits, a log line, metrics and a
    recorded run (see the module's docstring)."""

    def decorate(fn: Callable[..., Any]) -> Any:
        @wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            log.info("task %s started", name)
            recorder: RunRecorder | None = getattr(app, _RECORDER, None)
            task_id, worker = _identity()
            started_at, clock = utcnow(), time.perf_counter()
            token = None
            if recorder is not None:
                token = recorder.started(name=name, task_id=task_id, worker=worker, at=started_at)
            outcome, result, error = "failure", None, None
            try:
                result = fn(*args, **kwargs)
                outcome = "success"
                log.info("task %s done: %s", name, result)
                return result
            except SoftTimeLimitExceeded as exc:
                outcome, error = "timeout", f"soft time limit of {soft_time_limit} s: {exc}"
                raise
            except Retry as exc:
                outcome, error = "retry", describe_error(exc)
                raise
            except BaseException as exc:
                error = describe_error(exc)
                raise
            finally:
                elapsed = time.perf_counter() - clock
                TASK_RUNS.labels(name, outcome).inc()
                TASK_SECONDS.labels(name, outcome).observe(elapsed)
                if recorder is not None:
                    recorder.finished(
                        token,
                        name=name,
                        task_id=task_id,
                        worker=worker,
                        started_at=started_at,
                        finished_at=utcnow(),
                        outcome=outcome,
                        result=result,
                        error=error,
                    )

        return app.task(
            name=name,
            queue=queue,
            soft_time_limit=soft_time_limit,
            time_limit=soft_time_limit + 30,
        )(run)

    return decorate
