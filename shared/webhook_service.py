"""One network's webhooks, bound to its tables: what its API's webhook routes
(`shared.webhooks_api`) and its `send_webhooks` task call. The work is done by
`shared.webhooks` (endpoints, their log) and `shared.webhook_sender` (sending)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared import webhook_sender, webhooks
from shared.db import utcnow
from shared.notifications import Tables


class WebhookService:
    """`shared.webhooks` with a network's `Tables`: each method the caller's session last."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def create(
        self,
        settings: Any,
        user: Any,
        *,
        session: Session,
        url: str,
        events: Sequence[str],
        description: str,
    ) -> tuple[Any, str]:
        return webhooks.create(
            session, self.tables, settings, user, url=url, events=events, description=description
        )

    def list_endpoints(
        self, user: Any, *, session: Session, everyone: bool, limit: int, offset: int
    ) -> tuple[list[Any], int]:
        return webhooks.list_endpoints(
            session, self.tables, user, everyone=everyone, limit=limit, offset=offset
        )

    def get(self, user: Any, endpoint_id: str, *, session: Session) -> Any:
        return webhooks.get(session, self.tables, user, endpoint_id)

    def change(
        self, settings: Any, user: Any, endpoint_id: str, *, session: Session, **changes: Any
    ) -> Any:
        return webhooks.change(session, self.tables, settings, user, endpoint_id, **changes)

    def remove(self, user: Any, endpoint_id: str, *, session: Session) -> None:
        webhooks.remove(session, self.tables, user, endpoint_id)

    def rotate_secret(
        self, settings: Any, user: Any, endpoint_id: str, *, session: Session, hours: int
    ) -> tuple[Any, str]:
        return webhooks.rotate_secret(
            session, self.tables, settings, user, endpoint_id, hours=hours
        )

    def replay(self, user: Any, endpoint_id: str, delivery_id: int, *, session: Session) -> Any:
        return webhooks.replay(session, self.tables, user, endpoint_id, delivery_id)

    def attempts(
        self, user: Any, endpoint_id: str, *, session: Session, limit: int, offset: int
    ) -> tuple[list[Any], int]:
        return webhooks.attempts(
            session, self.tables, user, endpoint_id, limit=limit, offset=offset
        )

    def send_due(
        self,
        transaction: Callable[[], AbstractContextManager[Session]],
        settings: Any,
        *,
        now: datetime | None = None,
    ) -> dict[str, int]:
        """One run of the sender (each step its own `transaction()`), then the attempts
        older than `notification_history_days` go."""
        done = webhook_sender.send_due_webhooks(transaction, self.tables, settings, now=now)
        with transaction() as session:
            older_than = utcnow() - timedelta(days=settings.notification_history_days)
            done["trimmed"] = webhooks.trim(session, self.tables, older_than=older_than)
        return done


__all__ = ["WebhookService"]
