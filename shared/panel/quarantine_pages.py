"""Quarantine, for operators and admins, the same on both networks: every file a check
refused, with its reasons, stream, sequence and size (`OperatorDesk.quarantined`), sorted
by any of them; one file's reasons and first bytes; release it to the inbox for another try,
or delete it (`transfer.operator.files` through the network's `OperatorDesk`, as the
operator API does: each audited with the operator's username, `quarantine.released` /
`quarantine.deleted`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared import audit
from shared.panel.access import PanelDep, StaffViewer
from shared.panel.core import PREFIX, Refused
from shared.panel.forms import YES, Confirmed
from shared.panel.operator_desk import OperatorDesk
from shared.panel.paging import Paging, sort_rows, sorting
from shared.settings import FerrySettings
from shared.validation import QuarantineName

SORTS = ("quarantined_as", "file", "stream", "seq", "bytes", "reason", "quarantined_at")
QuarantineOrder = sorting(SORTS, "-quarantined_at")
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
        order: QuarantineOrder,
    ) -> Response:
        rows = sort_rows(desk.quarantined(panel.settings.quarantine_dir), order)
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

    def add_move(
        verb: str,
        done: str,
        *,
        question: str,
        move: Callable[[FerrySettings, str], dict[str, Any]],
        kept: str,
        said: Callable[[str, dict[str, Any]], str],
    ) -> None:
        """`POST /quarantine/{name}/<verb>`: asked first (`question`, with the file's name);
        then the file is moved (`move`) and the move audited as `quarantine.<done>` with the
        entry's `kept` field, in one unit of work; a refusal by the operator tools is shown
        on the list."""

        @router.post(f"/quarantine/{{name}}/{verb}", name=verb)
        def act(
            request: Request,
            panel: PanelDep,
            viewer: StaffViewer,
            name: QuarantineName,
            confirmed: Confirmed = "",
        ) -> Response:
            if confirmed != YES:
                return panel.confirm(
                    request,
                    viewer,
                    question=question.format(name=name),
                    action=request.url.path,
                    back=f"{LIST}/{name}",
                )
            try:
                with panel.unit() as session:
                    entry = move(panel.settings, name)
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
            return panel.redirect(viewer, LIST, said(name, entry))

    add_move(
        "release",
        "released",
        question="Put {name} back in the inbox for another try?",
        move=lambda s, name: files.release(s.quarantine_dir, s.inbox, name),
        kept="file",
        said=lambda name, entry: f"{name} released to the inbox as {entry.get('file')}",
    )
    add_move(
        "delete",
        "deleted",
        question="Delete {name} and its reasons for good?",
        move=lambda s, name: files.delete(s.quarantine_dir, name),
        kept="sha256",
        said=lambda name, _entry: f"{name} deleted",
    )

    return router
