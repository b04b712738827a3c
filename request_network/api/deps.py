"""Request-scoped dependencies: settings, the transaction, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from redis import Redis
from sqlalchemy.orm import Session

from request_network.models import User
from request_network.services.auth import user_for_token
from request_network.settings import RequestSettings
from shared.cache import get_redis
from shared.db import transaction
from shared.problems import Problem

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login")


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


@dataclass(frozen=True)
class Principal:
    """Who is calling and with what: a user, the credential kind, and its scopes."""

    user: User
    via: str  # "jwt" or "api_key"
    jti: str | None = None

    @property
    def role(self) -> str:
        return self.user.role


def current_principal(
    session: SessionDep, settings: SettingsDep, token: Annotated[str, Depends(oauth2)]
) -> Principal:
    return Principal(user=user_for_token(session, settings, token), via="jwt")


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
