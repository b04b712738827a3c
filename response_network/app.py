"""The response network's FastAPI application: login, health and operator endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from response_network.api.routes import admin_routes, operator_routes, router
from response_network.settings import ResponseSettings, get_settings
from shared.http import Admission
from shared.problems import install_problem_handlers


def create_app(settings: ResponseSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Ferry response network", version="1", **settings.fastapi_docs())
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(router)
    app.include_router(operator_routes)
    app.include_router(admin_routes)
    app.add_middleware(Admission, **settings.admission())
    return app
