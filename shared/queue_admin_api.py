"""Admin routes for Celery queues, workers and the beat schedule, the same on both
networks: run a scheduled task now, read a task's state, purge a queue (audited).

Each network builds the router with its admin dependency (a caller with `settings`,
`user` and `unit()`) and its `services.queues` (`shared.queue_admin.QueueService`).
(No `from __future__ import annotations` here: FastAPI reads the annotations of the routes
built inside `build_router`.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from shared.admin_schemas import QueuePurged, QueuesView, TaskEnqueued, TaskState
from shared.validation import RequestId, safe_str

QueueName = safe_str(255)
TaskName = safe_str(128)  # a beat entry's key or its task's name
TaskId = RequestId  # Celery's task ids are UUIDs in the same form


def build_router(admin_dep: Any, service: Any) -> APIRouter:
    router = APIRouter(tags=["admin-queues"])

    @router.get("/api/v1/admin/queues", response_model=QueuesView)
    def queues_view(admin: admin_dep) -> QueuesView:
        """Each queue's depth on the broker, each worker's active, reserved and scheduled
        tasks (no worker answering is an answer: `workers_note` says so), and the beat
        schedule with each entry's last run, its outcome, its next run and how late that is."""
        return QueuesView.model_validate(service.queues_view(admin.settings))

    @router.post(
        "/api/v1/admin/queues/{name}/purge",
        response_model=QueuePurged,
        responses={409: {"description": "`confirm` does not repeat the queue's name"}},
    )
    def purge_queue(
        name: QueueName,
        confirm: Annotated[QueueName, Query(description="The queue's name again")],
        admin: admin_dep,
    ) -> QueuePurged:
        """Delete every message waiting in the queue (audited); how many there were."""
        with admin.unit() as unit:
            purged = service.purge(
                admin.settings, name, confirm=confirm, session=unit.session, actor=admin.user.id
            )
        return QueuePurged(**purged)

    @router.post(
        "/api/v1/admin/tasks/{name}/run",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TaskEnqueued,
        responses={409: {"description": "Tasks run in-process here (no worker to send to)"}},
    )
    def run_task(name: TaskName, admin: admin_dep, response: Response) -> TaskEnqueued:
        """Enqueue one task of the beat schedule now (by its entry's key or its task's name;
        audited); follow `Location` for its state."""
        with admin.unit() as unit:
            sent = service.run_now(admin.settings, name, session=unit.session, actor=admin.user.id)
        response.headers["Location"] = f"/api/v1/admin/tasks/{sent['task_id']}"
        return TaskEnqueued(**sent)

    @router.get("/api/v1/admin/tasks/{task_id}", response_model=TaskState)
    def task_state(task_id: TaskId, admin: admin_dep) -> TaskState:
        """The task's state (the result backend's, or its recorded run's) and its recorded
        run; `PENDING` for an id neither knows."""
        return TaskState.model_validate(service.task_status(admin.settings, task_id))

    return router


__all__ = ["QueueName", "TaskId", "TaskName", "build_router"]
