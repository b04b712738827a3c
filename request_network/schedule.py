"""The request network's Celery queue and beat schedule.

Plain data, no Celery app: the API reads the schedule (the admin queue view, "run now",
health) without building the worker's app. Each entry is named as the system's users know
it and runs every so many seconds; `FERRY_REQUEST_BEAT_SECONDS` (a JSON object, entry →
seconds) changes a cadence. `tasks.py` builds the app from `beat(settings.beat_seconds)`,
and a test checks that every entry names a registered task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.celery_app import beat_schedule

QUEUE = "ferry.request"
QUEUES = (QUEUE,)  # every queue this network's tasks use

MINUTE, HOUR = 60.0, 3600.0

#: entry → (task, default seconds between runs)
ENTRIES: dict[str, tuple[str, float]] = {
    "export_requests": ("request.export_requests", 30.0),
    "import_results": ("request.import_results", 30.0),
    "users_importer": ("request.users_importer", 2 * MINUTE),
    "settings_importer": ("request.settings_importer", 2 * MINUTE),
    "requeue_unacked": ("request.requeue_unacked", HOUR),
    "flag_unacked": ("request.flag_unacked", HOUR),
    "expire_requests": ("request.expire_requests", HOUR),
    "cache_maintenance": ("request.cache_maintenance", HOUR),
    "system_monitoring": ("request.system_monitoring", 2 * MINUTE),
    "notify": ("request.notify", 10.0),
    "send_emails": ("request.send_emails", 15.0),
    "send_webhooks": ("request.send_webhooks", 10.0),
}

#: Former task names, still registered for one release so that messages queued under them
#: still run: `request.import_batches` imports every waiting batch, whatever its stream.
ALIASES = ("request.import_batches",)


def beat(seconds: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """The beat schedule, with `seconds` (entry → seconds) overriding default cadences."""
    return beat_schedule(ENTRIES, seconds)


BEAT = beat()  # the default schedule
