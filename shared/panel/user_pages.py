"""The user list, the same on both networks: search by part of the username, filter by role
and state, sort by username, role or last change, a page at a time (the network's
`services.users.list_users`, as its admin API). Each network adds its own user pages to the
router (`build_router`) and its own columns to the template (`users.html` over
`user_list.html`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import PREFIX
from shared.panel.forms import Choice, Text, choice, text
from shared.panel.paging import Paging, Sort

ROLES = ("user", "operator", "admin")
STATUSES = ("active", "inactive", "locked")
SORTS = ("username", "role", "updated_at")


def user_page(user_id: str) -> str:
    return f"{PREFIX}/users/{user_id}"


def build_router(list_users: Callable[..., tuple[list[dict[str, Any]], int]]) -> APIRouter:
    """`list_users`: the network's `services.users.list_users`."""
    router = APIRouter()

    @router.get("/users")
    def users(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        paging: Paging,
        name: Text = None,
        role: Choice = None,
        status: Choice = None,
        sort: Choice = None,
    ) -> Response:
        order = Sort.of(sort, SORTS, "username")
        with panel.reads() as session:
            rows, total = list_users(
                session=session,
                name=text(name),
                role=choice(role, ROLES),
                status=choice(status, STATUSES),
                sort=order.value,
                limit=paging.limit,
                offset=paging.offset,
            )
        return panel.render(
            request,
            viewer,
            "users.html",
            title="Users",
            rows=rows,
            sort=order,
            page=paging.of(total),
            roles=ROLES,
            statuses=STATUSES,
        )

    return router
