"""Request-scoped dependencies: settings, the transaction, the caller and what it may do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from redis import Redis
from sqlalchemy.orm import Session

from request_network.models import User
from request_network.services import api_keys, auth
from request_network.services.auth import unauthorized
from request_network.settings import RequestSettings
from shared.cache import get_redis
from shared.db import transaction
from shared.problems import Problem
from shared.security.api_keys import looks_like_key, scopes_for_role

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="ferry_<live|test>_<key id>_<secret>"
)


def get_settings(request: Request) -> RequestSettings:
    return request.app.state.settings


SettingsDep = Annotated[RequestSettings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """The request owns the transaction: commit after the endpoint, roll back on error.

    Function scope commits before the reply is sent, so a client that reads right after a
    202 finds what it created.
    """
    with transaction(settings.database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_cache(settings: SettingsDep) -> Redis:
    return get_redis(settings.redis_url)


CacheDep = Annotated[Redis, Depends(get_cache)]


ROLE_RANK = {"user": 0, "operator": 1, "admin": 2}

#: The scope an API key needs on each route. A route neither listed here nor under one of
#: the PREFIX_SCOPES takes a login session only: API keys are refused there, e.g. creating keys
#: (a leaked key must not be able to mint more) and logout. JWT callers hold their role's
#: full set of scopes; roles are checked separately on every route.
ANY_SCOPE = "*"
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/auth/me"): ANY_SCOPE,
    ("POST", "/api/v1/requests"): "requests:write",
    ("GET", "/api/v1/requests"): "requests:read",
    ("GET", "/api/v1/requests/{request_id}"): "requests:read",
    ("GET", "/api/v1/requests/{request_id}/response"): "requests:read",
    ("GET", "/api/v1/rate-limits/me"): "requests:read",
    ("GET", "/api/v1/api-keys"): "keys:manage",
    ("DELETE", "/api/v1/api-keys/{key_id}"): "keys:manage",
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


def current_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
    token: Annotated[str | None, Depends(oauth2)],
    api_key: Annotated[str | None, Security(api_key_header)],
) -> Principal:
    """Authenticate with `Authorization: Bearer <jwt>` or `X-API-Key: <key>`, never both."""
    if token and api_key is not None:
        raise unauthorized("send either a bearer token or an API key, not both")
    if api_key is not None:
        user, key, scopes = api_keys.authenticate_key(settings, cache, api_key, session=session)
        principal = Principal(
            user=user, via="api_key", scopes=scopes, key_id=key.key_id, expires_at=key.expires_at
        )
        _check_key_scope(request, principal)
        return principal
    if not token:
        raise unauthorized("not authenticated: send Authorization: Bearer <token> or X-API-Key")
    if looks_like_key(token):
        raise unauthorized("API keys go in the X-API-Key header, not in Authorization")
    user, claims = auth.authenticate_token(settings, cache, token, session=session)
    return Principal(
        user=user,
        via="jwt",
        jti=claims.jti,
        scopes=scopes_for_role(user.role),
        expires_at=claims.exp,
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_role(role: str):
    """A dependency that admits callers whose role is at least `role` (admin admits all)."""

    def check(principal: PrincipalDep) -> Principal:
        if ROLE_RANK.get(principal.role, -1) < ROLE_RANK[role]:
            raise Problem(403, "Forbidden", f"this needs the {role} role")
        return principal

    return check


def current_user(principal: PrincipalDep) -> User:
    return principal.user


UserDep = Annotated[User, Depends(current_user)]
OperatorDep = Annotated[Principal, Depends(require_role("operator"))]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
