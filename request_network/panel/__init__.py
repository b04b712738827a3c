"""The request network's admin panel at `/admin` (docs/PANEL.md): the shared shell
(`shared.panel`) with this network's pages, one module per page group, each calling the
services the admin API's routes call. Batches, quarantine, queues, alerts and notifications
are the shared pages over this network's tables and services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from redis import Redis
from sqlalchemy.orm import Session

from request_network.models import AuditLog, Batch, User
from request_network.panel import cache_pages, dashboard, request_pages, settings_page, users
from request_network.services import auth, notifications, queues
from request_network.settings import RequestSettings
from shared.panel import network as shell
from transfer.operator.desk import operator_desk

TEMPLATES = Path(__file__).parent / "templates"
NAV = [
    shell.DASHBOARD,
    shell.USERS,
    shell.REQUESTS,
    shell.BATCHES,
    shell.QUARANTINE,
    shell.nav_item("cache", "Cache"),
    shell.QUEUES,
    shell.SETTINGS,
    shell.ALERTS,
]
PAGES = (dashboard, users, request_pages, cache_pages, settings_page)


def _token_user(settings: RequestSettings, cache: Redis, token: str, session: Session) -> Any:
    user, _ = auth.authenticate_token(settings, cache, token, session=session)
    return user


def install_panel(app: FastAPI, settings: RequestSettings) -> None:
    """Serve the panel at `/admin` of the request network's API."""
    shell.install(
        app,
        settings,
        network="request",
        templates=TEMPLATES,
        nav=NAV,
        pages=[page.router for page in PAGES],
        user_model=User,
        login_service=auth.login,
        token_user=_token_user,
        desk=operator_desk(Batch, AuditLog),
        queues=queues,
        notifications=notifications,
    )
