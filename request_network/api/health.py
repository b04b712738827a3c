"""Health (no authentication; says which dependency is down) and metrics (operators)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from request_network.api.deps import AnyoneDep, OperatorDep
from request_network.api.schemas import Health
from shared.cache import redis_ok

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
    return Health(status=state, checks=checks)


@router.get("/metrics", response_class=Response)
def metrics(_operator: OperatorDep) -> Response:
    """Prometheus metrics; scrape with an operator's API key (scope `operator`)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
