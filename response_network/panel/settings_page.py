"""Governed settings on their authority (DESIGN.md §9): every key with its value in force,
where it comes from, default, bounds, version, who changed it last and whether an export has
carried it (`services.governed.list_settings`); a form per key that changes it as
`PUT /api/v1/admin/settings` does (checked by the API's `SettingsChange`, then
`services.governed.set_values`: versioned and audited `setting.changed` with the admin's
username), each refusal shown beside its field; and the change history
(`services.governed.setting_history`, the `setting.changed` audit rows), sorted by any of
its columns; each heading of the latest changes on the settings page links to it, sorted by
that column."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from response_network.services import governed
from shared.admin_schemas import SettingsChange
from shared.governed import REGISTRY, InvalidSettings
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import PREFIX, Panel, Refused, Viewer
from shared.panel.forms import choice
from shared.panel.paging import PageRequest, Paging, Sort, columns_of, page_request, sorting
from shared.panel.settings_table import json_text, settings_table

router = APIRouter()
SORTS = ("key", "value", "source", "version", "updated_at", "default", "bounds")
PAGE = f"{PREFIX}/settings"
LATEST = 10
FIRST_PAGE = page_request()
#: The columns the change history sorts by (`services.governed.HistorySort`); the latest
#: changes the settings page shows are its first page, newest first.
HISTORY_SORTS = columns_of(governed.HistorySort)
HistoryOrder = sorting(HISTORY_SORTS, "-at")
LATEST_FIRST = Sort.of(None, HISTORY_SORTS, "-at")


def _page(
    request: Request,
    panel: Panel,
    viewer: Viewer,
    *,
    sort: str | None = None,
    paging: PageRequest = FIRST_PAGE,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with panel.reads() as session:
        items = governed.list_settings(panel.settings, session=session)
        changes, _ = governed.setting_history(session=session, limit=LATEST, offset=0)
    table = settings_table(items, SORTS, sort=sort, paging=paging)
    for item in table["rows"]:
        item["form_text"] = (typed or {}).get(item["key"], item["value_text"])
    return panel.render(
        request,
        viewer,
        "settings.html",
        status_code=status_code,
        title="Settings",
        errors=errors or {},
        changes=[_shown(c) for c in changes],
        history_sort=LATEST_FIRST,
        **table,
    )


def _shown(change: dict[str, Any]) -> dict[str, Any]:
    return change | {"old_text": json_text(change["old"]), "new_text": json_text(change["new"])}


@router.get("/settings")
def settings_page(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    paging: Paging,
    sort: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    return _page(request, panel, viewer, sort=sort, paging=paging)


def _refusals(exc: ValidationError, key: str) -> str:
    return "; ".join(e["msg"] for e in exc.errors()) or f"invalid value for {key}"


@router.post("/settings/{key}")
def change_setting(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    key: str,
    value: Annotated[str, Form(max_length=65536)] = "",
    reset: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """One key: its new value as JSON (a number, or an object), or back to the default."""
    if key not in REGISTRY:
        raise Refused(404, "Not found", "not a governed setting")

    def refused(why: str) -> Response:
        return _page(request, panel, viewer, errors={key: why}, typed={key: value}, status_code=422)

    if reset == "yes":
        new: Any = None
    else:
        try:
            new = json.loads(value)
        except ValueError:
            return refused("not a JSON value (a number such as 0.75, or an object in {…})")
    try:
        body = SettingsChange.model_validate({"values": {key: new}})
    except ValidationError as exc:
        return refused(_refusals(exc, key))
    settings = panel.settings
    try:
        with panel.unit() as session:
            _, changed = governed.set_values(
                body.changes(), settings, session=session, actor=viewer.username
            )
    except InvalidSettings as exc:
        return refused("; ".join(why for _, why in exc.errors))
    said = f"{key} changed" if changed else f"{key} unchanged (the same value)"
    return panel.redirect(viewer, PAGE, said)


@router.get("/settings/history")
def history(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    paging: Paging,
    order: HistoryOrder,
    key: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    with panel.reads() as session:
        rows, total = governed.setting_history(
            session=session,
            key=choice(key, tuple(REGISTRY)),
            sort=order.value,
            limit=paging.limit,
            offset=paging.offset,
        )
    return panel.render(
        request,
        viewer,
        "settings_history.html",
        title="Settings history",
        rows=[_shown(r) for r in rows],
        keys=list(REGISTRY),
        sort=order,
        history_sort=order,
        page=paging.of(total),
    )
