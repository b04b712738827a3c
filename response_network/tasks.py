"""Celery tasks of the response network: thin wrappers over `response_network.jobs`.

Each is named as in the beat schedule (`response_network/schedule.py`, plain data the API
reads too) and safe to run twice; the former names in `schedule.ALIASES` stay registered
for one release.
"""

from __future__ import annotations

from datetime import timedelta

from response_network import jobs
from response_network.schedule import QUEUE, beat
from response_network.settings import get_settings
from shared.celery_app import house_task, network_celery

celery = network_celery(get_settings(), queue=QUEUE, beat=beat, recorder=jobs.task_run_recorder())


@house_task(celery, "response.import_requests", queue=QUEUE)
def import_requests() -> dict:
    return jobs.import_inbox(get_settings())


@house_task(celery, "response.query_executor", queue=QUEUE, soft_time_limit=900)
def query_executor() -> dict:
    return jobs.execute(get_settings())


@house_task(celery, "response.export_results", queue=QUEUE)
def export_results() -> dict:
    return jobs.results_exporter(get_settings())


@house_task(celery, "response.users_exporter", queue=QUEUE)
def users_exporter() -> dict:
    return jobs.users_exporter(get_settings())


@house_task(celery, "response.profile_types_exporter", queue=QUEUE)
def profile_types_exporter() -> dict:
    return jobs.profile_types_exporter(get_settings())


@house_task(celery, "response.settings_exporter", queue=QUEUE)
def settings_exporter(full: bool = False) -> dict:
    return jobs.export_settings(get_settings(), full=full)


@house_task(celery, "response.password_sync", queue=QUEUE)
def password_sync() -> dict:
    return jobs.password_sync(get_settings())


@house_task(celery, "response.requeue_stale", queue=QUEUE)
def requeue_stale(minutes: int = 30) -> dict:
    return jobs.requeue(get_settings(), older_than=timedelta(minutes=minutes))


@house_task(celery, "response.reexport_unacked", queue=QUEUE)
def reexport_unacked(hours: int = 24) -> dict:
    return jobs.reexport(get_settings(), older_than=timedelta(hours=hours))


@house_task(celery, "response.flag_unacked", queue=QUEUE)
def flag_unacked() -> dict:
    return jobs.flag_unacked(get_settings())


@house_task(celery, "response.cache_maintenance", queue=QUEUE)
def cache_maintenance() -> dict:
    return jobs.cache_maintenance(get_settings())


@house_task(celery, "response.system_monitoring", queue=QUEUE)
def system_monitoring() -> dict:
    return jobs.system_monitoring(get_settings())


@house_task(celery, "response.notify", queue=QUEUE)
def notify() -> dict:
    return jobs.notify(get_settings())


@house_task(celery, "response.send_emails", queue=QUEUE, soft_time_limit=600)
def send_emails() -> dict:
    return jobs.send_emails(get_settings())


@house_task(celery, "response.send_webhooks", queue=QUEUE, soft_time_limit=600)
def send_webhooks() -> dict:
    return jobs.send_webhooks(get_settings())


# -- former names (schedule.ALIASES), kept for one release ---------------------------------


@house_task(celery, "response.execute", queue=QUEUE, soft_time_limit=900)
def execute() -> dict:
    return jobs.execute(get_settings())


@house_task(celery, "response.export", queue=QUEUE)
def export() -> dict:
    return jobs.export(get_settings())
