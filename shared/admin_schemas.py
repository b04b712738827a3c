"""Bodies of the admin health, queue, task and settings routes, the same on both networks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.governed import GovernedValues
from shared.health import HealthReport

Status = Literal["ok", "degraded", "down"]


class BatchFigures(BaseModel):
    """One direction's batches of one day (`transfer.operator.batch_report.per_day`)."""

    batches: int
    records: int
    processing_ms_mean: float | None
    error_rate: float = Field(description="Results that report a failed query / records")


class BatchDay(BaseModel):
    day: str
    in_: BatchFigures = Field(alias="in")
    out: BatchFigures


class BatchDays(BaseModel):
    days: list[BatchDay]


class ComponentHealth(BaseModel):
    name: str
    status: Status
    reason: str
    latency_ms: float | None
    timed_out: bool
    details: dict[str, Any]


class DetailedHealth(BaseModel):
    status: Status
    version: str
    checked_at: datetime
    components: list[ComponentHealth]

    @classmethod
    def of(cls, report: HealthReport) -> DetailedHealth:
        return cls.model_validate(report.as_dict())


class QueueDepth(BaseModel):
    name: str
    depth: int | None  # None when it could not be read (`error` says why)
    error: str | None


class TaskBrief(BaseModel):
    id: str | None
    name: str | None
    started_at: str | None
    eta: str | None
    worker_pid: int | None


class WorkerTasks(BaseModel):
    name: str
    active: list[TaskBrief]
    reserved: list[TaskBrief]
    scheduled: list[TaskBrief]


class ScheduleEntry(BaseModel):
    entry: str
    task: str
    schedule: str
    last_run_at: datetime | None
    last_outcome: str | None
    next_run_at: datetime
    late_s: float | None


class QueuesView(BaseModel):
    network: str
    broker: str
    checked_at: datetime
    queues: list[QueueDepth]
    workers: list[WorkerTasks]
    workers_note: str | None  # e.g. "no worker answered within 1 s"
    schedule: list[ScheduleEntry]
    schedule_note: str | None


class TaskEnqueued(BaseModel):
    task_id: str
    task: str
    entry: str
    queue: str


class TaskRunOut(BaseModel):
    name: str
    task_id: str | None
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    outcome: str
    counts: dict[str, Any] | None
    error: str | None


class TaskState(BaseModel):
    task_id: str
    state: str  # Celery's: PENDING, STARTED, SUCCESS, FAILURE, RETRY, REVOKED
    result: dict[str, Any] | None
    backend_error: str | None
    run: TaskRunOut | None


class QueuePurged(BaseModel):
    queue: str
    purged: int


__all__ = [
    "ComponentHealth",
    "DetailedHealth",
    "QueueDepth",
    "QueuePurged",
    "QueuesView",
    "ScheduleEntry",
    "TaskEnqueued",
    "TaskRunOut",
    "TaskState",
    "WorkerTasks",
]


class SettingsChange(BaseModel):
    """`PUT /api/v1/admin/settings`: governed settings to change, all or nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"values": {"rate_limits.soft_ratio": 0.75}}]},
    )

    values: GovernedValues = Field(  # type: ignore[valid-type]
        description="key → new value (JSON, typed and bounded per key); null sets a key back "
        "to its default"
    )

    def changes(self) -> dict[str, Any]:
        """The keys given, with their values in JSON form (null kept)."""
        return self.values.model_dump(mode="json", by_alias=True, exclude_unset=True)
