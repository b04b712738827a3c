"""The response network's FastAPI application (health for now; admin endpoints come later)."""

from __future__ import annotations

from fastapi import FastAPI, Response
from sqlalchemy import text

from response_network.settings import ResponseSettings, get_settings
from shared.cache import get_redis, redis_ok
from shared.db import transaction
from shared.problems import install_problem_handlers


def create_app(settings: ResponseSettings | None = None) -> FastAPI:
    app = FastAPI(title="Ferry response network", version="1")
    app.state.settings = settings = settings or get_settings()
    install_problem_handlers(app)

    @app.get("/health", tags=["health"])
    def health(response: Response) -> dict:
        checks = {"redis": "ok" if redis_ok(get_redis(settings.redis_url)) else "unavailable"}
        try:
            with transaction(settings.database_url) as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001 - any database failure means "unavailable"
            checks["database"] = "unavailable"
            response.status_code = 503
        ok = all(v == "ok" for v in checks.values())
        return {"status": "ok" if ok else "degraded", "checks": checks}

    return app
