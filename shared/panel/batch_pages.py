"""Batches, for operators and admins, the same on both networks: what to carry next (the
outbox, in carrying order, each file downloadable), what was carried and waits for its
acknowledgement, what waits in the inbox, what was acknowledged; per stream the sequence sent,
acknowledged and received with its gaps. The operator API's calls, through the network's
`OperatorDesk` (`transfer.operator.status.transfer_status`, `transfer.operator.files`).
Admins also page through every batch's metadata (`transfer.operator.batch_report`, as
`GET /api/v1/admin/batches`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from shared.db import reading
from shared.panel.access import AdminViewer, PanelDep, StaffViewer
from shared.panel.core import Refused
from shared.panel.forms import choice
from shared.panel.operator_desk import OperatorDesk
from shared.panel.paging import Paging, Sort, sort_rows
from shared.settings import FerrySettings
from shared.validation import BatchFileName

TABS = ("outbox", "carried", "inbox", "acked")
SORTS = {
    "outbox": ("stream", "seq", "bytes", "modified_at"),
    "carried": ("stream", "seq", "age_seconds", "file"),
    "inbox": ("file",),
    "acked": ("file",),
}
DEFAULT_SORT = {"outbox": "stream", "carried": "-age_seconds", "inbox": "file", "acked": "file"}
STREAMS = ("requests", "results", "users", "settings", "profile_types", "acks")


def build_router(desk: OperatorDesk) -> APIRouter:
    router = APIRouter()

    def status_of(settings: FerrySettings) -> dict[str, Any]:
        with reading(settings.database_url) as session:
            return desk.status(session, settings)

    def rows_of(settings: FerrySettings, tab: str, status: dict) -> list[dict]:
        if tab == "outbox":
            return desk.files.outbox_batches(settings.outbox)
        if tab == "carried":
            return status["unacked"]
        if tab == "inbox":
            return [{"file": name} for name in status["inbox"]]
        return [{"file": name} for name in desk.acked(settings.outbox)]

    @router.get("/batches")
    def batches(
        request: Request,
        panel: PanelDep,
        viewer: StaffViewer,
        paging: Paging,
        tab: Annotated[str | None, Query(max_length=16)] = None,
        sort: Annotated[str | None, Query(max_length=32)] = None,
    ) -> Response:
        tab = choice(tab, TABS) or "outbox"
        order = Sort.of(sort, SORTS[tab], DEFAULT_SORT[tab])
        status = status_of(panel.settings)
        rows = sort_rows(rows_of(panel.settings, tab, status), order)
        page = paging.of(len(rows))
        return panel.render(
            request,
            viewer,
            "batches.html",
            title="Batches",
            tab=tab,
            tabs=TABS,
            status=status,
            rows=page.cut(rows),
            sort=order,
            page=page,
        )

    @router.get("/batches/outbox/{name}")
    def download(panel: PanelDep, viewer: StaffViewer, name: BatchFileName) -> Response:
        """One batch of the outbox, to carry (as `GET /api/v1/operator/outbox/{name}`)."""
        try:
            path = desk.files.outbox_file(panel.settings.outbox, name)
        except desk.operator_error as exc:
            raise Refused(exc.status, "Not available", exc.detail) from None
        return FileResponse(
            path,
            media_type="application/x-ndjson",
            filename=path.name,
            headers={"Digest": f"sha-256={desk.files.describe(path)['sha256']}"},
        )

    @router.get("/batches/history")
    def history(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        paging: Paging,
        direction: Annotated[str | None, Query(max_length=3)] = None,
        stream: Annotated[str | None, Query(max_length=32)] = None,
        errors: Annotated[str | None, Query(max_length=3)] = None,
    ) -> Response:
        with reading(panel.settings.database_url) as session:
            found = desk.list_batches(
                session,
                direction=choice(direction, ("in", "out")),
                stream=choice(stream, STREAMS),
                with_errors={"yes": True, "no": False}.get(errors or ""),
                limit=paging.limit,
                offset=paging.offset,
            )
        return panel.render(
            request,
            viewer,
            "batch_history.html",
            title="Batch metadata",
            found=found,
            streams=STREAMS,
            page=paging.of(found["total"]),
        )

    return router
