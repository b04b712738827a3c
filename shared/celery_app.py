"""Celery app factory and the house task decorator shared by both networks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import Celery

log = logging.getLogger("ferry.tasks")


def make_celery(name: str, *, broker: str, eager: bool, queue: str, beat: dict) -> Celery:
    backend = "cache+memory://" if broker.startswith("memory://") else broker
    app = Celery(name, broker=broker, backend=backend)
    app.conf.update(
        task_default_queue=queue,
        task_always_eager=eager,
        task_eager_propagates=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        beat_schedule=beat,
        timezone="UTC",
    )
    return app


def house_task(app: Celery, name: str, *, queue: str, soft_time_limit: int = 300) -> Callable:
    """`app.task` with an explicit name, queue, time limits and a log line per run."""

    def decorate(fn: Callable[..., Any]) -> Any:
        @wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            log.info("task %s started", name)
            result = fn(*args, **kwargs)
            log.info("task %s done: %s", name, result)
            return result

        return app.task(
            name=name,
            queue=queue,
            soft_time_limit=soft_time_limit,
            time_limit=soft_time_limit + 30,
        )(run)

    return decorate
