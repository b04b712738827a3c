"""Admin: what the response network has been doing, read from its tables."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from response_network.api.deps import Caller, caller
from response_network.services import stats
from shared.admin_schemas import BatchDays

router = APIRouter(tags=["admin-stats"])
AdminDep = Annotated[Caller, Depends(caller("admin"))]


class HourExecutions(BaseModel):
    hour: str = Field(description="UTC hour, e.g. 2026-12-05T10:00:00Z")
    executions: int = Field(description="Executions started in this hour")
    failed: int


class ProfileTypeFigures(BaseModel):
    profile_type: str
    executions: int = Field(description="Started in the last 24 hours")
    failures: int
    failure_rate: float = Field(description="Failed / finished executions")
    p50_ms: float | None = Field(description="Query latency (the search's `took`)")
    p95_ms: float | None


class ResponseNetworkStats(BaseModel):
    at: datetime
    requests_by_status: dict[str, int] = Field(description="Imported requests by status")
    executions_per_hour: list[HourExecutions] = Field(description="The last 24 hours, oldest first")
    profile_types: list[ProfileTypeFigures] = Field(description="The last 24 hours")
    batches: BatchDays = Field(description="The last 14 days, oldest first")


@router.get(
    "/api/v1/admin/stats", response_model=ResponseNetworkStats, response_model_by_alias=True
)
def admin_stats(admin: AdminDep) -> dict:
    with admin.unit() as unit:
        return stats.stats(session=unit.session)
