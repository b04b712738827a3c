"""One network's notifications as a service: `shared.notifications` and `shared.alerts`
bound to the network's tables, so that each network's `services.notifications` only names
them (and adds what is its own). The `notify` task's fan-out, the operational conditions
the monitoring raises and clears, a user's in-app notifications, and the alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared import alerts, notifications
from shared.problems import Problem


class NotificationService:
    """`tables`: the network's notification tables; `alert` and `task_run` its alert and
    task-run models; `network`: "request" or "response" (it names the network in titles)."""

    def __init__(
        self, tables: notifications.Tables, *, alert: type, task_run: type, network: str
    ) -> None:
        self.tables = tables
        self.alert = alert
        self.task_run = task_run
        self.network = network
        #: The import's quarantine hook: operators hear of each quarantined batch.
        self.on_quarantine = notifications.on_quarantine(tables)
        #: The import's gap hook: operators hear of a batch that arrived ahead of its sequence.
        self.on_gap = notifications.on_gap(tables)

    # -- events and conditions --------------------------------------------------------------

    def emit(self, session: Session, kind: str, **event: Any) -> str | None:
        return notifications.emit(session, self.tables, kind, **event)

    def emit_for_users(self, session: Session, kind: str, items: list[dict[str, Any]]) -> int:
        return notifications.emit_for_users(session, self.tables, kind, items)

    def clear(self, session: Session, dedup_key: str, **event: Any) -> str | None:
        return notifications.clear(session, self.tables, dedup_key, **event)

    def reconcile(
        self, session: Session, kind: str, found: list[notifications.Condition], resolved: Any
    ) -> dict[str, int]:
        return notifications.reconcile(session, self.tables, kind, found, resolved=resolved)

    def health_alerts(self, report: Any, *, session: Session) -> None:
        notifications.health_alerts(session, self.tables, report, network=self.network)

    def operational_alerts(
        self, report: Any, *, session: Session, task_names: list[str], min_free_mb: int
    ) -> dict[str, dict[str, int]]:
        """Admins and operators hear of what the detailed health and the task history show
        wrong, once while it lasts, and when it clears: components down, tasks failing
        repeatedly, transfer directories short of space."""
        self.health_alerts(report, session=session)
        tasks = notifications.failing_tasks(session, self.task_run, task_names)
        disk = notifications.low_disk(report, min_free_mb=min_free_mb)
        return {
            "task.failing": self.reconcile(
                session, "task.failing", tasks, lambda k: f"{k} succeeds again"
            ),
            "disk.low": self.reconcile(
                session, "disk.low", disk, lambda k: f"Disk space in {k} is back"
            ),
        }

    def unacked_batches(self, flagged: list[dict[str, Any]], *, session: Session) -> dict[str, int]:
        """Operators hear of each batch unacknowledged past the threshold, and when it is."""
        found = [
            notifications.Condition(
                key=item["file"],
                title=f"Batch {item['file']} unacknowledged for {item['age_seconds'] / 3600:.1f} h",
                data={k: item[k] for k in ("file", "stream", "seq", "age_seconds")},
            )
            for item in flagged
        ]
        return self.reconcile(
            session, "batch.unacknowledged", found, lambda k: f"Batch {k} acknowledged"
        )

    # -- the notify task and upkeep ---------------------------------------------------------

    def dispatch(self, *, session: Session) -> dict[str, int]:
        return notifications.dispatch(session, self.tables)

    def trim(self, *, session: Session, older_than: datetime) -> int:
        return notifications.trim(session, self.tables, older_than=older_than)

    # -- a user's in-app notifications ------------------------------------------------------

    def page(
        self,
        user_id: str,
        *,
        session: Session,
        limit: int,
        offset: int,
        unread: bool,
        sort: notifications.NotificationSort = "read",
    ) -> tuple[list[Any], int, int]:
        return notifications.page(
            session, self.tables, user_id, limit=limit, offset=offset, unread=unread, sort=sort
        )

    def mark_read(self, user_id: str, notification_id: int, *, session: Session) -> Any:
        row = notifications.mark_read(session, self.tables, user_id, notification_id)
        if row is None:
            raise Problem(404, "Not found", f"no notification {notification_id}")
        return row

    def mark_all_read(self, user_id: str, *, session: Session) -> int:
        return notifications.mark_all_read(session, self.tables, user_id)

    def newest_id(self, user_id: str, *, session: Session) -> int:
        return notifications.newest_id(session, self.tables, user_id)

    def since(self, user_id: str, after_id: int, *, session: Session) -> list[Any]:
        return notifications.since(session, self.tables, user_id, after_id)

    # -- alerts -----------------------------------------------------------------------------

    def escalate(self, settings: Any, *, session: Session, minutes: int) -> int:
        """Unacknowledged alerts go to their next level (`shared.alerts.escalate`)."""
        return alerts.escalate(
            session,
            self.tables,
            self.alert,
            after=timedelta(minutes=minutes),
            levels=settings.notification_escalation_levels,
            oncall=settings.notification_oncall_emails,
        )

    def alert_page(
        self,
        *,
        session: Session,
        state: str | None,
        limit: int,
        offset: int,
        sort: str = "-opened_at",
    ) -> Any:
        return alerts.page(session, self.alert, state=state, limit=limit, offset=offset, sort=sort)

    def acknowledge(self, alert_id: int, *, session: Session, actor: str) -> Any:
        return alerts.acknowledge(session, self.alert, alert_id, actor=actor)


__all__ = ["NotificationService"]
