"""Quarantine, for operators and admins, the same on both networks: every file a check
refused, with its reasons; one file's reasons and first bytes; release it to the inbox for
another try, or delete it (`transfer.operator.files` through the network's `OperatorDesk`, as
the operator API does: each audited with the operator's username, `quarantine.released` /
`quarantine.deleted`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from shared import audit
from shared.panel.access import PanelDep, StaffViewer
from shared.panel.core import PREFIX, Panel, Refused, Viewer
from shared.panel.forms import YES, Confirmed
from shared.panel.operator_desk import OperatorDesk
from shared.panel.paging import Paging, Sort, sort_rows
from shared.settings import FerrySettings
from shared.validation import QuarantineName

SORTS = ("quarantined_at", "file", "quarantined_as")
LIST = f"{PREFIX}/quarantine"


def build_router(desk: OperatorDesk) -> APIRouter:
    router = APIRouter()
    files = desk.files

    def refusal(exc) -> str:
        return "; ".join([exc.detail, *exc.reasons])

    @router.get("/quarantine")
    def quarantine(
        request: Request,
        panel: PanelDep,
        viewer: StaffViewer,
        paging: Paging,
        sort: Annotated[str | None, Query(max_length=32)] = None,
    ) -> Response:
        order = Sort.of(sort, SORTS, "-quarantined_at")
        rows = sort_rows(files.quarantined(panel.settings.quarantine_dir), order)
        page = paging.of(len(rows))
        return panel.render(
            request,
            viewer,
            "quarantine.html",
            title="Quarantine",
            rows=page.cut(rows),
            sort=order,
            page=page,
        )

    @router.get("/quarantine/{name}")
    def inspect(
        request: Request, panel: PanelDep, viewer: StaffViewer, name: QuarantineName
    ) -> Response:
        try:
            entry = files.inspect_quarantined(panel.settings.quarantine_dir, name)
        except desk.operator_error as exc:
            raise Refused(exc.status, "Not available", exc.detail) from None
        return panel.render(
            request, viewer, "quarantined.html", title="Quarantined file", name=name, entry=entry
        )

    def handle(
        request: Request,
        panel: Panel,
        viewer: Viewer,
        name: str,
        confirmed: str,
        *,
        question: str,
        done: str,
        move: Callable[[FerrySettings], dict[str, Any]],
        kept: str,
        said: Callable[[dict[str, Any]], str],
    ) -> Response:
        """Asked first; then the file is moved (`move`) and the move audited as
        `quarantine.<done>` with the entry's `kept` field, in one unit of work; a refusal
        by the operator tools is shown on the list."""
        if confirmed != YES:
            return panel.confirm(
                request, viewer, question=question, action=request.url.path, back=f"{LIST}/{name}"
            )
        try:
            with panel.unit() as session:
                entry = move(panel.settings)
                audit.record(
                    session,
                    desk.audit_model,
                    actor=viewer.username,
                    action=f"quarantine.{done}",
                    target=name,
                    detail={kept: entry.get(kept)},
                )
        except desk.operator_error as exc:
            return panel.redirect(viewer, LIST, f"Not {done}: {refusal(exc)}", "error")
        return panel.redirect(viewer, LIST, said(entry))

    @router.post("/quarantine/{name}/release")
    def release(
        request: Request,
        panel: PanelDep,
        viewer: StaffViewer,
        name: QuarantineName,
        confirmed: Confirmed = "",
    ) -> Response:
        return handle(
            request,
            panel,
            viewer,
            name,
            confirmed,
            question=f"Put {name} back in the inbox for another try?",
            done="released",
            move=lambda s: files.release(s.quarantine_dir, s.inbox, name),
            kept="file",
            said=lambda entry: f"{name} released to the inbox as {entry.get('file')}",
        )

    @router.post("/quarantine/{name}/delete")
    def delete(
        request: Request,
        panel: PanelDep,
        viewer: StaffViewer,
        name: QuarantineName,
        confirmed: Confirmed = "",
    ) -> Response:
        return handle(
            request,
            panel,
            viewer,
            name,
            confirmed,
            question=f"Delete {name} and its reasons for good?",
            done="deleted",
            move=lambda s: files.delete(s.quarantine_dir, name),
            kept="sha256",
            said=lambda _entry: f"{name} deleted",
        )

    return router
