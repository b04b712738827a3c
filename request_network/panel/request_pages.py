"""Requests: every user's, filtered by status, user, age and "stuck" and sorted by any column
the service sorts by (`services.admin_requests.list_requests`); one request with its life
across the gap (`services.trace.trace`), its query and its history (`services.requests.get_own`,
as its owner reads it); cancel and retry (`services.lifecycle`, audited with the admin's id)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response

from request_network.services import admin_requests, lifecycle, rate_limits, requests, trace
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.actions import Call, add_confirmed
from shared.panel.core import PREFIX
from shared.panel.forms import Choice, Hours, Text, choice, hours, text
from shared.panel.listing import add_list
from shared.panel.paging import columns_of
from shared.validation import RequestId

router = APIRouter()
STATUSES = get_args(admin_requests.PublicStatus)
#: The columns the list sorts by (`services.admin_requests.RequestSort`).
SORTS = columns_of(admin_requests.RequestSort)


def request_filters(
    status: Choice = None,
    user_id: Text = None,
    older_than_hours: Hours = None,
    stuck_hours: Hours = None,
) -> dict[str, Any]:
    """The list's filters as `services.admin_requests.list_requests` takes them."""
    return {
        "status": choice(status, STATUSES),
        "user_id": text(user_id),
        "older_than": hours(older_than_hours),
        "stuck_after": hours(stuck_hours),
    }


add_list(
    router,
    "/requests",
    template="requests.html",
    title="Requests",
    service=admin_requests.list_requests,
    filters=request_filters,
    sorts=SORTS,
    default="-created_at",
    statuses=STATUSES,
)


@router.get("/requests/{request_id}")
def request_details(
    request: Request, panel: PanelDep, viewer: AdminViewer, request_id: RequestId
) -> Response:
    with panel.reads() as session:
        life = trace.trace(request_id, session=session)
        owner = rate_limits.get_user(life["user_id"], session=session)
        found = requests.get_own(owner, request_id, session=session)
        history = found.history
        query, profile_type = found.query, found.profile_type
    return panel.render(
        request,
        viewer,
        "request.html",
        title="Request",
        life=life,
        history=history,
        query=json.dumps(query, indent=2, ensure_ascii=False, sort_keys=True),
        profile_type=profile_type,
        cancellable=life["status"] in ("PENDING", "IN_TRANSIT"),
        retryable=life["status"] in lifecycle.RETRYABLE,
    )


def _back(request_id: str) -> str:
    return f"{PREFIX}/requests/{request_id}"


def _lifecycle(service: Callable[..., Any]) -> Call:
    """`lifecycle.cancel` or `lifecycle.retry` of one request, audited with the admin's id."""
    return lambda panel, viewer, request_id, session: service(
        request_id, session=session, cache=panel.redis(), actor=viewer.user_id
    )


add_confirmed(
    router,
    "/requests/{thing_id}/cancel",
    id_type=RequestId,
    question="Cancel this request? If it has left this network, a cancellation follows it.",
    done="Request cancelled",
    back=_back,
    call=_lifecycle(lifecycle.cancel),
)
add_confirmed(
    router,
    "/requests/{thing_id}/retry",
    id_type=RequestId,
    question="Send this request out again as its next sending? Its stored answer goes.",
    done="Request sent again",
    back=_back,
    call=_lifecycle(lifecycle.retry),
)
