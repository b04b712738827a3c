"""Batches, for operators and admins, the same on both networks: what to carry next (the
outbox, in carrying order, each file downloadable), what was carried and waits for its
acknowledgement, what waits in the inbox, what was acknowledged, each batch with what the
ledger knows of it (records, errors, size, written, acknowledged and how long after); per
stream the sequence sent, acknowledged and received with its gaps. The operator API's calls,
through the network's `OperatorDesk` (`transfer.operator.status.transfer_status`,
`transfer.operator.files`, `transfer.operator.desk.batch_rows`). Admins also page through
every batch's metadata, import time included (`transfer.operator.batch_report`, as
`GET /api/v1/admin/batches`). Every column sorts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from shared.db import reading
from shared.panel.access import AdminViewer, PanelDep, StaffViewer
from shared.panel.core import Refused
from shared.panel.forms import choice
from shared.panel.operator_desk import OperatorDesk
from shared.panel.paging import Paging, Sort, SortParam, sort_rows, sorting
from shared.validation import BatchFileName

TABS = ("outbox", "carried", "inbox", "acked")
#: The columns each tab shows and sorts by (`OperatorDesk.batch_rows`).
SORTS = {
    "outbox": ("stream", "seq", "file", "records", "errors", "bytes", "sha256", "written_at"),
    "carried": (
        "stream", "seq", "file", "records", "errors", "bytes", "written_at", "age_seconds",
        "kept_in", "notes",
    ),
    "inbox": ("stream", "source", "seq", "file", "bytes", "modified_at"),
    "acked": (
        "stream", "seq", "file", "records", "errors", "bytes", "written_at", "acked_at",
        "ack_seconds",
    ),
}  # fmt: skip
DEFAULT_SORT = {"outbox": "stream", "carried": "-age_seconds", "inbox": "stream", "acked": "file"}
STREAMS = ("requests", "results", "users", "settings", "profile_types", "acks")
#: The columns the batch metadata sorts by (`transfer.operator.batch_report.BatchSort`).
HISTORY_SORTS = (
    "direction", "stream", "seq", "file", "records", "errors", "bytes", "processing_ms",
    "producer", "created_at", "acked_at",
)  # fmt: skip
HistoryOrder = sorting(HISTORY_SORTS, "-created_at")


def build_router(desk: OperatorDesk) -> APIRouter:
    router = APIRouter()

    @router.get("/batches")
    def batches(
        request: Request,
        panel: PanelDep,
        viewer: StaffViewer,
        paging: Paging,
        tab: Annotated[str | None, Query(max_length=16)] = None,
        sort: SortParam = None,
    ) -> Response:
        tab = choice(tab, TABS) or "outbox"
        order = Sort.of(sort, SORTS[tab], DEFAULT_SORT[tab])
        with reading(panel.settings.database_url) as session:
            status = desk.status(session, panel.settings)
            rows = desk.batch_rows(session, panel.settings, tab, status)
        rows = sort_rows(rows, order)
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
        order: HistoryOrder,
        direction: Annotated[str | None, Query(max_length=3)] = None,
        stream: Annotated[str | None, Query(max_length=32)] = None,
        errors: Annotated[str | None, Query(max_length=3)] = None,
    ) -> Response:
        with reading(panel.settings.database_url) as session:
            found = desk.list_batches(
                session,
                sort=order.value,
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
            sort=order,
            page=paging.of(found["total"]),
        )

    return router
