"""The part of one request's life the response network holds (`ferry response trace`): the
batch it came in, every execution, its result, the batch that carried the result back and
that batch's acknowledgement. The request network's `ferry request trace` tells the whole
life (docs/OPERATIONS.md, "Following one request").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from response_network.models import Batch
from response_network.services import admin_requests

__all__ = ["trace"]


def trace(request_id: str, *, session: Session) -> dict[str, Any]:
    """The request's identity and its steps here, in order; 404 for an unknown id."""
    described = admin_requests.describe(request_id, session=session)
    steps: list[dict[str, Any]] = [
        {
            "step": "imported",
            "at": described["imported_at"],
            "summary": f"sending {described['attempt']} in "
            f"{described['batch_file'] or described['batch_id']}",
            "batch_id": described["batch_id"],
            "batch_file": described["batch_file"],
        }
    ]
    for run in described["executions"]:
        if run["status"] == "RUNNING":
            summary = "running"
        elif run["status"] == "DONE":
            summary = f"DONE in {run['took_ms']} ms"
        else:
            summary = f"{run['status']}: {run['error'] or 'no reason given'}"
        steps.append(
            {
                "step": "executed",
                "at": run["started_at"],
                "summary": f"sending {run['attempt']}: {summary}",
                "finished_at": run["finished_at"],
                "status": run["status"],
                "took_ms": run["took_ms"],
            }
        )
    result = described["result"]
    if result is not None:
        steps.append(
            {
                "step": "result",
                "at": result["executed_at"],
                "summary": f"{result['status']}: {result['total']} hits"
                if result["status"] == "DONE"
                else f"{result['status']}: {result['error']}",
                "hits": result["total"],
                "took_ms": result["took_ms"],
            }
        )
    if result is not None and result["batch_id"] is not None:
        batch = session.get(Batch, result["batch_id"])
        steps.append(
            {
                "step": "result_exported",
                "at": batch.created_at if batch is not None else None,
                "summary": f"in {batch.filename if batch is not None else result['batch_id']}",
                "batch_id": result["batch_id"],
                "batch_file": batch.filename if batch is not None else None,
            }
        )
        if batch is not None and batch.acked_at is not None:
            steps.append(
                {
                    "step": "result_imported",
                    "at": batch.acked_at,
                    "summary": "acknowledged by the request network (at: when the ack "
                    "arrived here)",
                    "batch_id": batch.id,
                    "batch_file": batch.filename,
                }
            )
    return {
        "request_id": described["id"],
        "correlation_id": described["correlation_id"],
        "user_id": described["user_id"],
        "status": described["status"],
        "attempt": described["attempt"],
        "steps": steps,
    }
