"""A destructive action of a page, as the panel serves each: `POST <path>` on one thing (a
request, a user) asks first (the confirmation page, or panel.js's dialog) and then calls
one service function in a unit of work, which audits it, and goes back to the thing's page
with what was done, or with the service's refusal (`Panel.act`).

(No `from __future__ import annotations` here: the route's annotations name the id type
given to `add_confirmed`, which FastAPI must see evaluated.)
"""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import Panel, Viewer
from shared.panel.forms import Confirmed

#: What an action calls: with the panel, the admin, the thing's id and the unit of work.
Call = Callable[[Panel, Viewer, str, Session], Any]


def add_confirmed(
    router: APIRouter,
    path: str,
    *,
    id_type: Any,
    question: str,
    done: str,
    back: Callable[[str], str],
    call: Call,
) -> None:
    """`POST path` for admins, `path` naming the thing as `{thing_id}` (of `id_type`):
    asks `question`, then `call`; back to `back(thing_id)` saying `done`."""

    @router.post(path, name=path.strip("/").replace("/", "_").replace("{thing_id}", "id"))
    def act(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        thing_id: id_type,
        confirmed: Confirmed = "",
    ) -> Response:
        return panel.act(
            request,
            viewer,
            confirmed,
            question=question,
            back=back(thing_id),
            done=done,
            call=lambda session: call(panel, viewer, thing_id, session),
        )
