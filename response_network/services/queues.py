"""The response network's queues and tasks for admins: `shared.queue_admin` bound to its
queues, beat schedule and tables."""

from __future__ import annotations

from response_network.models import AuditLog, TaskRun
from response_network.schedule import QUEUES, beat
from shared.queue_admin import QueueService

SERVICE = QueueService(
    network="response", queues=QUEUES, beat=beat, task_model=TaskRun, audit_model=AuditLog
)

plane = SERVICE.plane
queues_view = SERVICE.queues_view
run_now = SERVICE.run_now
task_status = SERVICE.task_status
purge = SERVICE.purge
