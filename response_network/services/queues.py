"""The response network's queues and tasks for admins (`shared.queue_admin` does the work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from response_network.models import AuditLog, TaskRun
from response_network.schedule import BEAT, QUEUES
from response_network.settings import ResponseSettings
from shared import queue_admin

PLANE = queue_admin.TaskPlane(
    network="response", queues=QUEUES, beat=BEAT, task_model=TaskRun, audit_model=AuditLog
)


def queues_view(settings: ResponseSettings) -> dict[str, Any]:
    return queue_admin.queues_view(settings, PLANE)


def run_now(settings: ResponseSettings, name: str, *, session: Session, actor: str) -> dict:
    return queue_admin.run_now(settings, PLANE, name, session=session, actor=actor)


def task_status(settings: ResponseSettings, task_id: str) -> dict[str, Any]:
    return queue_admin.task_status(settings, PLANE, task_id)


def purge(
    settings: ResponseSettings, queue: str, *, confirm: str, session: Session, actor: str
) -> dict[str, Any]:
    return queue_admin.purge(settings, PLANE, queue, confirm=confirm, session=session, actor=actor)
