"""The response network's queues and tasks for admins (`shared.queue_admin` does the work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from response_network.models import AuditLog, TaskRun
from response_network.schedule import QUEUES, beat
from response_network.settings import ResponseSettings
from shared import queue_admin


def plane(settings: ResponseSettings) -> queue_admin.TaskPlane:
    """This network's queues, its beat schedule (cadences as `settings` set them) and tables."""
    return queue_admin.TaskPlane(
        network="response",
        queues=QUEUES,
        beat=beat(settings.beat_seconds),
        task_model=TaskRun,
        audit_model=AuditLog,
    )


def queues_view(settings: ResponseSettings) -> dict[str, Any]:
    return queue_admin.queues_view(settings, plane(settings))


def run_now(settings: ResponseSettings, name: str, *, session: Session, actor: str) -> dict:
    return queue_admin.run_now(settings, plane(settings), name, session=session, actor=actor)


def task_status(settings: ResponseSettings, task_id: str) -> dict[str, Any]:
    return queue_admin.task_status(settings, plane(settings), task_id)


def purge(
    settings: ResponseSettings, queue: str, *, confirm: str, session: Session, actor: str
) -> dict[str, Any]:
    return queue_admin.purge(
        settings, plane(settings), queue, confirm=confirm, session=session, actor=actor
    )
