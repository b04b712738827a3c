"""The request network's notifications (`shared.notifications` does the work): its tables, the
fan-out the `notify` task runs, and a user's in-app notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from request_network.models import (
    Notification,
    NotificationCondition,
    NotificationDelivery,
    NotificationEvent,
    User,
)
from shared import notifications
from shared.problems import Problem

TABLES = notifications.Tables(
    event=NotificationEvent,
    notification=Notification,
    condition=NotificationCondition,
    delivery=NotificationDelivery,
    user=User,
)


#: The import's quarantine hook: operators hear of each quarantined batch.
ON_QUARANTINE = notifications.on_quarantine(TABLES)


def emit(session: Session, kind: str, **event: Any) -> str | None:
    return notifications.emit(session, TABLES, kind, **event)


def emit_for_users(session: Session, kind: str, items: list[dict[str, Any]]) -> int:
    return notifications.emit_for_users(session, TABLES, kind, items)


def clear(session: Session, dedup_key: str, **event: Any) -> str | None:
    return notifications.clear(session, TABLES, dedup_key, **event)


def health_alerts(report: Any, *, session: Session) -> None:
    notifications.health_alerts(session, TABLES, report, network="request")


def dispatch(*, session: Session) -> dict[str, int]:
    return notifications.dispatch(session, TABLES)


def trim(*, session: Session, older_than: datetime) -> int:
    return notifications.trim(session, TABLES, older_than=older_than)


def page(
    user_id: str, *, session: Session, limit: int, offset: int, unread: bool
) -> tuple[list[Any], int, int]:
    return notifications.page(session, TABLES, user_id, limit=limit, offset=offset, unread=unread)


def mark_read(user_id: str, notification_id: int, *, session: Session) -> Any:
    row = notifications.mark_read(session, TABLES, user_id, notification_id)
    if row is None:
        raise Problem(404, "Not found", f"no notification {notification_id}")
    return row


def mark_all_read(user_id: str, *, session: Session) -> int:
    return notifications.mark_all_read(session, TABLES, user_id)


def newest_id(user_id: str, *, session: Session) -> int:
    return notifications.newest_id(session, TABLES, user_id)


def since(user_id: str, after_id: int, *, session: Session) -> list[Any]:
    return notifications.since(session, TABLES, user_id, after_id)
