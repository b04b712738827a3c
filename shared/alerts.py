"""Operational alerts and their escalation (docs/NOTIFICATIONS.md, "Alerts").

Every event for operators or admins (a quarantined batch, a component down, a task
failing…) opens an alert as it is dispatched (`track`, the notification tables' `after`
hook); the "resolved" event of the same condition resolves it. An alert nobody has
acknowledged within `notifications.escalation_minutes` (a governed setting) is sent again
to the next level of `notification_escalation_levels` (e.g. operators → admins → the
on-call addresses), one level at a time, up to the last; acknowledging
(`POST /api/v1/admin/alerts/{id}/ack`) or resolving stops it. Each step is kept in the
alert's history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from shared import notifications
from shared.db import utcnow
from shared.problems import Problem

__all__ = ["LEVELS", "AlertSort", "acknowledge", "escalate", "page", "tracker"]

#: What an escalation level may name: a role group, or the on-call email addresses.
LEVELS = ("operators", "admins", "oncall")
OPERATIONAL = ("operators", "admins")


def _step(alert: Any, what: str, at: datetime, **more: Any) -> None:
    alert.history = [*(alert.history or []), {"at": at.isoformat(), "what": what, **more}]


def tracker(alert_model: type) -> Callable[[Session, Any], None]:
    """The dispatch hook: an operational event opens an alert (one per open condition);
    its "resolved" event resolves it."""

    def track(session: Session, event: Any) -> None:
        if event.audience not in OPERATIONAL or event.data.get("escalation"):
            return
        now = utcnow()
        if event.resolved:
            if event.dedup_key is None:
                return
            for alert in session.scalars(
                select(alert_model).where(
                    alert_model.dedup_key == event.dedup_key, alert_model.resolved_at.is_(None)
                )
            ):
                alert.resolved_at = now
                _step(alert, "resolved", now, title=event.title)
            return
        alert = alert_model(
            event_id=event.id,
            dedup_key=event.dedup_key,
            kind=event.kind,
            severity=event.severity,
            title=event.title,
            body=event.body,
            opened_at=event.at,
            level=0,
            escalated_at=now,
            history=[],
        )
        _step(alert, "opened", now, level=event.audience)
        session.add(alert)

    return track


def escalate(
    session: Session,
    tables: notifications.Tables,
    alert_model: type,
    *,
    after: timedelta,
    levels: Sequence[str],
    oncall: Sequence[str],
) -> int:
    """Alerts open, unacknowledged and unresolved for `after` since their last step go to
    the next level: a new event for that level's role group, or email deliveries to the
    on-call addresses. Returns how many escalated."""
    now = utcnow()
    due = session.scalars(
        select(alert_model)
        .where(
            alert_model.acknowledged_at.is_(None),
            alert_model.resolved_at.is_(None),
            alert_model.escalated_at <= now - after,
            alert_model.level < len(levels) - 1,
        )
        .with_for_update(skip_locked=True)
    ).all()
    for alert in due:
        alert.level += 1
        alert.escalated_at = now
        level = levels[alert.level]
        title = f"[escalated to {level}] {alert.title}"
        event_id = notifications.emit(
            session,
            tables,
            alert.kind,
            title=title,
            body=alert.body,
            data={"alert_id": alert.id, "escalation": alert.level},
            severity=alert.severity,
            audience=level if level in OPERATIONAL else "admins",
        )
        if level == "oncall" and event_id is not None:
            for address in oncall:
                notifications.deliver_email(session, tables, event_id, address)
        _step(alert, "escalated", now, level=level)
    session.flush()
    return len(due)


AlertSort = Literal[
    "opened_at", "-opened_at", "severity", "-severity", "level", "-level", "kind", "-kind",
]  # fmt: skip
#: Severity sorts by weight, not by name.
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def _order(alert_model: type, sort: str) -> tuple[Any, ...]:
    name = sort.lstrip("-")
    column = (
        case(SEVERITY_RANK, value=alert_model.severity, else_=-1)
        if name == "severity"
        else getattr(alert_model, name)
    )
    first = column.desc() if sort.startswith("-") else column.asc()
    return (first, alert_model.opened_at.desc(), alert_model.id.desc())


def page(
    session: Session,
    alert_model: type,
    *,
    state: str | None,
    limit: int,
    offset: int,
    sort: AlertSort = "-opened_at",
) -> tuple[list[Any], int]:
    """A page of alerts (default newest first; `sort`: a column, `-` first for descending,
    severity by weight); `state`: open (neither acknowledged nor resolved), acknowledged,
    resolved, or all."""
    query = select(alert_model)
    if state == "open":
        query = query.where(
            alert_model.acknowledged_at.is_(None), alert_model.resolved_at.is_(None)
        )
    elif state == "acknowledged":
        query = query.where(
            alert_model.acknowledged_at.is_not(None), alert_model.resolved_at.is_(None)
        )
    elif state == "resolved":
        query = query.where(alert_model.resolved_at.is_not(None))
    total = session.execute(
        select(func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    rows = session.scalars(
        query.order_by(*_order(alert_model, sort)).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def acknowledge(session: Session, alert_model: type, alert_id: int, *, actor: str) -> Any:
    """Acknowledge an alert: it escalates no further. Again: no change. A resolved alert
    needs no acknowledgement (409)."""
    alert = session.get(alert_model, alert_id, with_for_update=True)
    if alert is None:
        raise Problem(404, "Not found", f"no alert {alert_id}")
    if alert.acknowledged_at is None:
        if alert.resolved_at is not None:
            raise Problem(409, "Conflict", "this alert is resolved: there is nothing to stop")
        now = utcnow()
        alert.acknowledged_at, alert.acknowledged_by = now, actor
        _step(alert, "acknowledged", now, by=actor)
        session.flush()
    return alert
