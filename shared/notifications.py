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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.db import is_postgres, utcnow
from shared.notification_kinds import KINDS, Severity
from shared.records import NotificationPreferences
from shared.webhook_fanout import webhook_targets

__all__ = [
    "Condition",
    "NotificationSort",
    "Tables",
    "channels_for",
    "clear",
    "deliver_email",
    "dispatch",
    "emit",
    "emit_for_users",
    "event_columns",
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
        return _insert_new(session, table, rows, ("id",))
    session.execute(table.insert(), rows)
    return len(rows)


def event_columns(
    kind: str, items: Sequence[Mapping[str, Any]], ids: Sequence[str]
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """The rows `emit_for_users` writes for `items`, column by column, and the values every
    row shares: for a bulk insert of many events at once (an import answering a million
    requests). `ids` gives each event its id; time-ordered ids (UUIDv7) keep the inserts at
    the end of the primary key's index."""
    spec = KINDS[kind]
    columns = {
        "id": list(ids),
        "user_id": [item["user_id"] for item in items],
        "title": [_title(item["title"]) for item in items],
        "body": [item.get("body", "") for item in items],
        "data": [dict(item.get("data") or {}) for item in items],
    }
    same = {
        "at": utcnow(),
        "kind": kind,
        "severity": spec.severity,
        "audience": spec.audience,
        "resolved": False,
    }
    return columns, same  # no `dedup_key`: these events name no condition


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


class _Recipients:
    """Who hears of each event of one dispatch, read in one query per audience: the users
    of the user events by id, the active operators and admins once each."""

    def __init__(self, session: Session, tables: Tables, events: Sequence[Any]) -> None:
        users = tables.user
        ids = sorted({e.user_id for e in events if e.audience == "user" and e.user_id})
        self._users: dict[str, Any] = {}
        for part in range(0, len(ids), _CHUNK):
            query = select(users).where(users.id.in_(ids[part : part + _CHUNK]))
            self._users.update((u.id, u) for u in session.scalars(query) if u.active)
        self._roles: dict[str, list[Any]] = {}
        for audience in sorted({e.audience for e in events} - {"user"}):
            query = select(users).where(users.role.in_(ROLES[audience]), users.active.is_(True))
            self._roles[audience] = list(session.scalars(query.order_by(users.id)))
        self._channels: dict[tuple[str, str], tuple[str, ...]] = {}

    def of(self, event: Any) -> list[Any]:
        if event.audience == "user":
            user = self._users.get(event.user_id) if event.user_id else None
            return [user] if user is not None else []
        return self._roles[event.audience]

    def channels(self, kind: str, user: Any) -> tuple[str, ...]:
        """`channels_for`, its preferences parsed once per user and kind per dispatch."""
        key = (kind, user.id)
        if key not in self._channels:
            self._channels[key] = channels_for(kind, user.notification_preferences)
        return self._channels[key]


def dispatch(session: Session, tables: Tables, *, limit: int = 5_000) -> dict[str, int]:
    """Fan new events out (oldest first, up to `limit`); the caller commits. Events taken
    by a concurrent dispatch are skipped (`FOR UPDATE SKIP LOCKED` on PostgreSQL). The
    notifications and deliveries of the whole run go in by a few bulk statements, each
    skipping the rows a previous run already wrote (their unique keys)."""
    events = tables.event.__table__
    query = (
        select(events)
        .where(events.c.dispatched_at.is_(None))
        .order_by(events.c.at, events.c.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    session.flush()  # events the caller wrote in this session are read too
    batch = session.execute(query).all()
    now = utcnow()
    recipients = _Recipients(session, tables, batch)
    in_app: list[dict] = []
    sends: list[dict] = []
    for event in batch:
        for user in recipients.of(event):
            in_app.append(_in_app(event, user.id))
            if user.email and "email" in recipients.channels(event.kind, user):
                sends.append(_delivery(event, "email", user.email, user.id, now))
        if tables.after is not None:
            tables.after(session, event)
    ids = [event.id for event in batch]
    for part in range(0, len(ids), _CHUNK):
        marked = update(events).where(events.c.id.in_(ids[part : part + _CHUNK]))
        session.execute(marked.values(dispatched_at=now))
    for event, endpoint_id, owner_id in webhook_targets(session, tables, batch):
        sends.append(_delivery(event, "webhook", endpoint_id, owner_id, now))
    notified = _insert_new(session, tables.notification.__table__, in_app, _IN_APP_KEY)
    deliveries = _insert_new(session, tables.delivery.__table__, sends, _DELIVERY_KEY)
    session.flush()
    return {"events": len(batch), "notifications": notified, "deliveries": deliveries}


def deliver_email(session: Session, tables: Tables, event_id: str, address: str) -> int:
    """An email of event `event_id` to `address` (not a user's: e.g. an on-call list)."""
    event = session.get(tables.event, event_id)
    if event is None:
        return 0
    row = _delivery(event, "email", address, None, utcnow())
    return _insert_new(session, tables.delivery.__table__, [row], _DELIVERY_KEY)


_CHUNK = 1_000
_IN_APP_KEY = ("event_id", "user_id")
_DELIVERY_KEY = ("event_id", "channel", "target")


def _insert_new(session: Session, table: Any, rows: list[dict], keys: tuple[str, ...]) -> int:
    """Insert the `rows` whose `keys` no row has yet (`ON CONFLICT DO NOTHING` on the
    table's unique key), in chunks; how many went in."""
    unique = list({tuple(row[k] for k in keys): row for row in rows}.values())
    if not unique:
        return 0
    make = pg_insert if is_postgres(session) else sqlite_insert
    statement = make(table).on_conflict_do_nothing(index_elements=list(keys))
    statement = statement.returning(table.c[keys[0]])
    return sum(
        len(session.execute(statement, unique[part : part + _CHUNK]).all())
        for part in range(0, len(unique), _CHUNK)
    )


def _in_app(event: Any, user_id: str) -> dict:
    return {
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


def _delivery(event: Any, channel: str, target: str, user_id: str | None, now: datetime) -> dict:
    return {
        "event_id": event.id,
        "channel": channel,
        "target": target,
        "user_id": user_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# -- a user's in-app notifications -------------------------------------------------------------


#: How a user's notifications sort: by time, severity (by weight), kind, or read (unread
#: first); `-` first for descending; ties newest first.
NotificationSort = Literal["read", "-read", "at", "-at", "severity", "-severity", "kind", "-kind"]
SEVERITY_RANK = {name: rank for rank, name in enumerate(get_args(Severity))}


def _order(n: type, sort: NotificationSort) -> tuple[Any, ...]:
    name = sort.removeprefix("-")
    column = {
        "read": case((n.read_at.is_(None), 0), else_=1),
        "at": n.at,
        "severity": case(SEVERITY_RANK, value=n.severity, else_=-1),
        "kind": n.kind,
    }[name]
    return (column.desc() if sort.startswith("-") else column.asc(), n.id.desc())


def page(
    session: Session,
    tables: Tables,
    user_id: str,
    *,
    limit: int,
    offset: int,
    unread: bool,
    sort: NotificationSort = "read",
) -> tuple[list[Any], int, int]:
    """The user's notifications, by default unread first then newest first (`sort`: a
    column of `NotificationSort`); (page, total, unread)."""
    n = tables.notification
    mine = select(n).where(n.user_id == user_id)
    if unread:
        mine = mine.where(n.read_at.is_(None))
    rows = list(session.scalars(mine.order_by(*_order(n, sort)).limit(limit).offset(offset)))
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
