"""The request network's notifications: its tables, bound to
`shared.notification_service.NotificationService` (the `notify` task's fan-out, the
operational alerts, a user's in-app notifications)."""

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
from shared.notification_service import NotificationService
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

SERVICE = NotificationService(TABLES, alert=Alert, task_run=TaskRun, network="request")

#: The import's quarantine hook: operators hear of each quarantined batch.
ON_QUARANTINE = SERVICE.on_quarantine
#: The import's gap hook: operators hear of a batch that arrived ahead of its sequence.
ON_GAP = SERVICE.on_gap

emit = SERVICE.emit
emit_for_users = SERVICE.emit_for_users
clear = SERVICE.clear
health_alerts = SERVICE.health_alerts
operational_alerts = SERVICE.operational_alerts
unacked_batches = SERVICE.unacked_batches
dispatch = SERVICE.dispatch
trim = SERVICE.trim
page = SERVICE.page
mark_read = SERVICE.mark_read
mark_all_read = SERVICE.mark_all_read
newest_id = SERVICE.newest_id
since = SERVICE.since
escalate = SERVICE.escalate
alert_page = SERVICE.alert_page
acknowledge = SERVICE.acknowledge


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
    return SERVICE.reconcile(
        session,
        "api_key.expiring",
        found,
        lambda k: f"API key {k} no longer about to expire (renewed, revoked or expired)",
    )
