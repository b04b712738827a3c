"""Health (no authentication; says which dependency is down)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from response_network.api.deps import AnyoneDep
from response_network.api.schemas import Health
from shared.cache import get_redis, redis_ok
from shared.health import ferry_version

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(caller: AnyoneDep, response: Response) -> Health:
    checks = {"redis": "ok" if redis_ok(get_redis(caller.settings.redis_url)) else "unavailable"}
    try:
        with caller.unit() as unit:
            unit.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any database failure means "unavailable"
        checks["database"] = "unavailable"
        response.status_code = 503
    ok = all(v == "ok" for v in checks.values())
    return Health(status="ok" if ok else "degraded", checks=checks, version=ferry_version())
