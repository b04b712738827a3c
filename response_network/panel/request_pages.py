"""Imported requests and their executions: every user's requests, filtered by status, user,
profile type and age and sorted by a column (`services.admin_requests.list_requests`); one
request with its executions, whether its result went out and in which batch
(`services.admin_requests.describe`) and its life on this network (`services.trace.trace`);
the retry of a FAILED one (`services.admin_requests.retry`, audited `request.retried` with
the admin's username, as the API). Executions, newest first or sorted by a column, filtered by
status, profile type and start (`services.executions.list_executions`)."""

from __future__ import annotations

import json
from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from response_network.services import admin_requests, executions, identity, trace
from shared.db import utcnow
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.actions import add_confirmed
from shared.panel.core import PREFIX
from shared.panel.forms import Choice, Hours, Text, choice, hours, text
from shared.panel.listing import add_list
from shared.panel.paging import columns_of
from shared.validation import RequestId

router = APIRouter()
STATUSES = get_args(admin_requests.RequestStatus)
EXECUTION_STATUSES = get_args(executions.ExecutionStatus)
#: The columns the list sorts by (`services.admin_requests.RequestSort`).
SORTS = columns_of(admin_requests.RequestSort)


def request_filters(
    status: Choice = None,
    user_id: Text = None,
    profile_type: Text = None,
    older_than_hours: Hours = None,
) -> dict[str, Any]:
    """The list's filters as `services.admin_requests.list_requests` takes them."""
    return {
        "status": choice(status, STATUSES),
        "user_id": text(user_id),
        "profile_type": text(profile_type),
        "older_than": hours(older_than_hours),
    }


def profile_types(session: Session) -> dict[str, Any]:
    return {"profile_types": identity.profile_type_names(session=session)}


add_list(
    router,
    "/requests",
    template="requests.html",
    title="Requests",
    service=admin_requests.list_requests,
    filters=request_filters,
    sorts=SORTS,
    default="-imported_at",
    context=profile_types,
    statuses=STATUSES,
)


@router.get("/requests/{request_id}")
def request_details(
    request: Request, panel: PanelDep, viewer: AdminViewer, request_id: RequestId
) -> Response:
    with panel.reads() as session:
        described = admin_requests.describe(request_id, session=session)
        life = trace.trace(request_id, session=session)
    return panel.render(
        request,
        viewer,
        "request.html",
        title="Request",
        r=described,
        life=life,
        query=json.dumps(described["query"], indent=2, ensure_ascii=False, sort_keys=True),
        retryable=described["status"] in admin_requests.RETRYABLE,
    )


def _back(request_id: str) -> str:
    return f"{PREFIX}/requests/{request_id}"


add_confirmed(
    router,
    "/requests/{thing_id}/retry",
    id_type=RequestId,
    question="Run this failed request again? Its new result replaces the old one "
    "and goes out with the next results batch.",
    done="Request queued again",
    back=_back,
    call=lambda panel, viewer, request_id, session: admin_requests.retry(
        request_id, session=session, actor=viewer.username
    ),
)


def execution_filters(
    status: Choice = None, profile_type: Text = None, within_hours: Hours = None
) -> dict[str, Any]:
    """The list's filters as `services.executions.list_executions` takes them."""
    within = hours(within_hours)
    return {
        "status": choice(status, EXECUTION_STATUSES),
        "profile_type": text(profile_type),
        "since": utcnow() - within if within else None,
    }


add_list(
    router,
    "/executions",
    template="executions.html",
    title="Executions",
    service=executions.list_executions,
    filters=execution_filters,
    sorts=columns_of(executions.ExecutionSort),
    default="-started_at",
    context=profile_types,
    statuses=EXECUTION_STATUSES,
)
