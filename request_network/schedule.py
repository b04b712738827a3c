"""The request network's Celery queue and beat schedule.

Plain data, no Celery app: the API reads the schedule (the admin queue view, "run now")
without building the worker's app, whose settings it may not have. `tasks.py` builds the app
from it, and a test checks that every entry names a registered task.
"""

from __future__ import annotations

from celery.schedules import crontab

QUEUE = "ferry.request"
QUEUES = (QUEUE,)  # every queue this network's tasks use

BEAT = {
    "export-requests": {"task": "request.export_requests", "schedule": crontab(minute="*")},
    "import-batches": {"task": "request.import_batches", "schedule": crontab(minute="*")},
    "requeue-unacked": {"task": "request.requeue_unacked", "schedule": crontab(minute=7)},
    "flag-unacked": {"task": "request.flag_unacked", "schedule": crontab(minute=37)},
    "cache_maintenance": {"task": "request.cache_maintenance", "schedule": crontab(minute=17)},
    "system_monitoring": {
        "task": "request.system_monitoring",
        "schedule": crontab(minute="*/2"),
    },
}
