"""Celery tasks of the response network: thin wrappers over `response_network.jobs`."""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab

from response_network import jobs
from response_network.settings import get_settings
from shared.celery_app import house_task, make_celery

QUEUE = "ferry.response"

BEAT = {
    "import-requests": {"task": "response.import_requests", "schedule": crontab(minute="*")},
    "execute-queued": {"task": "response.execute", "schedule": crontab(minute="*")},
    "export-results": {"task": "response.export", "schedule": crontab(minute="*")},
    "requeue-stale": {"task": "response.requeue_stale", "schedule": crontab(minute=17)},
    "flag-unacked": {"task": "response.flag_unacked", "schedule": crontab(minute=47)},
    "reexport-unacked": {"task": "response.reexport_unacked", "schedule": crontab(minute=37)},
}

_settings = get_settings()
celery = make_celery(
    "ferry-response",
    broker=_settings.celery_broker,
    eager=_settings.celery_eager,
    queue=QUEUE,
    beat=BEAT,
)


@house_task(celery, "response.import_requests", queue=QUEUE)
def import_requests() -> dict:
    return jobs.import_inbox(get_settings())


@house_task(celery, "response.execute", queue=QUEUE, soft_time_limit=900)
def execute() -> dict:
    return jobs.execute(get_settings())


@house_task(celery, "response.export", queue=QUEUE)
def export() -> dict:
    return jobs.export(get_settings())


@house_task(celery, "response.requeue_stale", queue=QUEUE)
def requeue_stale(minutes: int = 30) -> dict:
    return jobs.requeue(get_settings(), older_than=timedelta(minutes=minutes))


@house_task(celery, "response.reexport_unacked", queue=QUEUE)
def reexport_unacked(hours: int = 24) -> dict:
    return jobs.reexport(get_settings(), older_than=timedelta(hours=hours))


@house_task(celery, "response.flag_unacked", queue=QUEUE)
def flag_unacked() -> dict:
    return jobs.flag_unacked(get_settings())
