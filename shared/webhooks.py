"""A user's webhook endpoints, the same on both networks (docs/NOTIFICATIONS.md, "Webhooks"):
create one (its secret shown once), list, read, change, delete, rotate its secret, read its
delivery log and send a delivery again.

Every function takes the session (the caller's entry point commits) and the network's
`shared.notifications.Tables`. The caller is the signed-in user: an endpoint of someone
else's is a 404, except to an admin, who may read and change any (and list all). An
endpoint's URL must pass the admin's allow-list (`shared.webhook_rules`), and its events
must be kinds its owner hears of; a refusal is a 422 naming the field.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.problems import Problem
from shared.webhook_rules import (
    AllowList,
    Sealer,
    destination,
    kinds_for_role,
    new_secret,
    refusal,
)

WAITING = ("pending", "failed")  # a delivery the sender will still try


def sealer(settings: Any) -> Sealer:
    return Sealer.of(settings.webhook_secret_key, settings.jwt_secret)


def _invalid(field: str, why: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        f"invalid fields: body.{field}: {why}",
        errors=[{"loc": f"body.{field}", "msg": why, "type": "value_error"}],
    )


def check_url(settings: Any, url: str) -> None:
    """422 naming `url` unless the URL is http(s) and its host is on the allow-list."""
    try:
        why = refusal(destination(url), AllowList.of(settings.webhook_allowed_hosts))
    except ValueError as exc:
        why = str(exc)
    if why is not None:
        raise _invalid("url", why)


def check_events(events: Sequence[str], role: str) -> list[str]:
    """The kinds, if the role may subscribe to each; else a 422 naming `events`."""
    mine = kinds_for_role(role)
    refused = [k for k in events if k not in mine]
    if refused:
        raise _invalid("events", f"not a kind you hear of: {', '.join(sorted(set(refused)))}")
    if len(set(events)) != len(events):
        raise _invalid("events", "each kind at most once")
    return list(events)


def describe(row: Any) -> dict[str, Any]:
    """What the API shows of an endpoint: everything but its secret."""
    return {
        "id": row.id,
        "user_id": row.user_id,
        "url": row.url,
        "description": row.description,
        "events": list(row.events),
        "active": row.active,
        "disabled_reason": row.disabled_reason,
        "consecutive_failures": row.consecutive_failures,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def create(
    session: Session,
    tables: Any,
    settings: Any,
    owner: Any,
    *,
    url: str,
    events: Sequence[str],
    description: str = "",
) -> tuple[Any, str]:
    """A new endpoint of `owner` and its secret ("whsec_…"), which is never shown again.

    At most `webhook_max_endpoints_per_user` each, however many creates race: the owner's
    row is locked first (PostgreSQL), the new endpoint inserted, then counted; over the cap
    the 409 rolls it back."""
    check_url(settings, url)
    kinds = check_events(events, owner.role)
    session.get(tables.user, owner.id, with_for_update=True)
    endpoint_id, secret, now = str(uuid.uuid4()), new_secret(), utcnow()
    row = tables.webhook_endpoint(
        id=endpoint_id,
        user_id=owner.id,
        url=url,
        description=description,
        events=kinds,
        secret=sealer(settings).seal(secret, endpoint_id),
        active=True,
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    table = tables.webhook_endpoint
    mine = select(func.count()).select_from(table).where(table.user_id == owner.id)
    cap = settings.webhook_max_endpoints_per_user
    if session.execute(mine).scalar_one() > cap:
        raise Problem(409, "Too many webhook endpoints", f"at most {cap} endpoints per user")
    return row, secret


def list_endpoints(
    session: Session, tables: Any, caller: Any, *, everyone: bool, limit: int, offset: int
) -> tuple[list[Any], int]:
    """The caller's endpoints (an admin's `everyone`: all), oldest first, and their count."""
    table = tables.webhook_endpoint
    if everyone and caller.role != "admin":
        raise Problem(403, "Forbidden", "only admins may list every user's webhooks")
    where = [] if everyone else [table.user_id == caller.id]
    rows = session.scalars(
        select(table).where(*where).order_by(table.created_at, table.id).limit(limit).offset(offset)
    )
    total = session.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    return list(rows), total


def get(session: Session, tables: Any, caller: Any, endpoint_id: str, *, lock: bool = False):
    """The endpoint, if it is the caller's (or the caller is an admin); else a 404."""
    row = session.get(tables.webhook_endpoint, endpoint_id, with_for_update=lock or None)
    if row is None or (row.user_id != caller.id and caller.role != "admin"):
        raise Problem(404, "Not found", f"no webhook {endpoint_id}")
    return row


def change(
    session: Session, tables: Any, settings: Any, caller: Any, endpoint_id: str, **changes: Any
) -> Any:
    """Change an endpoint's url, events, description or active flag (each given one);
    enabling it again clears its failure count."""
    row = get(session, tables, caller, endpoint_id, lock=True)
    if changes.get("url") is not None:
        check_url(settings, changes["url"])
        row.url = changes["url"]
    if changes.get("events") is not None:
        owner = session.get(tables.user, row.user_id)
        row.events = check_events(changes["events"], owner.role if owner else "")
    if changes.get("description") is not None:
        row.description = changes["description"]
    if changes.get("active") is not None and changes["active"] != row.active:
        row.active = changes["active"]
        row.consecutive_failures = 0
        row.disabled_reason = None if row.active else f"disabled by {caller.username}"
    row.updated_at = utcnow()
    session.flush()
    return row


def remove(session: Session, tables: Any, caller: Any, endpoint_id: str) -> None:
    """Delete an endpoint and its delivery log; what it still had to send is given up."""
    row = get(session, tables, caller, endpoint_id, lock=True)
    give_up(session, tables, [endpoint_id], "the endpoint was deleted")
    log = tables.webhook_attempt
    session.execute(delete(log).where(log.endpoint_id == row.id))
    session.delete(row)
    session.flush()


def rotate_secret(
    session: Session, tables: Any, settings: Any, caller: Any, endpoint_id: str, *, hours: int
) -> tuple[Any, str]:
    """A new secret for the endpoint ("whsec_…", shown once). For `hours` (0: none) the old
    one signs too, a second signature beside the new one in `webhook-signature`, so the
    receiver can change its key without refusing a delivery meanwhile."""
    row = get(session, tables, caller, endpoint_id, lock=True)
    secret, now = new_secret(), utcnow()
    row.previous_secret = row.secret if hours else None
    row.previous_secret_until = now + timedelta(hours=hours) if hours else None
    row.secret = sealer(settings).seal(secret, row.id)
    row.updated_at = now
    session.flush()
    return row, secret


def replay(session: Session, tables: Any, caller: Any, endpoint_id: str, delivery_id: int) -> Any:
    """Send one of the endpoint's deliveries again (sent or given up): the same event, so
    the same `webhook-id`; its attempts count on. A 409 while it is still to be sent or the
    endpoint is disabled."""
    endpoint = get(session, tables, caller, endpoint_id)
    d = tables.delivery
    row = session.scalars(
        select(d)
        .where(d.id == delivery_id, d.channel == "webhook", d.target == endpoint.id)
        .with_for_update()
    ).first()
    if row is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id} of webhook {endpoint_id}")
    if row.status in WAITING:
        raise Problem(409, "Conflict", f"delivery {delivery_id} is still to be sent")
    if not endpoint.active:
        raise Problem(409, "Conflict", f"webhook {endpoint_id} is disabled: enable it first")
    row.status, row.next_attempt_at, row.last_error = "pending", utcnow(), None
    session.flush()
    return row


def give_up(session: Session, tables: Any, endpoint_ids: Sequence[str], why: str) -> int:
    """Mark the waiting webhook deliveries to these endpoints dead."""
    d = tables.delivery
    done = session.execute(
        update(d)
        .where(d.channel == "webhook", d.target.in_(endpoint_ids), d.status.in_(WAITING))
        .values(status="dead", last_error=why)
    )
    return done.rowcount or 0


def attempts(
    session: Session, tables: Any, caller: Any, endpoint_id: str, *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """An endpoint's delivery log, newest attempt first, and its length."""
    get(session, tables, caller, endpoint_id)
    log = tables.webhook_attempt
    rows = session.scalars(
        select(log)
        .where(log.endpoint_id == endpoint_id)
        .order_by(log.id.desc())
        .limit(limit)
        .offset(offset)
    )
    count = select(func.count()).select_from(log).where(log.endpoint_id == endpoint_id)
    return list(rows), session.execute(count).scalar_one()


def trim(session: Session, tables: Any, *, older_than: datetime) -> int:
    """Delivery attempts older than `older_than` go."""
    log = tables.webhook_attempt
    return session.execute(delete(log).where(log.at < older_than)).rowcount or 0


__all__ = [
    "attempts",
    "change",
    "check_events",
    "check_url",
    "create",
    "describe",
    "get",
    "give_up",
    "list_endpoints",
    "remove",
    "replay",
    "rotate_secret",
    "sealer",
    "trim",
]
