"""Admin: the detailed health of every component (`/health` is the public, cheap one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from response_network.api.deps import Caller, caller
from response_network.services import health
from shared.admin_schemas import DetailedHealth

router = APIRouter(tags=["admin-health"])
AdminDep = Annotated[Caller, Depends(caller("admin"))]


@router.get("/api/v1/admin/health", response_model=DetailedHealth)
def detailed_health(admin: AdminDep) -> DetailedHealth:
    """Every component `ok`, `degraded` or `down`, with a reason (the search cluster and the
    index of every profile type too). The probes run at once, each within its own short
    timeout; one that does not answer in time is `down` and `timed_out`."""
    return DetailedHealth.of(health.detailed_health(admin.settings))
