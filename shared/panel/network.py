"""A network's panel put together: the shared shell (login, layout, batches, quarantine,
queues and tasks, alerts and notifications) with the network's own pages, accounts and
templates, served at `/admin` of its API (`install`); and the navigation entries both
networks have, for each to list with its own in their place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from shared.db import transaction
from shared.panel import alerts_pages, batch_pages, quarantine_pages, queue_pages
from shared.panel.accounts import TokenUser, UserAccounts
from shared.panel.app import mount
from shared.panel.core import PREFIX, NavItem, Panel
from shared.panel.operator_desk import OperatorDesk
from shared.settings import FerrySettings

STAFF = ("admin", "operator")


def nav_item(key: str, label: str, roles: tuple[str, ...] = ("admin",)) -> NavItem:
    """The page at `/admin/<key>` in the navigation, for `roles`."""
    return NavItem(key, label, f"{PREFIX}/{key}", roles)


DASHBOARD = nav_item("dashboard", "Dashboard")
USERS = nav_item("users", "Users")
REQUESTS = nav_item("requests", "Requests")
BATCHES = nav_item("batches", "Batches", STAFF)
QUARANTINE = nav_item("quarantine", "Quarantine", STAFF)
QUEUES = nav_item("queues", "Queues & tasks")
SETTINGS = nav_item("settings", "Settings")
ALERTS = nav_item("alerts", "Alerts")


def install(
    api: FastAPI,
    settings: FerrySettings,
    *,
    network: str,
    templates: Path,
    nav: list[NavItem],
    pages: Sequence[APIRouter],
    user_model: type,
    login_service: Callable[..., Any],
    token_user: TokenUser,
    desk: OperatorDesk,
    queues: Any,
    notifications: Any,
) -> None:
    """Serve the panel at `/admin` of `api`, with the API's settings (`api.state.settings`,
    which a SIGHUP reload replaces; `settings` until it is set): the network's own `pages`
    and `templates`, its accounts (`UserAccounts` over `user_model`, `login_service` and
    `token_user`), and the shared pages over its `OperatorDesk`, its `services.queues` and
    its `services.notifications`."""

    def current() -> FerrySettings:
        return getattr(api.state, "settings", None) or settings

    panel = Panel.build(
        current,
        network=network,
        accounts=UserAccounts(current, user_model, login_service, token_user),
        nav=nav,
        template_dirs=[templates],
    )
    shared_pages = [
        batch_pages.build_router(desk),
        quarantine_pages.build_router(desk),
        queue_pages.build_router(queues),
        alerts_pages.build_router(lambda: transaction(current().database_url), notifications),
    ]
    mount(api, panel, [*pages, *shared_pages])
