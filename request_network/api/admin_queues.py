"""Admin: Celery queues, workers and the beat schedule; run a scheduled task now, read a
task's state, purge a queue (audited). The routes are `shared.queue_admin_api`'s."""

from __future__ import annotations

from request_network.api.deps import AdminDep
from request_network.services import queues
from shared.queue_admin_api import build_router

router = build_router(AdminDep, queues.SERVICE)
