"""Response network tables: the user authority, imported requests, executions, results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
from shared.webhook_models import WebhookAttemptColumns, WebhookEndpointColumns

QUEUED, RUNNING, DONE, FAILED = "QUEUED", "RUNNING", "DONE", "FAILED"
CANCELLED = "CANCELLED"  # cancelled on the request network before it ran


class Base(DeclarativeBase):
    metadata = naming_metadata()


class ProfileType(ProfileTypeColumns, Base):
    __tablename__ = "profile_types"
    exported_version: Mapped[int] = mapped_column(Integer, default=0)


class User(UserColumns, Base):
    """The authority for users; changes reach the request network through `users` batches."""

    __tablename__ = "users"
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    exported_version: Mapped[int] = mapped_column(Integer, default=0)
    # The version at which this network itself last set the password (creation, an admin's
    # reset): a user's own change made on an older version loses to it.
    password_set_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # False while a password change waits for `password_sync` to send it back.
    password_synced: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The last of the user's own changes (`user_change` records, numbered by the request
    # network) applied here: a replayed or older one changes nothing.
    own_changes_applied: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AccountLock(AccountLockColumns, Base):
    """Failed logins of an account and, once past the threshold, how long it stays locked."""

    __tablename__ = "account_locks"


class ImportedRequest(Base):
    __tablename__ = "imported_requests"
    __table_args__ = (Index("ix_imported_requests_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))  # no index: nothing looks it up
    profile_type: Mapped[str] = mapped_column(String(64))
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    # The request network's sending of it (its record's version): a higher one is a retry,
    # run once more; the same one again is a replay and changes nothing.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    batch_id: Mapped[str] = mapped_column(String(36))  # no foreign key: shared.models.BULK_BATCH_ID
    imported_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # As its record carried them (`shared.correlation`); None when it carried none.
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    traceparent: Mapped[str | None] = mapped_column(String(55))


class Execution(Base):
    """One attempt at running a request against Elasticsearch."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("imported_requests.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    error: Mapped[str | None] = mapped_column(Text)
    took_ms: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class Result(Base):
    __tablename__ = "results"
    # The unexported results in the order the export reads them (response migration 0016).
    __table_args__ = (
        Index(
            "ix_results_unexported",
            "executed_at",
            "request_id",
            postgresql_where=text("batch_id IS NULL"),
            sqlite_where=text("batch_id IS NULL"),
        ),
    )

    request_id: Mapped[str] = mapped_column(ForeignKey("imported_requests.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[int | None] = mapped_column(Integer)
    hits: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    took_ms: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The batch that carried it out; no foreign key: shared.models.BULK_BATCH_ID.
    batch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # What its record carries back: the request's correlation id and trace context.
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    traceparent: Mapped[str | None] = mapped_column(String(55))


class Batch(BatchColumns, Base):
    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("direction", "source", "stream", "seq"),)


class RejectedBatch(RejectedBatchColumns, Base):
    __tablename__ = "rejected_batches"
    __table_args__ = (Index("ix_rejected_batches_source_stream", "source", "stream", "at"),)


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
    """A governed setting as the authority set it (DESIGN.md §9, `shared.governed`): its value
    (null: back to the default), a version raised by each change, who changed it last, and
    the version the last `settings` export carried (as for users)."""

    __tablename__ = "governed_settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))
    exported_version: Mapped[int] = mapped_column(Integer, default=0)


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
