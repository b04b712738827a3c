"""Column sets both networks' models share (each network keeps its own metadata)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import utcnow

Timestamp = DateTime(timezone=True)

# BULK_BATCH_ID: the `batch_id` columns that the bulk exchange statements write
# (`imported_requests`, `results`, `responses`, `request_exports`) carry no foreign key.
# Only the exchange writes them, in the transaction that records the batch row; a per-row
# foreign-key check made a million-row bulk insert 57 % slower (docs/PERFORMANCE.md).


class BatchColumns:
    """A batch file this network wrote (`direction='out'`) or imported (`direction='in'`)."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # batch_id (UUIDv7)
    direction: Mapped[str] = mapped_column(String(3))
    stream: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    prev_digest: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    record_count: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    acked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # out: the peer's ack listed this batch as quarantined there (resend it once fixed).
    peer_rejected_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # out: first flagged as unacknowledged past the configured age.
    flagged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # out: its records were exported again, in new batches (see `transfer.protocol.reexport`).
    reexported_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # in: the last time a byte-identical copy arrived again (it is acked again).
    redelivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Metadata for admins: what the batch held, how long it took, who made it.
    counts_by_type: Mapped[dict[str, int] | None] = mapped_column(JSON)
    error_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    processing_ms: Mapped[int | None] = mapped_column(Integer)
    producer: Mapped[str | None] = mapped_column(String(64))  # header "producer"
    key_id: Mapped[str | None] = mapped_column(String(32))  # the signing key


class RejectedBatchColumns:
    """A batch file from the peer that this network quarantined (its acks report it back).

    Only files whose name identifies them (stream, source, seq, batch_id) are recorded.
    """

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    stream: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    batch_id: Mapped[str] = mapped_column(String(36))
    filename: Mapped[str] = mapped_column(String(255))
    verdict: Mapped[str] = mapped_column(String(16))  # "fork", "stale" or "invalid"
    reason: Mapped[str] = mapped_column(Text)


class AuditColumns:
    """One append-only audit row; `hash` chains it to the row before."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class UserColumns:
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="user")
    profile_type: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    rate_limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    # The user's own profile (`shared.records.UserData`), and the moment before which login
    # sessions and API keys are refused (a password change or reset).
    display_name: Mapped[str | None] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(254))
    notification_preferences: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sessions_valid_after: Mapped[datetime | None] = mapped_column(Timestamp)


class AccountLockColumns:
    """Failed logins of an account and, once past the threshold, how long it stays locked;
    its last successful login (`shared.security.login_flow`). Both networks keep their users
    in a `users` table."""

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ProfileTypeColumns:
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    index: Mapped[str] = mapped_column(String(255))
    fields: Mapped[dict[str, str]] = mapped_column(JSON)
    return_fields: Mapped[list[str]] = mapped_column(JSON)
    max_size: Mapped[int] = mapped_column(Integer)
    rate_limits: Mapped[dict[str, int]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class TaskRunColumns:
    """One run of a house task (`shared.celery_app.house_task`): written when it starts and
    completed when it ends, so history survives restarts (`shared.history`)."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)
    worker: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # "started", then "success", "failure", "timeout" or "retry"; "lost" if it never ended
    outcome: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the returned dict, trimmed
    error: Mapped[str | None] = mapped_column(Text)


class HealthSampleColumns:
    """The detailed health as `system_monitoring` found it: one row per run."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16))
    # {component: {"status": "ok" | "degraded" | "down", "reason": "..."}}
    components: Mapped[dict[str, Any]] = mapped_column(JSON)


class NotificationEventColumns:
    """Something that happened that someone should hear about (`shared.notifications`),
    written in the transaction of its cause (an outbox): `dispatched_at` is set once it has
    been fanned out to its recipients' in-app notifications and channel deliveries.
    `dedup_key` names a condition: while it lasts it does not notify again; `resolved`
    marks the event that says it cleared."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(16))  # "user", "operators" or "admins"
    user_id: Mapped[str | None] = mapped_column(String(36))
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    resolved: Mapped[bool] = mapped_column(default=False)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dispatched_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)


class NotificationColumns:
    """One in-app notification of one user (one per event and recipient)."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(Timestamp)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    resolved: Mapped[bool] = mapped_column(default=False)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    read_at: Mapped[datetime | None] = mapped_column(Timestamp)


class NotificationConditionColumns:
    """A condition that has notified and has not cleared yet (by its deduplication key)."""

    dedup_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(36))
    since: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)


class NotificationDeliveryColumns:
    """One message of one event to one channel target (an email address, a webhook
    endpoint): sent at least once, retried with backoff, its attempts kept."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(16))  # "email" or "webhook"
    target: Mapped[str] = mapped_column(String(320))
    user_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # sent, failed, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)


class AlertColumns:
    """An operational alert (an event for operators or admins): open until it is
    acknowledged or its condition clears; unacknowledged, it escalates level by level
    (`shared.alerts`). `history`: what happened to it, in order."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    dedup_key: Mapped[str | None] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(Timestamp)
    level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime] = mapped_column(Timestamp)
    acknowledged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


__all__ = [
    "AlertColumns",
    "NotificationColumns",
    "NotificationConditionColumns",
    "NotificationDeliveryColumns",
    "NotificationEventColumns",
    "AccountLockColumns",
    "AuditColumns",
    "BatchColumns",
    "HealthSampleColumns",
    "ProfileTypeColumns",
    "RejectedBatchColumns",
    "TaskRunColumns",
    "Timestamp",
    "UserColumns",
]
