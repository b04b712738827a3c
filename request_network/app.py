"""The request network's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from request_network.api import (
    admin_cache,
    admin_health,
    admin_queues,
    admin_requests,
    admin_stats,
    admin_users,
    api_keys,
    auth,
    health,
    metrics,
    operator,
    rate_limits,
    requests,
)
from request_network.settings import RequestSettings, get_settings
from shared.http import Admission, BodySizeLimit
from shared.http_edge import SecurityHeaders
from shared.problems import install_problem_handlers
from transfer.operator.api import PREFIX as OPERATOR_PREFIX


def create_app(settings: RequestSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Ferry request network", version="1", **settings.fastapi_docs())
    app.state.settings = settings
    install_problem_handlers(app)
    for module in (auth, requests, api_keys, rate_limits, operator, health, metrics):
        app.include_router(module.router)
    admin = (admin_users, admin_requests, admin_stats, admin_cache, admin_health, admin_queues)
    for module in admin:  # the operations surface (docs/OPERATIONS.md)
        app.include_router(module.router)
    app.include_router(operator.admin_router)
    app.add_middleware(Admission, **settings.admission())
    app.add_middleware(
        BodySizeLimit,
        max_bytes=app.state.settings.max_body_bytes,
        exempt_prefixes=(f"{OPERATOR_PREFIX}/inbox/",),
    )
    app.add_middleware(SecurityHeaders, fastapi_app=app)  # outermost: on every reply
    return app
