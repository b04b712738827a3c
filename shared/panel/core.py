"""The panel of one network: its settings, pages, session store, templates and the account
checks its network provides; who is looking at a page (`Viewer`); and what each page handler
uses: its units of work (`unit`, `reads`) and Redis, and to answer: `render`, `redirect`
with a one-shot message, `confirm` for destructive actions, `outcome` around a service call
and `act` for the whole of an action (asked first, the service called, its message shown).

A network gives the panel an `Accounts`: how a login is checked (the API's own login, with
its throttling and locks) and whether a session's user may still use the panel (active,
still an admin or operator, no password change since the session began).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment
from redis import Redis
from sqlalchemy.orm import Session

from shared.cache import get_redis
from shared.db import reading, transaction
from shared.panel import paging, templating
from shared.panel.forms import YES
from shared.panel.sessions import PanelSession, SessionStore
from shared.problems import Problem
from shared.settings import FerrySettings

PREFIX = "/admin"
STATIC_DIR = Path(__file__).parent / "static"
PANEL_ROLES = ("admin", "operator")
#: Sent by a page's own periodic refresh (htmx polling): not activity, for the idle timeout.
POLL_HEADER = "x-panel-poll"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class NavItem:
    """A page in the navigation: shown to the roles named."""

    key: str
    label: str
    path: str
    roles: tuple[str, ...] = ("admin",)


@dataclass(frozen=True)
class Account:
    user_id: str
    username: str
    role: str


@dataclass(frozen=True)
class LoginOutcome:
    """The account a login opened, or the refusal to show (a problem from the API's login:
    401, 429 throttled or locked out, 503 without Redis)."""

    account: Account | None = None
    refusal: Problem | None = None


class Accounts(Protocol):
    def login(self, username: str, password: str, client: str) -> LoginOutcome: ...

    def current_role(self, session: PanelSession) -> str | None:
        """The user's role now, or None when the session's user may no longer sign in."""
        ...


class LoginRequired(Exception):
    """No live session: the browser goes to the login page."""


class Refused(Exception):
    """An HTML error page with this status (403 for a role or a CSRF token, …)."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class Viewer:
    """The signed-in admin or operator a page is for."""

    session: PanelSession
    role: str

    @property
    def user_id(self) -> str:
        return self.session.user_id

    @property
    def username(self) -> str:
        return self.session.username

    @property
    def csrf(self) -> str:
        return self.session.csrf


@dataclass
class Panel:
    """`settings_of` gives the settings in force: the API's, which a SIGHUP may replace."""

    settings_of: Callable[[], FerrySettings]
    network: str
    accounts: Accounts
    nav: list[NavItem]
    env: Environment
    static_versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings_of: Callable[[], FerrySettings],
        *,
        network: str,
        accounts: Accounts,
        nav: list[NavItem],
        template_dirs: list[Path],
    ) -> Panel:
        env = templating.environment(template_dirs)
        versions = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in STATIC_DIR.iterdir()
            if p.is_file() and not p.name.endswith(".md")
        }
        panel = cls(settings_of, network, accounts, nav, env, versions)
        env.globals.update(
            static=panel.static_url,
            network=network,
            prefix=PREFIX,
            link=paging.link,
            page_sizes=paging.PAGE_SIZES,
        )
        return panel

    @property
    def settings(self) -> FerrySettings:
        return self.settings_of()

    def unit(self) -> AbstractContextManager[Session]:
        """The admin API's unit of work, for what writes or audits (committed at the end)."""
        return transaction(self.settings.database_url)

    def reads(self) -> AbstractContextManager[Session]:
        """A read-only session, for pages that only read."""
        return reading(self.settings.database_url)

    def redis(self) -> Redis:
        """The network's Redis (cache, rate limiter, login locks)."""
        return get_redis(self.settings.redis_url)

    # Sessions and cookies ------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        """Cookies are `Secure` everywhere but the demo (plain HTTP on localhost)."""
        return self.settings.mode != "demo"

    @property
    def cookie(self) -> str:
        """The session cookie, one per network: a browser may be signed in to both panels
        (in the demo both serve on 127.0.0.1, and cookies do not tell ports apart)."""
        return f"ferry_panel_{self.network}"

    @property
    def login_cookie(self) -> str:
        return f"ferry_panel_login_{self.network}"

    def store(self) -> SessionStore:
        return SessionStore(
            get_redis(self.settings.redis_url),
            network=self.network,
            idle_s=self.settings.panel_idle_minutes * 60,
            absolute_s=self.settings.panel_absolute_hours * 3600,
        )

    def set_cookie(self, response: Any, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            path=PREFIX,
            httponly=True,
            secure=self.secure,
            samesite="strict",
        )

    def viewer_of(self, session_id: str | None, *, touch: bool = True) -> Viewer | None:
        """The live session a cookie names, with its user's role now (None: sign in);
        `touch`: this request counts as activity (`SessionStore.load`)."""
        found = self.store().load(session_id, touch=touch)
        if found is None:
            return None
        role = self.accounts.current_role(found)
        if role not in PANEL_ROLES:
            self.store().destroy(session_id)
            return None
        return Viewer(found, role)

    # Answers -------------------------------------------------------------------------------

    def static_url(self, name: str) -> str:
        return f"{PREFIX}/static/{name}?v={self.static_versions.get(name, '0')}"

    def nav_for(self, role: str) -> list[NavItem]:
        return [item for item in self.nav if role in item.roles]

    def render(
        self,
        request: Request,
        viewer: Viewer | None,
        template: str,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        flashes = self.store().take_flashes(viewer.session) if viewer is not None else []
        page = self.env.get_template(template).render(
            request=request,
            viewer=viewer,
            csrf=viewer.csrf if viewer is not None else "",
            nav=self.nav_for(viewer.role) if viewer is not None else [],
            flashes=flashes,
            path=request.url.path,
            params=dict(request.query_params),
            **context,
        )
        return HTMLResponse(page, status_code=status_code, headers=NO_STORE)

    def redirect(
        self, viewer: Viewer, to: str, message: str | None = None, level: str = "ok"
    ) -> RedirectResponse:
        """303 to a page of the panel, with a message shown there once."""
        if message:
            self.store().flash(viewer.session, level, message)
        return RedirectResponse(safe_next(to), status_code=303, headers=NO_STORE)

    def confirm(
        self,
        request: Request,
        viewer: Viewer,
        *,
        question: str,
        action: str,
        fields: Mapping[str, Any] | None = None,
        back: str,
        typed: str | None = None,
    ) -> HTMLResponse:
        """The page that asks before a destructive action (what a browser without script
        sees; panel.js asks in a dialog and sends `confirmed=yes` at once)."""
        return self.render(
            request,
            viewer,
            "confirm.html",
            title="Confirm",
            question=question,
            action=action,
            fields=dict(fields or {}),
            back=back,
            typed=typed,
        )

    @contextmanager
    def outcome(self, viewer: Viewer, done: str | None = None) -> Iterator[None]:
        """Run a service call: a refusal (`Problem`) becomes a message on the next page
        instead of an error page; success leaves `done` there."""
        try:
            yield
        except Problem as exc:
            self.store().flash(viewer.session, "error", f"{exc.title}: {exc.detail}")
            return
        if done:
            self.store().flash(viewer.session, "ok", done)

    def act(
        self,
        request: Request,
        viewer: Viewer,
        confirmed: str | None,
        *,
        call: Callable[[Session], object],
        done: str,
        back: str,
        question: str = "",
        fields: Mapping[str, Any] | None = None,
    ) -> Response:
        """An action of a page: unless `confirmed` is None (no need to ask) or `yes`, the
        page that asks `question` (posting to the same URL again, with `fields`); else `call`
        in a unit of work and back to `back` with `done`, or with the service's refusal."""
        if confirmed is not None and confirmed != YES:
            return self.confirm(
                request,
                viewer,
                question=question,
                action=request.url.path,
                fields=fields,
                back=back,
            )
        with self.outcome(viewer, done=done), self.unit() as session:
            call(session)
        return self.redirect(viewer, back)


def safe_next(target: str | None) -> str:
    """A path inside the panel to go to, never anywhere else (no open redirect)."""
    if (
        not target
        or not target.startswith(PREFIX)
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
    ):
        return f"{PREFIX}/"
    rest = target[len(PREFIX) :]
    if rest and rest[0] not in "/?":
        return f"{PREFIX}/"
    return target
