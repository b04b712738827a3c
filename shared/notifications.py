"""Notifications on both networks: events written with their cause, fanned out after it.

- `emit` (one event) and `emit_for_users` (one per user, in bulk: e.g. every request an
  import completed) write `notification_events` rows in the caller's transaction: if the
  cause rolls back, so do they (an outbox). An event with a `dedup_key` names a condition
  (a component down, a batch unacknowledged): while it lasts it does not notify again, and
  `clear` writes the "resolved" event once it clears.
- `dispatch` (the `notify` task, a few seconds after commit) fans each new event out to its
  recipients, in one transaction per run: an in-app `notifications` row for each (always),
  and a `notification_deliveries` row per channel target the recipient's preferences ask
  for (email, webhooks), which the channel senders deliver at least once with the event id
  as the idempotency key. Unique keys make a second dispatch of the same event a no-op, so
  a crash between commit and fan-out loses nothing and doubles nothing.

Each network passes its own tables (`Tables`). Who hears of an event: its user (audience
"user"), every active operator and admin ("operators"), or every active admin ("admins").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.db import is_postgres, utcnow
from shared.notification_kinds import KINDS
from shared.records import NotificationPreferences
from shared.webhook_fanout import webhook_targets

__all__ = [
    "Condition",
    "Tables",
    "channels_for",
    "clear",
    "deliver_email",
    "dispatch",
    "emit",
    "emit_for_users",
    "failing_tasks",
    "health_alerts",
    "low_disk",
    "mark_all_read",
    "mark_read",
    "newest_id",
    "on_gap",
    "on_quarantine",
    "page",
    "reconcile",
    "since",
    "trim",
]

ROLES = {"user": (), "operators": ("operator", "admin"), "admins": ("admin",)}
MAX_TITLE = 200


@dataclass(frozen=True)
class Tables:
    """One network's notification tables and its users."""

    event: type
    notification: type
    condition: type
    delivery: type
    user: type
    # Runs for each event as it is dispatched, in the same transaction (the alerts).
    after: Callable[[Session, Any], None] | None = None
    # The webhook channel's endpoints and attempt log (`shared.webhooks`); None: no webhooks.
    webhook_endpoint: type | None = None
    webhook_attempt: type | None = None


def _title(text: str) -> str:
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"


def _row(kind: str, *, title: str, body: str, data: Mapping[str, Any] | None, **extra: Any) -> dict:
    spec = KINDS[kind]
    return {
        "id": str(uuid.uuid4()),
        "at": utcnow(),
        "kind": kind,
        "severity": extra.pop("severity", None) or spec.severity,
        "audience": extra.pop("audience", None) or spec.audience,
        "title": _title(title),
        "body": body,
        "data": dict(data or {}),
        "resolved": False,
        **extra,
    }


def emit(
    session: Session,
    tables: Tables,
    kind: str,
    *,
    title: str,
    body: str = "",
    data: Mapping[str, Any] | None = None,
    user_id: str | None = None,
    dedup_key: str | None = None,
    severity: str | None = None,
    audience: str | None = None,
) -> str | None:
    """Write one event in the caller's transaction; its id, or None when `dedup_key` names
    a condition that has already notified and not cleared. `audience` overrides the kind's
    (an escalation reaches the next level)."""
    row = _row(
        kind,
        title=title,
        body=body,
        data=data,
        user_id=user_id,
        dedup_key=dedup_key,
        severity=severity,
        audience=audience,
    )
    if dedup_key is not None and not _open_condition(session, tables, dedup_key, kind, row):
        return None
    session.execute(tables.event.__table__.insert(), [row])
    return row["id"]


def _open_condition(session: Session, tables: Tables, key: str, kind: str, row: dict) -> bool:
    """Record that condition `key` has notified (with `row`); False if it already had (it
    is only marked as still seen). Safe when two causes report the same condition at once:
    the insert that loses the race changes nothing."""
    table = tables.condition.__table__
    now = row["at"]
    make = pg_insert if is_postgres(session) else sqlite_insert
    claim = (
        make(table)
        .values(dedup_key=key, kind=kind, event_id=row["id"], since=now, last_seen_at=now)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(table.c.dedup_key)
    )
    if session.execute(claim).first() is not None:
        return True
    session.execute(update(table).where(table.c.dedup_key == key).values(last_seen_at=now))
    return False


def emit_for_users(
    session: Session, tables: Tables, kind: str, items: Iterable[Mapping[str, Any]]
) -> int:
    """One event per item (`user_id`, `title`, `body`, `data`), in one statement: for causes
    that touch many users at once (an import completing thousands of requests). An item may
    bring its event's `id` (a uuid): an event of that id already written is left as it is,
    so a cause handled twice (read again after a crash) notifies once. The events written."""
    items = list(items)
    rows = []
    for item in items:
        row = _row(
            kind,
            title=item["title"],
            body=item.get("body", ""),
            data=item.get("data"),
            user_id=item["user_id"],
            dedup_key=None,
        )
        row["id"] = item.get("id") or row["id"]
        rows.append(row)
    if not rows:
        return 0
    table = tables.event.__table__
    if any("id" in item for item in items):
        make = pg_insert if is_postgres(session) else sqlite_insert
        statement = make(table).on_conflict_do_nothing(index_elements=["id"])
        return len(session.execute(statement.returning(table.c.id), rows).all())
    session.execute(table.insert(), rows)
    return len(rows)


def clear(
    session: Session, tables: Tables, dedup_key: str, *, title: str, body: str = ""
) -> str | None:
    """The condition `dedup_key` has cleared: a "resolved" event, if it had notified."""
    open_ = session.get(tables.condition, dedup_key, with_for_update=True)
    if open_ is None:
        return None
    row = _row(
        open_.kind,
        title=title,
        body=body,
        data={"since": open_.since.isoformat(), "first_event": open_.event_id},
        dedup_key=dedup_key,
        severity="info",
    )
    row["resolved"] = True
    session.delete(open_)
    session.add(tables.event(**row))
    session.flush()
    return row["id"]


def channels_for(kind: str, preferences: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The channels `kind` reaches a user on, by their preferences (in-app always)."""
    prefs = NotificationPreferences.model_validate(preferences or {})
    chosen = prefs.channels.get(kind, KINDS[kind].channels)  # type: ignore[call-overload]
    return ("in_app", *sorted(set(chosen) - {"in_app"}))


def _recipients(session: Session, tables: Tables, event: Any) -> list[Any]:
    users = tables.user
    if event.audience == "user":
        user = session.get(users, event.user_id) if event.user_id else None
        return [user] if user is not None and user.active else []
    roles = ROLES[event.audience]
    query = select(users).where(users.role.in_(roles), users.active.is_(True))
    return list(session.scalars(query.order_by(users.id)))


def dispatch(session: Session, tables: Tables, *, limit: int = 5_000) -> dict[str, int]:
    """Fan new events out (oldest first, up to `limit`); the caller commits. Events taken
    by a concurrent dispatch are skipped (`FOR UPDATE SKIP LOCKED` on PostgreSQL)."""
    events = tables.event
    query = (
        select(events)
        .where(events.dispatched_at.is_(None))
        .order_by(events.at, events.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    batch = list(session.scalars(query))
    now = utcnow()
    notified = deliveries = 0
    for event in batch:
        for user in _recipients(session, tables, event):
            notified += _in_app(session, tables, event, user.id)
            if "email" in channels_for(event.kind, user.notification_preferences) and user.email:
                deliveries += _delivery(session, tables, event, "email", user.email, user.id)
        if tables.after is not None:
            tables.after(session, event)
        event.dispatched_at = now
    for event, endpoint_id, owner_id in webhook_targets(session, tables, batch):
        deliveries += _delivery(session, tables, event, "webhook", endpoint_id, owner_id)
    session.flush()
    return {"events": len(batch), "notifications": notified, "deliveries": deliveries}


def deliver_email(session: Session, tables: Tables, event_id: str, address: str) -> int:
    """An email of event `event_id` to `address` (not a user's: e.g. an on-call list)."""
    event = session.get(tables.event, event_id)
    return _delivery(session, tables, event, "email", address, None) if event else 0


def _insert_once(session: Session, table: Any, row: dict, keys: tuple[str, ...]) -> int:
    """Insert `row` unless one with the same `keys` exists; 1 if it went in."""
    clause = [table.c[k] == row[k] for k in keys]
    if session.execute(select(func.count()).select_from(table).where(*clause)).scalar_one():
        return 0
    session.execute(table.insert(), [row])
    return 1


def _in_app(session: Session, tables: Tables, event: Any, user_id: str) -> int:
    row = {
        "event_id": event.id,
        "user_id": user_id,
        "at": event.at,
        "kind": event.kind,
        "severity": event.severity,
        "resolved": event.resolved,
        "title": event.title,
        "body": event.body,
        "data": event.data,
    }
    return _insert_once(session, tables.notification.__table__, row, ("event_id", "user_id"))


def _delivery(
    session: Session, tables: Tables, event: Any, channel: str, target: str, user_id: str | None
) -> int:
    row = {
        "event_id": event.id,
        "channel": channel,
        "target": target,
        "user_id": user_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": utcnow(),
        "created_at": utcnow(),
    }
    keys = ("event_id", "channel", "target")
    return _insert_once(session, tables.delivery.__table__, row, keys)


# -- a user's in-app notifications -------------------------------------------------------------


def page(
    session: Session, tables: Tables, user_id: str, *, limit: int, offset: int, unread: bool
) -> tuple[list[Any], int, int]:
    """The user's notifications, unread first then newest first; (page, total, unread)."""
    n = tables.notification
    mine = select(n).where(n.user_id == user_id)
    if unread:
        mine = mine.where(n.read_at.is_(None))
    order = (n.read_at.is_(None).desc(), n.id.desc())
    rows = list(session.scalars(mine.order_by(*order).limit(limit).offset(offset)))
    count = select(func.count()).select_from(n).where(n.user_id == user_id)
    total = session.execute(count.where(n.read_at.is_(None)) if unread else count).scalar_one()
    unread_count = session.execute(count.where(n.read_at.is_(None))).scalar_one()
    return rows, total, unread_count


def mark_read(session: Session, tables: Tables, user_id: str, notification_id: int) -> Any:
    """Mark one of the user's notifications read (again: no change); None if not theirs."""
    n = tables.notification
    row = session.get(n, notification_id)
    if row is None or row.user_id != user_id:
        return None
    if row.read_at is None:
        row.read_at = utcnow()
        session.flush()
    return row


def mark_all_read(session: Session, tables: Tables, user_id: str) -> int:
    n = tables.notification
    done = session.execute(
        update(n).where(n.user_id == user_id, n.read_at.is_(None)).values(read_at=utcnow())
    )
    return done.rowcount or 0


def newest_id(session: Session, tables: Tables, user_id: str) -> int:
    n = tables.notification
    return session.execute(select(func.max(n.id)).where(n.user_id == user_id)).scalar() or 0


def since(session: Session, tables: Tables, user_id: str, after_id: int) -> list[Any]:
    """The user's notifications newer than `after_id`, oldest first (the live stream)."""
    n = tables.notification
    query = select(n).where(n.user_id == user_id, n.id > after_id).order_by(n.id).limit(100)
    return list(session.scalars(query))


def trim(session: Session, tables: Tables, *, older_than: datetime) -> int:
    """Dispatched events, read notifications and finished deliveries (sent or dead) older
    than `older_than` go."""
    gone = session.execute(
        delete(tables.notification).where(
            tables.notification.read_at.is_not(None), tables.notification.at < older_than
        )
    ).rowcount
    gone += session.execute(
        delete(tables.event).where(
            tables.event.dispatched_at.is_not(None), tables.event.at < older_than
        )
    ).rowcount
    gone += session.execute(
        delete(tables.delivery).where(
            tables.delivery.status.in_(("sent", "dead")), tables.delivery.created_at < older_than
        )
    ).rowcount
    return gone or 0


def on_quarantine(tables: Tables) -> Callable[[Session, str, Any], None]:
    """The import's quarantine hook (`transfer.protocol.intake.OnQuarantine`): operators
    hear of each quarantined batch, with its reasons, in the transaction that records it."""

    def notify(session: Session, name: str, outcome: Any) -> None:
        reasons = list(outcome.reasons)
        emit(
            session,
            tables,
            "batch.quarantined",
            title=f"Batch quarantined: {name}",
            body="\n".join(reasons[:20]),
            data={
                "file": name,
                "stream": outcome.stream,
                "seq": outcome.seq,
                "verdict": outcome.rule,
                "reasons": reasons[:20],
            },
        )

    return notify


def on_gap(tables: Tables) -> Callable[[Session, str, Any], None]:
    """The import's gap hook: operators hear that a batch arrived ahead of its stream's
    sequence (the batches between are missing: lost, or still to be carried)."""

    def notify(session: Session, name: str, outcome: Any) -> None:
        emit(
            session,
            tables,
            "batch.gap",
            title=f"Sequence gap before {name}",
            body="\n".join(outcome.reasons[:5]),
            data={"file": name, "stream": outcome.stream, "seq": outcome.seq},
        )

    return notify


def health_alerts(session: Session, tables: Tables, report: Any, *, network: str) -> None:
    """Admins hear of each component of the detailed health that is down (once while it
    lasts), and that it has recovered when it is no longer down."""
    for component in report.components:
        key = f"component.down:{network}:{component.name}"
        if component.status == "down":
            emit(
                session,
                tables,
                "component.down",
                title=f"{component.name} is down ({network} network)",
                body=component.reason,
                data={"component": component.name, "network": network, "reason": component.reason},
                dedup_key=key,
            )
        else:
            clear(
                session,
                tables,
                key,
                title=f"{component.name} has recovered ({network} network)",
                body=component.reason,
            )


@dataclass(frozen=True)
class Condition:
    """A condition found to hold now: its key (unique within its kind) and what to say."""

    key: str
    title: str
    body: str = ""
    data: Mapping[str, Any] | None = None
    user_id: str | None = None  # for a kind whose audience is one user


def reconcile(
    session: Session,
    tables: Tables,
    kind: str,
    holding: Iterable[Condition],
    *,
    resolved: Callable[[str], str],
) -> dict[str, int]:
    """Make the open conditions of `kind` what a check found: each one holding notifies
    (once while it lasts), each open one no longer holding is cleared with the title
    `resolved(key)`. Keys are prefixed with the kind."""
    found = {f"{kind}:{c.key}": c for c in holding}
    raised = sum(
        emit(
            session,
            tables,
            kind,
            title=c.title,
            body=c.body,
            data=c.data,
            user_id=c.user_id,
            dedup_key=key,
        )
        is not None
        for key, c in found.items()
    )
    table = tables.condition
    open_keys = session.scalars(select(table.dedup_key).where(table.kind == kind)).all()
    cleared = 0
    for key in open_keys:
        if key not in found:
            cleared += clear(session, tables, key, title=resolved(key[len(kind) + 1 :])) is not None
    return {"raised": raised, "cleared": cleared}


def failing_tasks(
    session: Session, task_model: type, names: Iterable[str], *, runs: int = 3
) -> list[Condition]:
    """Scheduled tasks whose last `runs` runs all failed (or timed out)."""
    found = []
    for name in sorted(set(names)):
        last = session.execute(
            select(task_model.outcome, task_model.error)
            .where(task_model.name == name, task_model.outcome != "started")
            .order_by(task_model.started_at.desc())
            .limit(runs)
        ).all()
        if len(last) == runs and all(o in ("failure", "timeout") for o, _ in last):
            found.append(
                Condition(
                    key=name,
                    title=f"{name} failed {runs} times in a row",
                    body=(last[0].error or "")[:2000],
                    data={"task": name, "runs": runs},
                )
            )
    return found


def low_disk(report: Any, *, min_free_mb: int) -> list[Condition]:
    """Transfer directories with less than `min_free_mb` free (the detailed health's
    `transfer_dirs` component)."""
    component = next((c for c in report.components if c.name == "transfer_dirs"), None)
    if component is None:
        return []
    found = []
    for label, facts in (component.details.get("directories") or {}).items():
        free = facts.get("free_mb")
        if free is not None and free < min_free_mb:
            found.append(
                Condition(
                    key=str(label),
                    title=f"Low disk space in {label}: {free} MB free",
                    data={"directory": label, "free_mb": free, "min_free_mb": min_free_mb},
                )
            )
    return found
