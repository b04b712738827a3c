"""The response network's admin panel at `/admin` (docs/PANEL.md): the shared shell
(`shared.panel`) with this network's pages, one module per page group, each calling the
services the admin API's routes call. Batches, quarantine, queues, alerts and notifications
are the shared pages over this network's tables and services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from redis import Redis
from sqlalchemy.orm import Session

from response_network.models import AuditLog, Batch, User
from response_network.panel import dashboard, request_pages, settings_page, users
from response_network.services import auth, notifications, queues
from response_network.settings import ResponseSettings
from shared.panel import network as shell
from transfer.operator.desk import operator_desk

TEMPLATES = Path(__file__).parent / "templates"
NAV = [
    shell.DASHBOARD,
    shell.USERS,
    shell.REQUESTS,
    shell.nav_item("executions", "Executions"),
    shell.BATCHES,
    shell.QUARANTINE,
    shell.QUEUES,
    shell.SETTINGS,
    shell.ALERTS,
]
PAGES = (dashboard, users, request_pages, settings_page)


def _token_user(settings: ResponseSettings, _cache: Redis, token: str, session: Session) -> Any:
    return auth.user_for_token(settings, token, session=session)


def install_panel(app: FastAPI, settings: ResponseSettings) -> None:
    """Serve the panel at `/admin` of the response network's API."""
    shell.install(
        app,
        settings,
        network="response",
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
