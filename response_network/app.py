"""The response network's FastAPI application: login, health and operator endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from response_network.api import (
    admin_alerts,
    admin_executions,
    admin_health,
    admin_queues,
    admin_requests,
    admin_settings,
    admin_snapshot,
    admin_stats,
    admin_users,
    auth,
    health,
    metrics,
    notifications,
    operator,
    webhooks,
)
from response_network.panel import install_panel
from response_network.settings import ResponseSettings, get_settings
from shared import tracing
from shared.api_docs import install_api_docs
from shared.breaker import configure_from as configure_breakers
from shared.http import Admission, BodySizeLimit
from shared.http_edge import SecurityHeaders
from shared.http_logging import RequestLogging
from shared.http_metrics import HttpMetrics
from shared.problems import install_problem_handlers
from shared.reload import reloading_on_sighup
from transfer.operator.api import PREFIX as OPERATOR_PREFIX


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with reloading_on_sighup(app, get_settings.replace):  # docs/OPERATIONS.md
        yield


def create_app(settings: ResponseSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Ferry response network", version="1", lifespan=_lifespan, **settings.fastapi_docs()
    )
    install_api_docs(app)  # /docs, from this origin, when the schema is served
    app.state.settings = settings
    configure_breakers(settings)  # shared.breaker: this process's thresholds
    tracing.setup(f"ferry-{settings.network_id}", settings)  # off unless configured
    tracing.instrument_app(app)
    install_problem_handlers(app)
    for module in (auth, operator, health, metrics, notifications, webhooks):
        app.include_router(module.router)
    admin = (admin_users, admin_health, admin_queues, admin_settings, admin_snapshot)
    admin += (admin_alerts,)
    for module in admin:  # OPERATIONS.md
        app.include_router(module.router)
    for module in (admin_requests, admin_executions, admin_stats):  # steering (OPERATIONS.md)
        app.include_router(module.router)
    app.include_router(operator.admin_router)
    app.add_middleware(Admission, **settings.admission())
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        exempt_prefixes=(f"{OPERATOR_PREFIX}/inbox/",),
    )
    app.add_middleware(HttpMetrics, fastapi_app=app)  # every request timed, refusals too
    app.add_middleware(SecurityHeaders, fastapi_app=app)  # outermost: on every reply
    app.add_middleware(RequestLogging)  # around all: each reply logged, X-Request-ID on it
    install_panel(app, settings)  # the admin panel at /admin (docs/PANEL.md)
    return app
