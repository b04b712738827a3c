"""The request network's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from request_network.api import (
    account,
    admin_alerts,
    admin_api_keys,
    admin_cache,
    admin_health,
    admin_queues,
    admin_requests,
    admin_settings,
    admin_stats,
    admin_users,
    api_keys,
    auth,
    health,
    metrics,
    notifications,
    operator,
    rate_limits,
    requests,
    webhooks,
)
from request_network.panel import install_panel
from request_network.services import governed
from request_network.settings import RequestSettings, get_settings
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
    # The governed settings in force are read once before the first request needs them.
    await run_in_threadpool(governed.warm, app.state.settings)
    async with reloading_on_sighup(app, get_settings.replace):  # docs/OPERATIONS.md
        yield


def create_app(settings: RequestSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Ferry request network", version="1", lifespan=_lifespan, **settings.fastapi_docs()
    )
    install_api_docs(app)  # /docs, from this origin, when the schema is served
    app.state.settings = settings
    configure_breakers(settings)  # shared.breaker: this process's thresholds
    tracing.setup(f"ferry-{settings.network_id}", settings)  # off unless configured
    tracing.instrument_app(app)
    install_problem_handlers(app)
    users = (auth, account, requests, api_keys, rate_limits, notifications, webhooks)
    for module in (*users, operator, health, metrics):
        app.include_router(module.router)
    admin = (admin_users, admin_requests, admin_stats, admin_cache, admin_health, admin_queues)
    admin += (admin_api_keys, admin_settings, admin_alerts)
    for module in admin:  # the operations surface (docs/OPERATIONS.md)
        app.include_router(module.router)
    app.include_router(operator.admin_router)
    app.add_middleware(Admission, **settings.admission())
    app.add_middleware(
        BodySizeLimit,
        max_bytes=app.state.settings.max_body_bytes,
        exempt_prefixes=(f"{OPERATOR_PREFIX}/inbox/",),
    )
    app.add_middleware(HttpMetrics, fastapi_app=app)  # every request timed, refusals too
    app.add_middleware(SecurityHeaders, fastapi_app=app)  # outermost: on every reply
    app.add_middleware(RequestLogging)  # around all: each reply logged, X-Request-ID on it
    install_panel(app, settings)  # the admin panel at /admin (docs/PANEL.md)
    return app
