"""The response network's Celery queue and beat schedule.

Plain data, no Celery app: the API reads the schedule (the admin queue view, "run now")
without building the worker's app, whose settings it may not have. `tasks.py` builds the app
from it, and a test checks that every entry names a registered task.
"""

from __future__ import annotations

from celery.schedules import crontab

QUEUE = "ferry.response"
QUEUES = (QUEUE,)  # every queue this network's tasks use

BEAT = {
    "import-requests": {"task": "response.import_requests", "schedule": crontab(minute="*")},
    "execute-queued": {"task": "response.execute", "schedule": crontab(minute="*")},
    "export-results": {"task": "response.export", "schedule": crontab(minute="*")},
    "requeue-stale": {"task": "response.requeue_stale", "schedule": crontab(minute=17)},
    "flag-unacked": {"task": "response.flag_unacked", "schedule": crontab(minute=47)},
    "reexport-unacked": {"task": "response.reexport_unacked", "schedule": crontab(minute=37)},
    "system_monitoring": {
        "task": "response.system_monitoring",
        "schedule": crontab(minute="*/2"),
    },
}
