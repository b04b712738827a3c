"""Request-scoped dependencies: settings, the caller and what it may do, and the endpoint's
unit of work (`Caller.unit()`), which it runs in its own thread hop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from redis import Redis
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from request_network.models import User
from request_network.services import api_keys, auth
from request_network.services.auth import unauthorized
from request_network.settings import RequestSettings
from shared.cache import get_redis
from shared.db import reading, transaction
from shared.http_logging import identify
from shared.problems import Problem
from shared.security.api_keys import looks_like_key, scopes_for_role

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="ferry_<live|test>_<key id>_<secret>"
)


async def get_settings(request: Request) -> RequestSettings:
    return request.app.state.settings


SettingsDep = Annotated[RequestSettings, Depends(get_settings)]


ROLE_RANK = {"user": 0, "operator": 1, "admin": 2}

#: The scope an API key needs on each route. A route neither listed here nor under one of
#: the PREFIX_SCOPES takes a login session only: API keys are refused there, e.g. creating keys
#: (a leaked key must not be able to mint more) and logout. JWT callers hold their role's
#: full set of scopes; roles are checked separately on every route.
ANY_SCOPE = "*"
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/auth/me"): ANY_SCOPE,
    ("GET", "/api/v1/users/me"): ANY_SCOPE,
    ("POST", "/api/v1/requests"): "requests:write",
    ("GET", "/api/v1/requests"): "requests:read",
    ("GET", "/api/v1/requests/{request_id}"): "requests:read",
    ("GET", "/api/v1/requests/{request_id}/response"): "requests:read",
    ("GET", "/api/v1/rate-limits/me"): "requests:read",
    ("GET", "/api/v1/notifications"): "requests:read",
    ("GET", "/api/v1/notifications/stream"): "requests:read",
    ("POST", "/api/v1/notifications/{notification_id}/read"): "requests:read",
    ("POST", "/api/v1/notifications/read-all"): "requests:read",
    ("GET", "/api/v1/api-keys"): "keys:manage",
    ("DELETE", "/api/v1/api-keys/{key_id}"): "keys:manage",
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): "keys:manage",  # a key: itself only
    ("GET", "/metrics"): "operator",
}
PREFIX_SCOPES: tuple[tuple[str, str], ...] = (
    ("/api/v1/admin/", "admin"),
    ("/api/v1/operator/", "operator"),
)


def scope_for_route(method: str, path: str) -> str | None:
    """The scope an API key needs for a route template, or None if keys may not use it."""
    scope = ROUTE_SCOPES.get((method, path))
    if scope is None:
        scope = next((s for prefix, s in PREFIX_SCOPES if path.startswith(prefix)), None)
    return scope


@dataclass(frozen=True)
class Principal:
    """Who is calling and with what: a user, the credential kind, and its scopes."""

    user: User
    via: str  # "jwt" or "api_key"
    jti: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    key_id: str | None = None
    expires_at: datetime | None = None
    key_secret: str | None = None  # an API key's "current" or "previous" (rotated) secret

    @property
    def role(self) -> str:
        return self.user.role


def _check_key_scope(request: Request, principal: Principal) -> None:
    route = request.scope.get("route")
    needed = scope_for_route(request.method, route.path) if route is not None else None
    if needed is None:
        raise Problem(403, "Forbidden", "this route needs a login session; API keys cannot use it")
    if needed != ANY_SCOPE and needed not in principal.scopes:
        raise Problem(403, "Forbidden", f"this API key lacks the {needed} scope")


def _authenticate(
    request: Request, settings: RequestSettings, token: str | None, api_key: str | None
) -> Principal:
    """Check the credentials (run in a thread: it reads the database and Redis), outside a
    transaction: a key or user read by id, and at most one `last_used_at` update. The user
    comes back loaded and detached."""
    with reading(settings.database_url) as session:
        cache = get_redis(settings.redis_url)
        if api_key is not None:
            found = api_keys.authenticate_key(settings, cache, api_key, session=session)
            principal = Principal(
                user=found.user,
                via="api_key",
                scopes=found.scopes,
                key_id=found.key.key_id,
                expires_at=found.key.expires_at,
                key_secret=found.secret,
            )
            _check_key_scope(request, principal)
            return principal
        assert token is not None
        user, claims = auth.authenticate_token(settings, cache, token, session=session)
        return Principal(
            user=user,
            via="jwt",
            jti=claims.jti,
            scopes=scopes_for_role(user.role),
            expires_at=claims.exp,
        )


async def current_principal(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2)],
    api_key: Annotated[str | None, Security(api_key_header)],
) -> Principal:
    """Authenticate with `Authorization: Bearer <jwt>` or `X-API-Key: <key>`, never both.

    Runs before the body is read, in one thread hop that has given its connection back when
    it returns: no connection is held while the request waits for its endpoint's hop."""
    if token and api_key is not None:
        raise unauthorized("send either a bearer token or an API key, not both")
    if api_key is None:
        if not token:
            raise unauthorized("not authenticated: send Authorization: Bearer <token> or X-API-Key")
        if looks_like_key(token):
            raise unauthorized("API keys go in the X-API-Key header, not in Authorization")
    principal = await run_in_threadpool(_authenticate, request, settings, token or None, api_key)
    identify(request, principal.user.id)  # on the request's log lines (shared.http_logging)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True)
class Unit:
    """One request's unit of work: its transaction and, on routes that need one, the
    authenticated caller."""

    session: Session
    principal: Principal | None = None

    @property
    def user(self) -> User:
        assert self.principal is not None, "this route takes no login"
        return self.principal.user


@dataclass(frozen=True)
class Caller:
    """A call that has passed the edge: settings, and the authenticated, authorized caller
    on routes that need one.

    `unit()` is the endpoint's database work (DESIGN.md §7.12): the endpoint runs it in its
    one thread hop, and it opens the transaction, lets the endpoint call its service, and
    commits before the reply is sent (rolls back on error); `reads()` is the same for work
    that only reads, without a transaction. Dependencies hold no session, so no request
    holds a pooled connection while it waits for a thread.
    """

    settings: RequestSettings
    principal: Principal | None = None

    @property
    def cache(self) -> Redis:
        return get_redis(self.settings.redis_url)

    @property
    def user(self) -> User:
        assert self.principal is not None, "this route takes no login"
        return self.principal.user

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        with transaction(self.settings.database_url) as session:
            yield Unit(session, self.principal)

    @contextmanager
    def reads(self) -> Iterator[Unit]:
        """The endpoint's work when it only reads (`shared.db.reading`: no transaction)."""
        with reading(self.settings.database_url) as session:
            yield Unit(session, self.principal)


async def anyone(settings: SettingsDep) -> Caller:
    return Caller(settings)


def caller(role: str):
    """The dependency of a route that admits callers whose role is at least `role`."""

    async def check(settings: SettingsDep, principal: PrincipalDep) -> Caller:
        if ROLE_RANK.get(principal.role, -1) < ROLE_RANK[role]:
            raise Problem(403, "Forbidden", f"this needs the {role} role")
        return Caller(settings, principal)

    return check


AnyoneDep = Annotated[Caller, Depends(anyone)]
UserDep = Annotated[Caller, Depends(caller("user"))]
OperatorDep = Annotated[Caller, Depends(caller("operator"))]
AdminDep = Annotated[Caller, Depends(caller("admin"))]
