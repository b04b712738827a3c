"""The request network's notifications (`shared.notifications` does the work): its tables, the
fan-out the `notify` task runs, and a user's in-app notifications."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from request_network.models import (
    Alert,
    ApiKey,
    Notification,
    NotificationCondition,
    NotificationDelivery,
    NotificationEvent,
    TaskRun,
    User,
    WebhookAttempt,
    WebhookEndpoint,
)
from shared import alerts, notifications
from shared.db import utcnow
from shared.problems import Problem
from shared.security.clock import as_utc

TABLES = notifications.Tables(
    event=NotificationEvent,
    notification=Notification,
    condition=NotificationCondition,
    delivery=NotificationDelivery,
    user=User,
    after=alerts.tracker(Alert),  # operational events open and resolve alerts
    webhook_endpoint=WebhookEndpoint,  # webhooks (services.webhooks)
    webhook_attempt=WebhookAttempt,
)


#: The import's quarantine hook: operators hear of each quarantined batch.
ON_QUARANTINE = notifications.on_quarantine(TABLES)
#: The import's gap hook: operators hear of a batch that arrived ahead of its sequence.
ON_GAP = notifications.on_gap(TABLES)


def emit(session: Session, kind: str, **event: Any) -> str | None:
    return notifications.emit(session, TABLES, kind, **event)


def emit_for_users(session: Session, kind: str, items: list[dict[str, Any]]) -> int:
    return notifications.emit_for_users(session, TABLES, kind, items)


def clear(session: Session, dedup_key: str, **event: Any) -> str | None:
    return notifications.clear(session, TABLES, dedup_key, **event)


def health_alerts(report: Any, *, session: Session) -> None:
    notifications.health_alerts(session, TABLES, report, network="request")


def operational_alerts(
    report: Any, *, session: Session, task_names: list[str], min_free_mb: int
) -> dict[str, dict[str, int]]:
    """Admins and operators hear of what the detailed health and the task history show
    wrong, once while it lasts, and when it clears: components down, tasks failing
    repeatedly, transfer directories short of space."""
    notifications.health_alerts(session, TABLES, report, network="request")
    tasks = notifications.failing_tasks(session, TaskRun, task_names)
    disk = notifications.low_disk(report, min_free_mb=min_free_mb)
    return {
        "task.failing": notifications.reconcile(
            session, TABLES, "task.failing", tasks, resolved=lambda k: f"{k} succeeds again"
        ),
        "disk.low": notifications.reconcile(
            session, TABLES, "disk.low", disk, resolved=lambda k: f"Disk space in {k} is back"
        ),
    }


def unacked_batches(flagged: list[dict[str, Any]], *, session: Session) -> dict[str, int]:
    """Operators hear of each batch unacknowledged past the threshold, and when it is."""
    found = [
        notifications.Condition(
            key=item["file"],
            title=f"Batch {item['file']} unacknowledged for {item['age_seconds'] / 3600:.1f} h",
            data={k: item[k] for k in ("file", "stream", "seq", "age_seconds")},
        )
        for item in flagged
    ]
    return notifications.reconcile(
        session,
        TABLES,
        "batch.unacknowledged",
        found,
        resolved=lambda k: f"Batch {k} acknowledged",
    )


def api_key_rotated(key: Any, *, user_id: str, until: datetime | None, session: Session) -> None:
    emit(
        session,
        "api_key.rotated",
        user_id=user_id,
        title=f"API key {key.name!r} was rotated",
        body=f"its previous secret works until {until.isoformat()}" if until else "",
        data={"key_id": key.key_id, "previous_valid_until": until.isoformat() if until else None},
    )


def expiring_keys(*, session: Session, within: timedelta) -> dict[str, int]:
    """Each owner hears once of a key that expires within `within` (and when it no longer
    does: renewed, revoked or gone)."""
    now = utcnow()
    keys = session.scalars(
        select(ApiKey).where(
            ApiKey.revoked_at.is_(None),
            ApiKey.expires_at.is_not(None),
            ApiKey.expires_at > now,
            ApiKey.expires_at <= now + within,
        )
    ).all()
    found = [
        notifications.Condition(
            key=k.key_id,
            title=f"API key {k.name!r} expires on {as_utc(k.expires_at):%Y-%m-%d %H:%M} UTC",
            data={"key_id": k.key_id, "expires_at": as_utc(k.expires_at).isoformat()},
            user_id=k.user_id,
        )
        for k in keys
    ]
    return notifications.reconcile(
        session,
        TABLES,
        "api_key.expiring",
        found,
        resolved=lambda k: f"API key {k} no longer about to expire (renewed, revoked or expired)",
    )


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


def escalate(settings: Any, *, session: Session, minutes: int) -> int:
    """Unacknowledged alerts go to their next level (`shared.alerts.escalate`)."""
    return alerts.escalate(
        session,
        TABLES,
        Alert,
        after=timedelta(minutes=minutes),
        levels=settings.notification_escalation_levels,
        oncall=settings.notification_oncall_emails,
    )


def alert_page(
    *, session: Session, state: str | None, limit: int, offset: int, sort: str = "-opened_at"
):
    return alerts.page(session, Alert, state=state, limit=limit, offset=offset, sort=sort)


def acknowledge(alert_id: int, *, session: Session, actor: str) -> Any:
    return alerts.acknowledge(session, Alert, alert_id, actor=actor)
