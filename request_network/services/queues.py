"""The request network's queues and tasks for admins (`shared.queue_admin` does the work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from request_network.models import AuditLog, TaskRun
from request_network.schedule import QUEUES, beat
from request_network.settings import RequestSettings
from shared import queue_admin


def plane(settings: RequestSettings) -> queue_admin.TaskPlane:
    """This network's queues, its beat schedule (cadences as `settings` set them) and tables."""
    return queue_admin.TaskPlane(
        network="request",
        queues=QUEUES,
        beat=beat(settings.beat_seconds),
        task_model=TaskRun,
        audit_model=AuditLog,
    )


def queues_view(settings: RequestSettings) -> dict[str, Any]:
    return queue_admin.queues_view(settings, plane(settings))


def run_now(settings: RequestSettings, name: str, *, session: Session, actor: str) -> dict:
    return queue_admin.run_now(settings, plane(settings), name, session=session, actor=actor)


def task_status(settings: RequestSettings, task_id: str) -> dict[str, Any]:
    return queue_admin.task_status(settings, plane(settings), task_id)


def purge(
    settings: RequestSettings, queue: str, *, confirm: str, session: Session, actor: str
) -> dict[str, Any]:
    return queue_admin.purge(
        settings, plane(settings), queue, confirm=confirm, session=session, actor=actor
    )
