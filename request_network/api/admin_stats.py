"""Admin: what the request network has been doing, read from its tables."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from request_network.api.deps import AdminDep
from request_network.services import stats

router = APIRouter(tags=["admin-stats"])


class HourCount(BaseModel):
    hour: str = Field(description="UTC hour, e.g. 2026-12-05T10:00:00Z")
    count: int


class Turnaround(BaseModel):
    days: int
    responses: int
    p50_seconds: float | None = Field(description="Submit to response available")
    p95_seconds: float | None


class BatchFigures(BaseModel):
    batches: int
    records: int
    processing_ms_mean: float | None
    error_rate: float = Field(description="Records refused / records")


class BatchDay(BaseModel):
    day: str
    in_: BatchFigures = Field(alias="in")
    out: BatchFigures


class BatchDays(BaseModel):
    days: list[BatchDay]


class RequestNetworkStats(BaseModel):
    at: datetime
    requests_by_status: dict[str, int]
    submissions_per_hour: list[HourCount] = Field(description="The last 24 hours, oldest first")
    turnaround: Turnaround
    batches: BatchDays = Field(description="The last 14 days, oldest first")
    rate_limit_refusals_24h: dict[str, int] = Field(description="Refused submissions by window")


@router.get("/api/v1/admin/stats", response_model=RequestNetworkStats, response_model_by_alias=True)
def admin_stats(caller: AdminDep) -> dict:
    with caller.reads() as unit:
        return stats.stats(session=unit.session)
