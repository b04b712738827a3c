"""Governed settings as this network applies them (`services.governed.list_settings`): each
key's value in force and where it comes from, the version the response network sent and when
it arrived. Read only: they change on the response network (its panel, its API, or
`ferry response settings`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from request_network.services import governed
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.paging import Paging
from shared.panel.settings_table import settings_table

router = APIRouter()
SORTS = ("key", "value", "source", "version", "received_at", "default", "bounds")


@router.get("/settings")
def settings_page(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    paging: Paging,
    sort: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    with panel.reads() as session:
        items = governed.list_settings(panel.settings, session=session)
    table = settings_table(items, SORTS, sort=sort, paging=paging)
    return panel.render(request, viewer, "settings.html", title="Settings", **table)
