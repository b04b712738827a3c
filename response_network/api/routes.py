"""Response network routes: login, health, and the operator's batch endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response
from sqlalchemy import text

from response_network.api.deps import AnyoneDep, caller
from response_network.models import AuditLog, Batch
from response_network.services import auth
from shared.cache import get_redis, redis_ok
from transfer.operator_api import admin_batches_router, network_operator_router

router = APIRouter()


@router.post("/api/v1/auth/login", tags=["auth"])
def login(
    caller: AnyoneDep,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=72)],
) -> dict:
    with caller.unit() as unit:
        return auth.login(
            caller.settings, session=unit.session, username=username, password=password
        )


@router.get("/health", tags=["health"])
def health(caller: AnyoneDep, response: Response) -> dict:
    checks = {"redis": "ok" if redis_ok(get_redis(caller.settings.redis_url)) else "unavailable"}
    try:
        with caller.unit() as unit:
            unit.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any database failure means "unavailable"
        checks["database"] = "unavailable"
        response.status_code = 503
    ok = all(v == "ok" for v in checks.values())
    return {"status": "ok" if ok else "degraded", "checks": checks}


operator_routes = network_operator_router(
    operator_caller=caller("operator"), audit_model=AuditLog, batch_model=Batch
)
admin_routes = admin_batches_router(admin_caller=caller("admin"), batch_model=Batch)
