"""Queues and tasks, the same on both networks over the network's `services.queues` (the
module its admin API calls): each queue's depth, the workers and their tasks, the beat
schedule with each entry's last and next run (`queues_view`); run a scheduled task now
(`run_now`, audited `task.run_now`) and follow its state (`task_status`); purge a queue once
its name is typed again (`purge`, audited `queue.purged`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from shared.db import transaction
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import PREFIX
from shared.panel.forms import YES, Confirmed
from shared.panel.paging import Sort, sort_rows
from shared.validation import RequestId, safe_str

PAGE = f"{PREFIX}/queues"
QueueName = safe_str(255)
TaskName = safe_str(128)
SORTS = ("entry", "last_run_at", "next_run_at", "late_s")


def build_router(queues: Any) -> APIRouter:
    """`queues`: the network's `services.queues`."""
    router = APIRouter()

    @router.get("/queues")
    def queues_page(
        request: Request, panel: PanelDep, viewer: AdminViewer, sort: str | None = None
    ) -> Response:
        view = queues.queues_view(panel.settings)  # broker and database asked at once, in time
        order = Sort.of(sort, SORTS, "entry")
        view["schedule"] = sort_rows(view["schedule"], order)
        return panel.render(
            request, viewer, "queues.html", title="Queues & tasks", view=view, sort=order
        )

    @router.post("/tasks/{name}/run")
    def run_task(panel: PanelDep, viewer: AdminViewer, name: TaskName) -> Response:
        settings = panel.settings
        sent = None
        with panel.outcome(viewer), transaction(settings.database_url) as session:
            sent = queues.run_now(settings, name, session=session, actor=viewer.user_id)
        if sent is None:
            return panel.redirect(viewer, PAGE)
        said = f"{sent['task']} sent to {sent['queue']} as task {sent['task_id']}"
        return panel.redirect(viewer, f"{PREFIX}/tasks/{sent['task_id']}", said)

    @router.get("/tasks/{task_id}")
    def task_state(
        request: Request, panel: PanelDep, viewer: AdminViewer, task_id: RequestId
    ) -> Response:
        state = queues.task_status(panel.settings, task_id)
        return panel.render(request, viewer, "task.html", title="Task", state=state)

    @router.post("/queues/{name}/purge")
    def purge(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        name: QueueName,
        confirm: Annotated[str, Form(max_length=255)] = "",
        confirmed: Confirmed = "",
    ) -> Response:
        if confirmed != YES or not confirm:
            return panel.confirm(
                request,
                viewer,
                question=f"Delete every message waiting in the queue {name}?",
                action=f"{PAGE}/{name}/purge",
                back=PAGE,
                typed=name,
            )
        settings = panel.settings
        out = None
        with panel.outcome(viewer), transaction(settings.database_url) as session:
            out = queues.purge(
                settings, name, confirm=confirm, session=session, actor=viewer.user_id
            )
        if out is None:
            return panel.redirect(viewer, PAGE)
        said = f"Queue {out['queue']} purged: {out['purged']} messages"
        return panel.redirect(viewer, PAGE, said)

    return router
