"""Signing in and out of the panel.

The login is the API's own (`Accounts.login`: the same password check, throttling per client
address and per account, lockout and audit), and the panel is for admins and operators only.
A successful login starts a new session (a new id: one known before it is worth nothing) and
ends the one the browser had; logging out deletes the session at once.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from shared.http import client_address
from shared.panel import csrf
from shared.panel.access import StaffViewer
from shared.panel.core import NO_STORE, PANEL_ROLES, PREFIX, Panel, Refused, safe_next
from shared.problems import Problem
from shared.security.login_flow import refuse_long_password

router = APIRouter()


def next_query(target: str) -> str:
    return urlencode({"next": target})


def _page(
    request: Request, panel: Panel, *, token: str, next_: str, error: str = "", status: int = 200
) -> HTMLResponse:
    page = panel.env.get_template("login.html").render(
        title="Sign in",
        login_token=token,
        next=next_,
        error=error,
        csrf="",
        viewer=None,
        nav=[],
        flashes=[],
    )
    response = HTMLResponse(page, status_code=status, headers=NO_STORE)
    panel.set_cookie(response, panel.login_cookie, token)
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    panel: Panel = request.app.state.panel
    target = safe_next(next)
    try:
        signed_in = panel.viewer_of(request.cookies.get(panel.cookie))
    except Exception:  # noqa: BLE001 - no session store: show the form, login says why
        signed_in = None
    if signed_in is not None:
        return RedirectResponse(target, status_code=303, headers=NO_STORE)
    return _page(request, panel, token=csrf.new_token(), next_=target)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",  # noqa: A002
) -> Response:
    panel: Panel = request.app.state.panel
    target = safe_next(next)
    if not csrf.same(request.cookies.get(panel.login_cookie), csrf_token):
        raise Refused(403, "Forbidden", "the sign-in form expired; reload it and try again")
    fresh = csrf.new_token()
    try:
        refuse_long_password(password)
    except Problem as exc:
        return _page(request, panel, token=fresh, next_=target, error=exc.detail, status=422)
    client = client_address(request, panel.settings.trusted_proxies)
    try:
        outcome = await run_in_threadpool(panel.accounts.login, username, password, client)
    except Problem as exc:  # throttled (429) or no Redis (503), before anything was checked
        outcome = None
        refusal = exc
    else:
        refusal = outcome.refusal
    if refusal is not None:
        response = _page(
            request, panel, token=fresh, next_=target, error=refusal.detail, status=refusal.status
        )
        if "Retry-After" in refusal.headers:
            response.headers["Retry-After"] = refusal.headers["Retry-After"]
        return response
    assert outcome is not None and outcome.account is not None
    account = outcome.account
    if account.role not in PANEL_ROLES:
        message = "the panel is for admins and operators"
        return _page(request, panel, token=fresh, next_=target, error=message, status=403)

    def start() -> str:
        session_id, _ = panel.store().create(
            user_id=account.user_id,
            username=account.username,
            role=account.role,
            replacing=request.cookies.get(panel.cookie),
        )
        return session_id

    session_id = await run_in_threadpool(start)
    response = RedirectResponse(target, status_code=303, headers=NO_STORE)
    panel.set_cookie(response, panel.cookie, session_id)
    response.delete_cookie(panel.login_cookie, path=PREFIX)
    return response


@router.post("/logout")
def logout(request: Request, viewer: StaffViewer) -> Response:
    panel: Panel = request.app.state.panel
    panel.store().destroy(request.cookies.get(panel.cookie))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303, headers=NO_STORE)
    response.delete_cookie(
        panel.cookie, path=PREFIX, secure=panel.secure, httponly=True, samesite="strict"
    )
    return response
