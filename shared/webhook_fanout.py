"""Which webhook endpoints hear of which events: the webhook part of `shared.notifications.
dispatch`. An endpoint does when it is active, subscribes to the event's kind, and its owner
is an active user who hears of the event in-app too (its user for a user's event, operators
and admins for the operators', admins for the admins')."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.webhook_rules import may_receive


def webhook_targets(session: Session, tables: Any, events: Sequence[Any]) -> list[tuple]:
    """(event, endpoint id, owner id) for every endpoint that hears of each of `events`:
    one query for the whole batch."""
    endpoint = getattr(tables, "webhook_endpoint", None)
    if endpoint is None or not events:
        return []
    users = tables.user
    rows = session.execute(
        select(endpoint.id, endpoint.user_id, endpoint.events, users.role)
        .join(users, users.id == endpoint.user_id)
        .where(endpoint.active.is_(True), users.active.is_(True))
        .order_by(endpoint.created_at, endpoint.id)
    ).all()
    by_kind: dict[str, list] = defaultdict(list)
    for row in rows:
        for kind in set(row.events or ()):
            by_kind[kind].append(row)
    return [
        (event, row.id, row.user_id)
        for event in events
        for row in by_kind.get(event.kind, ())
        if may_receive(event, row.user_id, row.role)
    ]


__all__ = ["webhook_targets"]
