"""The response network's notifications: its tables, bound to
`shared.notification_service.NotificationService` (the `notify` task's fan-out, the
operational alerts, a user's in-app notifications)."""

from __future__ import annotations

from response_network.models import (
    Alert,
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
from shared.notification_service import NotificationService

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

SERVICE = NotificationService(TABLES, alert=Alert, task_run=TaskRun, network="response")

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
