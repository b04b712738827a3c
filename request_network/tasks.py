"""Celery tasks of the request network: thin wrappers over `request_network.jobs`.

Each is named as in the beat schedule (`request_network/schedule.py`, plain data the API
reads too) and safe to run twice; the former names in `schedule.ALIASES` stay registered
for one release.
"""

from __future__ import annotations

from datetime import timedelta

from request_network import jobs
from request_network.schedule import QUEUE, beat
from request_network.settings import get_settings
from shared.celery_app import house_task, network_celery

celery = network_celery(get_settings(), queue=QUEUE, beat=beat, recorder=jobs.task_run_recorder())


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
