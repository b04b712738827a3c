"""Admin: Celery queues, workers and the beat schedule; run a scheduled task now, read a
task's state, purge a queue (audited). The routes are `shared.queue_admin_api`'s."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from response_network.api.deps import Caller, caller
from response_network.services import queues
from shared.queue_admin_api import build_router

router = build_router(Annotated[Caller, Depends(caller("admin"))], queues.SERVICE)
