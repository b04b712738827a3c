"""Who may see a page: the dependencies every panel route takes.

`admin_only` and `staff` (admins and operators) find the session the cookie names (in Redis,
with the user checked against the database, in one thread hop), refuse a state-changing
request whose CSRF token is missing or wrong (403), and refuse a role the page is not for
(403). No session: the browser is sent to the login page (an htmx call is told to go there).
A page's periodic refresh (`X-Panel-Poll`) is served without counting as activity.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import redis
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from shared.panel import csrf
from shared.panel.core import POLL_HEADER, LoginRequired, Panel, Refused, Viewer


def panel_of(request: Request) -> Panel:
    return request.app.state.panel


def _viewer_for(*roles: str):
    async def check(request: Request) -> Viewer:
        panel = panel_of(request)
        try:
            viewer = await run_in_threadpool(
                partial(panel.viewer_of, touch=not request.headers.get(POLL_HEADER)),
                request.cookies.get(panel.cookie),
            )
        except redis.RedisError:
            raise Refused(
                503, "Service unavailable", "the session store (Redis) cannot be reached"
            ) from None
        if viewer is None:
            raise LoginRequired()
        unsafe = request.method not in csrf.SAFE_METHODS
        if unsafe and not csrf.same(viewer.csrf, await csrf.submitted_token(request)):
            raise Refused(403, "Forbidden", "missing or wrong CSRF token; reload the page")
        if viewer.role not in roles:
            raise Refused(403, "Forbidden", f"this page is for the {' or '.join(roles)} role")
        return viewer

    return check


AdminViewer = Annotated[Viewer, Depends(_viewer_for("admin"))]
StaffViewer = Annotated[Viewer, Depends(_viewer_for("admin", "operator"))]
PanelDep = Annotated[Panel, Depends(panel_of)]
