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
from shared.panel.core import PREFIX
from shared.panel.forms import Choice, Confirmed, Hours, Text, choice, hours, text
from shared.panel.paging import Paging, Sort
from shared.validation import RequestId

router = APIRouter()
STATUSES = get_args(admin_requests.PublicStatus)
#: The columns the list sorts by (`services.admin_requests.RequestSort`).
SORTS = tuple(dict.fromkeys(s.lstrip("-") for s in get_args(admin_requests.RequestSort)))


@router.get("/requests")
def list_requests(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    paging: Paging,
    status: Choice = None,
    user_id: Text = None,
    older_than_hours: Hours = None,
    stuck_hours: Hours = None,
    sort: Choice = None,
) -> Response:
    order = Sort.of(sort, SORTS, "-created_at")
    with panel.reads() as session:
        rows, total = admin_requests.list_requests(
            session=session,
            sort=order.value,
            status=choice(status, STATUSES),
            user_id=text(user_id),
            older_than=hours(older_than_hours),
            stuck_after=hours(stuck_hours),
            limit=paging.limit,
            offset=paging.offset,
        )
    return panel.render(
        request,
        viewer,
        "requests.html",
        title="Requests",
        rows=rows,
        statuses=STATUSES,
        sort=order,
        page=paging.of(total),
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


def _lifecycle_action(verb: str, service: Callable[..., Any], question: str, done: str) -> None:
    """`POST /requests/{request_id}/<verb>`: asked first, then `service` (`lifecycle.cancel`
    or `lifecycle.retry`, audited with the admin's id)."""

    @router.post(f"/requests/{{request_id}}/{verb}", name=verb)
    def act(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        request_id: RequestId,
        confirmed: Confirmed = "",
    ) -> Response:
        return panel.act(
            request,
            viewer,
            confirmed,
            question=question,
            back=_back(request_id),
            done=done,
            call=lambda session: service(
                request_id, session=session, cache=panel.redis(), actor=viewer.user_id
            ),
        )


_lifecycle_action(
    "cancel",
    lifecycle.cancel,
    "Cancel this request? If it has left this network, a cancellation follows it.",
    "Request cancelled",
)
_lifecycle_action(
    "retry",
    lifecycle.retry,
    "Send this request out again as its next sending? Its stored answer goes.",
    "Request sent again",
)
