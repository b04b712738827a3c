"""Celery tasks of the request network: thin wrappers over `request_network.jobs`.

Each is named as in the beat schedule (`request_network/schedule.py`, plain data the API
reads too) and safe to run twice; the former names in `schedule.ALIASES` stay registered
for one release.
"""

from __future__ import annotations

from datetime import timedelta

from celery.signals import worker_process_init

from request_network import jobs
from request_network.schedule import QUEUE, beat
from request_network.settings import get_settings
from shared import tracing
from shared.breaker import configure_from as configure_breakers
from shared.celery_app import house_task, make_celery, record_runs_with

_settings = get_settings()
configure_breakers(_settings)  # shared.breaker: this worker's thresholds


@worker_process_init.connect
def _start_tracing(**_: object) -> None:
    """Each worker process installs its own tracer (off unless configured): a span
    exporter's thread does not survive the fork."""
    tracing.setup(f"ferry-{_settings.network_id}", _settings)


celery = make_celery(
    "ferry-request",
    broker=_settings.celery_broker,
    eager=_settings.celery_eager,
    queue=QUEUE,
    beat=beat(_settings.beat_seconds),
    visibility_timeout_s=_settings.broker_visibility_timeout_s,
)
record_runs_with(celery, jobs.task_run_recorder())


@house_task(celery, "request.export_requests", queue=QUEUE)
def export_requests() -> dict:
    return jobs.export(get_settings())


@house_task(celery, "request.import_results", queue=QUEUE)
def import_results() -> dict:
    return jobs.import_results(get_settings())


@house_task(celery, "request.users_importer", queue=QUEUE)
def users_importer() -> dict:
    return jobs.import_identity(get_settings())


@house_task(celery, "request.settings_importer", queue=QUEUE)
def settings_importer() -> dict:
    return jobs.import_settings(get_settings())


@house_task(celery, "request.requeue_unacked", queue=QUEUE)
def requeue_unacked(hours: int = 24) -> dict:
    return jobs.requeue_unacked(get_settings(), older_than=timedelta(hours=hours))


@house_task(celery, "request.flag_unacked", queue=QUEUE)
def flag_unacked() -> dict:
    return jobs.flag_unacked(get_settings())


@house_task(celery, "request.expire_requests", queue=QUEUE)
def expire_requests() -> dict:
    return jobs.expire_requests(get_settings())


@house_task(celery, "request.cache_maintenance", queue=QUEUE)
def cache_maintenance() -> dict:
    return jobs.cache_maintenance(get_settings())


@house_task(celery, "request.system_monitoring", queue=QUEUE)
def system_monitoring() -> dict:
    return jobs.system_monitoring(get_settings())


@house_task(celery, "request.notify", queue=QUEUE)
def notify() -> dict:
    return jobs.notify(get_settings())


@house_task(celery, "request.send_emails", queue=QUEUE, soft_time_limit=600)
def send_emails() -> dict:
    return jobs.send_emails(get_settings())


@house_task(celery, "request.send_webhooks", queue=QUEUE, soft_time_limit=600)
def send_webhooks() -> dict:
    return jobs.send_webhooks(get_settings())


# -- former names (schedule.ALIASES), kept for one release ---------------------------------


@house_task(celery, "request.import_batches", queue=QUEUE)
def import_batches() -> dict:
    return jobs.import_inbox(get_settings())
