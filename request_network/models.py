"""Request network tables: user replicas, requests with their history, the outbox of requests
waiting to be exported, the record of which batch carried each request, responses, batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import naming_metadata, utcnow
from shared.models import (
    AccountLockColumns,
    AlertColumns,
    AuditColumns,
    BatchColumns,
    HealthSampleColumns,
    NotificationColumns,
    NotificationConditionColumns,
    NotificationDeliveryColumns,
    NotificationEventColumns,
    ProfileTypeColumns,
    RejectedBatchColumns,
    TaskRunColumns,
    Timestamp,
    UserColumns,
)
from shared.ratelimit import MAX_LIMIT
from shared.webhook_models import WebhookAttemptColumns, WebhookEndpointColumns

# Request states. The stored `status` is PENDING until the answer arrives (COMPLETED or
# FAILED); a PENDING request that a batch has carried out (it has a `RequestExport`) is
# EXPORTED, which the user sees as IN_TRANSIT. A request unanswered past its expiry is
# EXPIRED; an admin may cancel one still on its way (CANCELLED) or send a failed, expired
# or cancelled one out again (`services.admin_requests`).
PENDING, EXPORTED, COMPLETED, FAILED, EXPIRED, CANCELLED = (
    "PENDING",
    "EXPORTED",
    "COMPLETED",
    "FAILED",
    "EXPIRED",
    "CANCELLED",
)
PUBLIC_STATUS = {EXPORTED: "IN_TRANSIT"}
#: Every state a user or an admin sees, in the order of a request's life.
PUBLIC_STATES = ("PENDING", "IN_TRANSIT", "COMPLETED", "FAILED", "EXPIRED", "CANCELLED")


@dataclass(frozen=True)
class HistoryEntry:
    status: str
    at: datetime
    detail: str


class Base(DeclarativeBase):
    metadata = naming_metadata()


class User(UserColumns, Base):
    """A replica of a user whose authority is the response network. The user's own changes
    made here (password, profile) apply here at once and travel to the authority as
    `UserChange` records; `own_changes` counts them (their record version)."""

    __tablename__ = "users"
    synced_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    own_changes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class UserChange(Base):
    """A user's own change on its way to the authority (a `user_change` record); the next
    export carries it and deletes it. `data`: what changed (a password as its bcrypt hash)."""

    __tablename__ = "user_changes"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    base_version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(Timestamp)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class ProfileType(ProfileTypeColumns, Base):
    __tablename__ = "profile_types"


class Request(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    profile_type: Mapped[str] = mapped_column(String(64))
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Which sending this is: 1, then one more for each retry. It travels as the request
    # record's version and comes back as its result's, so an answer to an earlier sending
    # is told apart from the answer to this one.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # The id of the HTTP call that submitted it (`shared.correlation`): it travels with the
    # request's records and names it on the log lines of both networks. None: submitted
    # before correlation ids. `traceparent`: the trace the submission ran in, if any.
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    traceparent: Mapped[str | None] = mapped_column(String(55))

    events: Mapped[list[RequestEvent]] = relationship(
        primaryjoin="Request.id == foreign(RequestEvent.request_id)",
        back_populates="request",
        order_by="RequestEvent.id",
        cascade="all, delete-orphan",
    )
    export: Mapped[RequestExport | None] = relationship(
        primaryjoin="Request.id == foreign(RequestExport.request_id)", viewonly=True
    )

    @property
    def state(self) -> str:
        """The stored status, or EXPORTED while a batch carries the request."""
        if self.status == PENDING and self.export is not None:
            return EXPORTED
        return self.status

    @property
    def public_status(self) -> str:
        return PUBLIC_STATUS.get(self.state, self.state)

    @property
    def history(self) -> list[HistoryEntry]:
        """Every state change in time order, the export (kept once per batch) included."""
        entries = [HistoryEntry(e.status, e.at, e.detail) for e in self.events]
        if self.export is not None:
            entries.append(self.export.as_history(cancellation=self.status == CANCELLED))
        return sorted(entries, key=lambda e: e.at)  # stable: equal times keep their order


class OutboxEntry(Base):
    """A request waiting to be exported, with the record it will travel as.

    Submitting a request adds its entry; the export writes the entries into batches and
    deletes them, so finding what to send never scans the (ever growing) requests table
    and exporting never rewrites a request row.
    """

    __tablename__ = "request_outbox"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), unique=True)
    user_id: Mapped[str] = mapped_column(String(36))
    profile_type: Mapped[str] = mapped_column(String(64))
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(Timestamp)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # A cancellation on its way: the record tells the response network not to run it.
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    traceparent: Mapped[str | None] = mapped_column(String(55))


class RequestExport(Base):
    """The batch that carried a request out (its EXPORTED step, one row per request).

    No foreign keys on purpose (see `shared.models.BULK_BATCH_ID`): the exporter writes
    these rows in bulk from rows it has just read and locked, and per-row foreign-key
    checks here cost more than the whole export (docs/PERFORMANCE.md).
    """

    __tablename__ = "request_exports"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(Timestamp)

    batch: Mapped[Batch] = relationship(
        primaryjoin="foreign(RequestExport.batch_id) == Batch.id", viewonly=True
    )

    def as_history(self, *, cancellation: bool = False) -> HistoryEntry:
        """The EXPORTED step; for a cancelled request, the batch carried its cancellation."""
        what = "the cancellation in" if cancellation else "in"
        return HistoryEntry(EXPORTED, self.at, f"{what} {self.batch.filename}")


class RequestEvent(Base):
    """Every state change of a request, with its time: a request never silently disappears."""

    __tablename__ = "request_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key (request-network migration 0019): the results import writes one event
    # per answer, and a per-row check doubled that statement's time. Requests are never
    # deleted; every writer holds the request it names.
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    detail: Mapped[str] = mapped_column(Text, default="")

    request: Mapped[Request] = relationship(
        primaryjoin="foreign(RequestEvent.request_id) == Request.id", back_populates="events"
    )


class Response(Base):
    __tablename__ = "responses"

    # No foreign key (migration 0019): only the results import writes these rows, after
    # checking each one's request in the same transaction; requests are never deleted.
    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[int | None] = mapped_column(Integer)
    hits: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime] = mapped_column(Timestamp)
    took_ms: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    batch_id: Mapped[str] = mapped_column(String(36))  # no foreign key: shared.models.BULK_BATCH_ID
    # When its owner first read it (`GET …/response`); set once.
    first_read_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ResponsePart(Base):
    """A part of a split result, kept until every part has arrived (in any batch order)."""

    __tablename__ = "response_parts"

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    parts: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Batch(BatchColumns, Base):
    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("direction", "source", "stream", "seq"),)


class RejectedBatch(RejectedBatchColumns, Base):
    __tablename__ = "rejected_batches"
    __table_args__ = (Index("ix_rejected_batches_source_stream", "source", "stream", "at"),)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hmac: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(4), default="live", server_default="live")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)  # by the owner: final
    # Rotation: the secret the last rotation replaced still opens the key until its end.
    rotated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    previous_key_hmac: Mapped[str | None] = mapped_column(String(64))
    previous_valid_until: Mapped[datetime | None] = mapped_column(Timestamp)
    # Disabled by an admin (`disabled_by`, a user id): refused until an admin enables it.
    disabled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    disabled_by: Mapped[str | None] = mapped_column(String(36))


def _limit_in_range(column: str) -> CheckConstraint:
    """NULL (inherit) or an integer from 0 to the limiter's bound (`MAX_LIMIT`)."""
    return CheckConstraint(
        f'"{column}" IS NULL OR ("{column}" >= 0 AND "{column}" <= {MAX_LIMIT})',
        name=f"{column}_in_range",
    )


class RateLimitOverride(Base):
    """Custom limits an admin set for one user; None keeps the profile type's limit.

    One row per user (the primary key); each limit is checked in the database too.
    """

    __tablename__ = "rate_limit_overrides"
    __table_args__ = tuple(_limit_in_range(w) for w in ("minute", "hour", "day"))

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    minute: Mapped[int | None] = mapped_column(Integer)
    hour: Mapped[int | None] = mapped_column(Integer)
    day: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(36))
    set_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class RateLimitViolation(Base):
    """One blocked request: who (and with which API key), which window, the count it would
    have reached, when."""

    __tablename__ = "rate_limit_violations"
    __table_args__ = (Index("ix_rate_limit_violations_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    window: Mapped[str] = mapped_column(String(8))
    count: Mapped[int] = mapped_column(Integer)
    limit: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(255), default="")
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32))  # the API key used, if any


class AccountLock(AccountLockColumns, Base):
    """Failed logins of an account and, once past the threshold, how long it stays locked."""

    __tablename__ = "account_locks"


class AuditLog(AuditColumns, Base):
    __tablename__ = "audit_log"


class TaskRun(TaskRunColumns, Base):
    """One run of a Celery task of this network (bounded history: `shared.history`)."""

    __tablename__ = "task_runs"
    __table_args__ = (Index("ix_task_runs_name_started_at", "name", "started_at"),)


class HealthSample(HealthSampleColumns, Base):
    """The detailed health as `system_monitoring` sampled it (bounded history)."""

    __tablename__ = "health_samples"


class GovernedSetting(Base):
    """A governed setting as the authority sent it (a `setting` record): its value (null:
    not governed, the deployment's own setting applies), version, arrival and batch (no
    foreign key, like shared.models.BULK_BATCH_ID). `services.governed` reads them."""

    __tablename__ = "governed_settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    batch_id: Mapped[str] = mapped_column(String(36))


class NotificationEvent(NotificationEventColumns, Base):
    """An event to notify about (`shared.notifications`), written with its cause."""

    __tablename__ = "notification_events"


class Notification(NotificationColumns, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        Index("ix_notifications_user_id_read_at_id", "user_id", "read_at", "id"),
    )


class NotificationCondition(NotificationConditionColumns, Base):
    __tablename__ = "notification_conditions"


class NotificationDelivery(NotificationDeliveryColumns, Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "channel", "target"),
        Index("ix_notification_deliveries_status_next", "status", "next_attempt_at"),
    )


class Alert(AlertColumns, Base):
    """An operational alert and its escalation (`shared.alerts`)."""

    __tablename__ = "alerts"


class WebhookEndpoint(WebhookEndpointColumns, Base):
    """A user's webhook endpoint (`shared.webhooks`)."""

    __tablename__ = "webhook_endpoints"


class WebhookAttempt(WebhookAttemptColumns, Base):
    """One delivery attempt to a webhook endpoint (`shared.webhook_sender`), newest first."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_endpoint_id_id", "endpoint_id", "id"),)
