"""Health (no authentication; says which dependency is down). The detailed health is
`/api/v1/admin/health` (admin_health.py); metrics are in metrics.py."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from request_network.api.deps import AnyoneDep
from request_network.api.schemas import Health
from shared.cache import redis_ok
from shared.health import ferry_version

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(caller: AnyoneDep, response: Response) -> Health:
    checks = {"database": "ok", "redis": "ok" if redis_ok(caller.cache) else "unavailable"}
    try:
        with caller.unit() as unit:
            unit.session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means "unavailable"
        checks["database"] = "unavailable"
    state = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    if checks["database"] != "ok":
        response.status_code = 503
    return Health(status=state, checks=checks, version=ferry_version())
