"""Celery tasks of the request network: thin wrappers over `request_network.jobs`."""

from __future__ import annotations

from datetime import timedelta

from request_network import jobs
from request_network.schedule import BEAT, QUEUE
from request_network.settings import get_settings
from shared.celery_app import house_task, make_celery, record_runs_with

# The queue and the beat schedule live in request_network/schedule.py (plain data the API
# reads too).

_settings = get_settings()
celery = make_celery(
    "ferry-request",
    broker=_settings.celery_broker,
    eager=_settings.celery_eager,
    queue=QUEUE,
    beat=BEAT,
)
record_runs_with(celery, jobs.task_run_recorder())


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


@house_task(celery, "request.system_monitoring", queue=QUEUE)
def system_monitoring() -> dict:
    return jobs.system_monitoring(get_settings())


@house_task(celery, "request.cache_maintenance", queue=QUEUE)
def cache_maintenance() -> dict:
    return jobs.cache_maintenance(get_settings())
