"""Admin: the detailed health of every component (`/health` is the public, cheap one)."""

from __future__ import annotations

from fastapi import APIRouter

from request_network.api.deps import AdminDep
from request_network.services import health
from shared.admin_schemas import DetailedHealth

router = APIRouter(tags=["admin-health"])


@router.get("/api/v1/admin/health", response_model=DetailedHealth)
def detailed_health(caller: AdminDep) -> DetailedHealth:
    """Every component `ok`, `degraded` or `down`, with a reason. The probes run at once,
    each within its own short timeout, so one slow component cannot hold the reply; one that
    does not answer in time is `down` and `timed_out`. The status is the worst of them."""
    return DetailedHealth.of(health.detailed_health(caller.settings))
