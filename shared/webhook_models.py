"""The webhook channel's columns, the same on both networks (each network's models.py makes
its tables of them): endpoints, and the log of every delivery attempt."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import utcnow
from shared.models import Timestamp


class WebhookEndpointColumns:
    """A user's webhook endpoint: where the events it subscribes to are POSTed, signed with
    its secret (kept sealed: `shared.webhook_rules.Sealer`); for a while after a rotation,
    with the previous one as well. An endpoint whose deliveries keep failing is disabled
    (`active` false, with the reason) until its owner enables it again."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(255))
    # After a rotation the old secret also signs, until `previous_secret_until` (sealed too)
    previous_secret: Mapped[str | None] = mapped_column(String(255))
    previous_secret_until: Mapped[datetime | None] = mapped_column(Timestamp)
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class WebhookAttemptColumns:
    """One POST of one delivery (a `notification_deliveries` row of channel "webhook") to one
    endpoint: when, the status code (None when no answer came), how long, and the delivery's
    status after it (sent, failed: to be retried, dead: given up)."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    event_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    status: Mapped[str] = mapped_column(String(16))
    response_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


__all__ = ["WebhookAttemptColumns", "WebhookEndpointColumns"]
