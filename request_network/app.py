"""The request network's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from request_network.api import admin_users, api_keys, auth, health, rate_limits, requests
from request_network.settings import RequestSettings, get_settings
from shared.http import BodySizeLimit
from shared.problems import install_problem_handlers


def create_app(settings: RequestSettings | None = None) -> FastAPI:
    app = FastAPI(title="Ferry request network", version="1")
    app.state.settings = settings or get_settings()
    install_problem_handlers(app)
    for module in (auth, requests, api_keys, rate_limits, admin_users, health):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=app.state.settings.max_body_bytes)
    return app
