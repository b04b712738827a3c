"""The response network's webhooks (`shared.webhooks`, `shared.webhook_sender` do the work):
a user's endpoints and their delivery log, and the sender the `send_webhooks` task runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from response_network.services.notifications import TABLES
from response_network.settings import ResponseSettings
from shared import webhook_sender, webhooks
from shared.db import utcnow


def create(
    settings: ResponseSettings,
    user: Any,
    *,
    session: Session,
    url: str,
    events: Sequence[str],
    description: str,
) -> tuple[Any, str]:
    return webhooks.create(
        session, TABLES, settings, user, url=url, events=events, description=description
    )


def list_endpoints(
    user: Any, *, session: Session, everyone: bool, limit: int, offset: int
) -> tuple[list[Any], int]:
    return webhooks.list_endpoints(
        session, TABLES, user, everyone=everyone, limit=limit, offset=offset
    )


def get(user: Any, endpoint_id: str, *, session: Session) -> Any:
    return webhooks.get(session, TABLES, user, endpoint_id)


def change(
    settings: ResponseSettings, user: Any, endpoint_id: str, *, session: Session, **changes: Any
) -> Any:
    return webhooks.change(session, TABLES, settings, user, endpoint_id, **changes)


def remove(user: Any, endpoint_id: str, *, session: Session) -> None:
    webhooks.remove(session, TABLES, user, endpoint_id)


def rotate_secret(
    settings: ResponseSettings, user: Any, endpoint_id: str, *, session: Session, hours: int
) -> tuple[Any, str]:
    return webhooks.rotate_secret(session, TABLES, settings, user, endpoint_id, hours=hours)


def replay(user: Any, endpoint_id: str, delivery_id: int, *, session: Session) -> Any:
    return webhooks.replay(session, TABLES, user, endpoint_id, delivery_id)


def attempts(
    user: Any, endpoint_id: str, *, session: Session, limit: int, offset: int
) -> tuple[list[Any], int]:
    return webhooks.attempts(session, TABLES, user, endpoint_id, limit=limit, offset=offset)


def send_due(
    transaction: Callable[[], AbstractContextManager[Session]],
    settings: ResponseSettings,
    *,
    now: datetime | None = None,
) -> dict[str, int]:
    """One run of the sender (each step its own `transaction()`), then the attempts older
    than `notification_history_days` go."""
    done = webhook_sender.send_due_webhooks(transaction, TABLES, settings, now=now)
    with transaction() as session:
        older_than = utcnow() - timedelta(days=settings.notification_history_days)
        done["trimmed"] = webhooks.trim(session, TABLES, older_than=older_than)
    return done
