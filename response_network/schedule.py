"""The response network's Celery queue and beat schedule.

Plain data, no Celery app: the API reads the schedule (the admin queue view, "run now",
health) without building the worker's app. Each entry is named as the system's users know
it and runs every so many seconds; `FERRY_RESPONSE_BEAT_SECONDS` (a JSON object, entry →
seconds) changes a cadence. `tasks.py` builds the app from `beat(settings.beat_seconds)`,
and a test checks that every entry names a registered task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.celery_app import beat_schedule

QUEUE = "ferry.response"
QUEUES = (QUEUE,)  # every queue this network's tasks use

MINUTE, HOUR = 60.0, 3600.0

#: entry → (task, default seconds between runs)
ENTRIES: dict[str, tuple[str, float]] = {
    "import_requests": ("response.import_requests", 30.0),
    "query_executor": ("response.query_executor", MINUTE),
    "export_results": ("response.export_results", 30.0),
    "users_exporter": ("response.users_exporter", 2 * MINUTE),
    "profile_types_exporter": ("response.profile_types_exporter", 2 * MINUTE),
    "settings_exporter": ("response.settings_exporter", 2 * MINUTE),
    "password_sync": ("response.password_sync", MINUTE),
    "requeue_stale": ("response.requeue_stale", HOUR),
    "reexport_unacked": ("response.reexport_unacked", HOUR),
    "flag_unacked": ("response.flag_unacked", HOUR),
    "cache_maintenance": ("response.cache_maintenance", HOUR),
    "system_monitoring": ("response.system_monitoring", 2 * MINUTE),
    "notify": ("response.notify", 10.0),
    "send_emails": ("response.send_emails", 15.0),
    "send_webhooks": ("response.send_webhooks", 10.0),
}

#: Former task names, still registered for one release so that messages queued under them
#: still run: `response.execute` is `query_executor`; `response.export` exports users,
#: profile types and results at once.
ALIASES = ("response.execute", "response.export")


def beat(seconds: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """The beat schedule, with `seconds` (entry → seconds) overriding default cadences."""
    return beat_schedule(ENTRIES, seconds)


BEAT = beat()  # the default schedule
