"""The operational jobs the two networks run alike, over the services each passes in:
`system_monitoring` (sample the health, alert on what is wrong, bound the histories) and
`notify` (fan events out, escalate alerts, drop old notifications)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared.db import transaction, utcnow

log = logging.getLogger("ferry.health")


def system_monitoring(
    settings: Any,
    *,
    health: Any,
    notifications: Any,
    task_names: list[str],
    more_alerts: Callable[[Session], dict[str, dict[str, int]]] | None = None,
) -> dict:
    """Sample the detailed health (`health.detailed_health`), keep the sample, log what went
    down or recovered since the last one, alert admins and operators of what is wrong
    (`notifications.operational_alerts`, and `more_alerts` of the network's own; once
    while it lasts, resolved when it clears), and bound the task-run and health-sample
    histories."""
    report = health.detailed_health(settings)
    with transaction(settings.database_url) as session:
        change = health.record_sample(report, session=session)
        alerts = notifications.operational_alerts(
            report,
            session=session,
            task_names=task_names,
            min_free_mb=settings.health_min_free_mb,
        )
        if more_alerts is not None:
            alerts.update(more_alerts(session))
        trimmed = health.trim_history(settings, session=session)
    for name in change.newly_down:
        log.error("%s is down: %s", name, report.component(name).reason)
    for name in change.recovered:
        log.warning("%s has recovered", name)
    return {
        "status": report.status,
        "down": change.down,
        "newly_down": change.newly_down,
        "recovered": change.recovered,
        "alerts": alerts,
        **trimmed,
    }


def notify(settings: Any, session: Session, *, notifications: Any, escalation_minutes: int) -> dict:
    """In the caller's transaction: fan new events out to in-app notifications and channel
    deliveries (`shared.notifications.dispatch`), escalate unacknowledged alerts, drop read
    notifications past the retention."""
    done = notifications.dispatch(session=session)
    done["escalated"] = notifications.escalate(
        settings, session=session, minutes=escalation_minutes
    )
    older_than = utcnow() - timedelta(days=settings.notification_history_days)
    done["trimmed"] = notifications.trim(session=session, older_than=older_than)
    return done


__all__ = ["notify", "system_monitoring"]
