"""The user list, the same on both networks: search by part of the username, filter by role
and state, sort by any column (`shared.user_list.UserSort`), a page at a time (the network's
`services.users.list_users`, as its admin API). Each network adds its own user pages to the
router (`build_router`) and its own columns to the template (`users.html` over
`user_list.html`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from shared import user_list
from shared.panel.core import PREFIX
from shared.panel.forms import Choice, Text, choice, text
from shared.panel.listing import add_list
from shared.panel.paging import columns_of

ROLES = ("user", "operator", "admin")
STATUSES = ("active", "inactive", "locked")
SORTS = columns_of(user_list.UserSort)


def user_page(user_id: str) -> str:
    return f"{PREFIX}/users/{user_id}"


def user_filters(name: Text = None, role: Choice = None, status: Choice = None) -> dict[str, Any]:
    """The list's filters as `services.users.list_users` takes them."""
    return {"name": text(name), "role": choice(role, ROLES), "status": choice(status, STATUSES)}


def build_router(list_users: Callable[..., tuple[list[dict[str, Any]], int]]) -> APIRouter:
    """`list_users`: the network's `services.users.list_users`."""
    router = APIRouter()
    add_list(
        router,
        "/users",
        template="users.html",
        title="Users",
        service=list_users,
        filters=user_filters,
        sorts=SORTS,
        default="username",
        roles=ROLES,
        statuses=STATUSES,
    )
    return router
