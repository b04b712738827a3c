"""Request-scoped dependencies of the response network's API: settings, the caller, and the
request's one unit of work (`Caller.unit()`), which the endpoint runs in its own thread hop
(see request_network/api/deps.py, whose shape this follows)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from response_network.models import User
from response_network.services.auth import user_for_token
from response_network.settings import ResponseSettings
from shared.db import reading, transaction
from shared.http_logging import identify
from shared.problems import Problem

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login")
ROLE_RANK = {"user": 0, "operator": 1, "admin": 2}


async def get_settings(request: Request) -> ResponseSettings:
    return request.app.state.settings


SettingsDep = Annotated[ResponseSettings, Depends(get_settings)]


def _authenticate(settings: ResponseSettings, token: str) -> User:
    """The bearer token's user, read outside a transaction (loaded, detached)."""
    with reading(settings.database_url) as session:
        return user_for_token(settings, token, session=session)


async def current_user(
    request: Request, settings: SettingsDep, token: Annotated[str, Depends(oauth2)]
) -> User:
    """Runs before the body is read, in one thread hop that has given its connection back when
    it returns: no connection is held while the request waits for its endpoint's hop."""
    user = await run_in_threadpool(_authenticate, settings, token)
    identify(request, user.id)  # on the request's log lines (shared.http_logging)
    return user


@dataclass(frozen=True)
class Unit:
    """The endpoint's unit of work: its transaction."""

    session: Session


@dataclass(frozen=True)
class Caller:
    """A call that has passed the edge: settings and, where the route needs one, the
    authenticated user. `unit()` opens the endpoint's transaction in its one thread hop and
    commits after its work (rolls back on error)."""

    settings: ResponseSettings
    user: User | None = None

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        with transaction(self.settings.database_url) as session:
            yield Unit(session)


async def anyone(settings: SettingsDep) -> Caller:
    return Caller(settings)


def caller(role: str):
    """The dependency of a route that admits callers whose role is at least `role`."""

    async def check(settings: SettingsDep, user: Annotated[User, Depends(current_user)]) -> Caller:
        if ROLE_RANK.get(user.role, -1) < ROLE_RANK[role]:
            raise Problem(403, "Forbidden", f"this needs the {role} role")
        return Caller(settings, user)

    return check


AnyoneDep = Annotated[Caller, Depends(anyone)]
