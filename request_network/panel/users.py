"""Users: search, sort and page through them (`services.users.list_users`); one user's
details (`services.users.details`: limits in force with live usage bars, API keys masked,
recent requests, lock); unlock (`services.auth.lift_lock`), reset the rate-limit counters
(`services.rate_limits.reset`), set custom limits (`services.rate_limits.set_override`,
checked by the API's own `SetRateLimits`), disable or enable a key
(`services.api_key_admin.set_disabled`). Each action is audited by its service, with the
admin's id as the actor, as through the API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from request_network.api.schemas import SetRateLimits
from request_network.services import api_key_admin, auth, rate_limits, users
from shared.panel import charts, user_pages
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.actions import add_confirmed
from shared.panel.core import NO_STORE, Panel, Viewer
from shared.panel.forms import Confirmed, whole_number
from shared.panel.user_pages import user_page
from shared.ratelimit import WINDOWS
from shared.validation import ApiKeyId, UserId

router = user_pages.build_router(users.list_users)


def _limits(panel: Panel, user_id: str) -> dict[str, Any]:
    """The user's details and each window's usage bar."""
    settings = panel.settings
    limiter = rate_limits.limiter_for(settings)
    with panel.reads() as session:
        found = users.details(settings, panel.redis(), limiter, session=session, user_id=user_id)
        policy = rate_limits.policy_for(settings, session=session)
        override = rate_limits.get_override(found.user, session=session)
    usage = found.usage.by_window if found.usage is not None else {}
    windows = []
    for window, limit in found.limits.values.items():
        now = usage.get(window)
        windows.append(
            {
                "window": window,
                "limit": limit,
                "source": found.limits.sources[window],
                "count": now.count if now else None,
                "state": now.state if now else None,
                "bar": charts.usage_bar(
                    now.count if now else None,
                    limit,
                    soft_ratio=policy.soft_ratio,
                    grace_ratio=policy.grace_ratio,
                    state=now.state if now else None,
                ),
            }
        )
    return {"found": found, "windows": windows, "policy": policy, "override": override}


@router.get("/users/{user_id}")
def user_details(
    request: Request, panel: PanelDep, viewer: AdminViewer, user_id: UserId
) -> Response:
    return panel.render(request, viewer, "user.html", title="User", **_limits(panel, user_id))


@router.get("/users/{user_id}/usage")
def user_usage(panel: PanelDep, viewer: AdminViewer, user_id: UserId) -> Response:
    """The usage bars alone (refreshed by htmx every few seconds)."""
    context = _limits(panel, user_id)
    html = panel.env.get_template("user_usage.html").render(**context)
    return HTMLResponse(html, headers=NO_STORE)


def _reset_limits(panel: Panel, viewer: Viewer, user_id: str, session: Session) -> None:
    user = rate_limits.get_user(user_id, session=session)
    limiter = rate_limits.limiter_for(panel.settings)
    rate_limits.reset(user, limiter, session=session, actor=viewer.user_id)


add_confirmed(
    router,
    "/users/{thing_id}/unlock",
    id_type=UserId,
    question="Unlock this account now and forget its failed logins?",
    done="Account unlocked",
    back=user_page,
    call=lambda panel, viewer, user_id, session: auth.lift_lock(
        panel.settings, panel.redis(), session=session, user_id=user_id, actor=viewer.user_id
    ),
)
add_confirmed(
    router,
    "/users/{thing_id}/reset-limits",
    id_type=UserId,
    question="Reset this user's rate-limit counters, grace periods and blocks?",
    done="Rate-limit counters reset",
    back=user_page,
    call=_reset_limits,
)


@router.post("/users/{user_id}/limits")
def set_limits(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    user_id: UserId,
    reason: Annotated[str, Form(max_length=1000)] = "",
    minute: Annotated[str, Form(max_length=16)] = "",
    hour: Annotated[str, Form(max_length=16)] = "",
    day: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    given = {"minute": minute, "hour": hour, "day": day}
    try:
        body = SetRateLimits.model_validate(
            {"reason": reason, **{w: whole_number(v) for w, v in given.items()}}
        )
    except (ValueError, ValidationError) as exc:
        bad = _fields(exc, given)
        return panel.redirect(
            viewer,
            user_page(user_id),
            f"Limits not changed: check {bad} (whole numbers up to the limiter's bound, "
            "and a reason)",
            "error",
        )

    def set_override(session: Session) -> None:
        user = rate_limits.get_user(user_id, session=session)
        limits = {w: getattr(body, w) for w in WINDOWS}
        rate_limits.set_override(
            user, session=session, limits=limits, reason=body.reason, actor=viewer.user_id
        )

    return panel.act(
        request, viewer, None, back=user_page(user_id), done="Custom limits set", call=set_override
    )


def _fields(exc: Exception, given: dict[str, str]) -> str:
    if isinstance(exc, ValidationError):
        return ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")}))
    return ", ".join(w for w, v in given.items() if v.strip() and not v.strip().isdigit())


@router.post("/api-keys/{key_id}/{action}")
def key_state(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    key_id: ApiKeyId,
    action: str,
    user_id: Annotated[UserId, Form()],
    confirmed: Confirmed = "",
) -> Response:
    if action not in ("disable", "enable"):
        return panel.redirect(viewer, user_page(user_id), f"unknown action {action!r}", "error")
    return panel.act(
        request,
        viewer,
        confirmed if action == "disable" else None,
        question=f"Disable the API key {key_id}? Its next call is refused.",
        fields={"user_id": user_id},
        back=user_page(user_id),
        done=f"API key {key_id}: {action}d",
        call=lambda session: api_key_admin.set_disabled(
            panel.redis(),
            session=session,
            actor=viewer.user_id,
            key_id=key_id,
            disabled=action == "disable",
        ),
    )
