"""Celery tasks of the request network: thin wrappers over `request_network.jobs`."""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab

from request_network import jobs
from request_network.settings import get_settings
from shared.celery_app import house_task, make_celery

QUEUE = "ferry.request"

BEAT = {
    "export-requests": {"task": "request.export_requests", "schedule": crontab(minute="*")},
    "import-batches": {"task": "request.import_batches", "schedule": crontab(minute="*")},
    "requeue-unacked": {"task": "request.requeue_unacked", "schedule": crontab(minute=7)},
    "flag-unacked": {"task": "request.flag_unacked", "schedule": crontab(minute=37)},
}

_settings = get_settings()
celery = make_celery(
    "ferry-request",
    broker=_settings.celery_broker,
    eager=_settings.celery_eager,
    queue=QUEUE,
    beat=BEAT,
)


@house_task(celery, "request.export_requests", queue=QUEUE)
def export_requests() -> dict:
    return jobs.export(get_settings())


@house_task(celery, "request.import_batches", queue=QUEUE)
def import_batches() -> dict:
    return jobs.import_inbox(get_settings())


@house_task(celery, "request.requeue_unacked", queue=QUEUE)
def requeue_unacked(hours: int = 24) -> dict:
    return jobs.requeue_unacked(get_settings(), older_than=timedelta(hours=hours))


@house_task(celery, "request.flag_unacked", queue=QUEUE)
def flag_unacked() -> dict:
    return jobs.flag_unacked(get_settings())
