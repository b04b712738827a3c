"""Request-scoped dependencies of the response network's API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from response_network.models import User
from response_network.services.auth import user_for_token
from response_network.settings import ResponseSettings
from shared.db import transaction
from shared.problems import Problem

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login")
ROLE_RANK = {"user": 0, "operator": 1, "admin": 2}


def get_settings(request: Request) -> ResponseSettings:
    return request.app.state.settings


SettingsDep = Annotated[ResponseSettings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """Commit after the endpoint and before the reply; roll back on error."""
    with transaction(settings.database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def current_user(
    session: SessionDep, settings: SettingsDep, token: Annotated[str, Depends(oauth2)]
) -> User:
    return user_for_token(settings, token, session=session)


def require_role(role: str):
    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if ROLE_RANK.get(user.role, -1) < ROLE_RANK[role]:
            raise Problem(403, "Forbidden", f"this needs the {role} role")
        return user

    return check


OperatorDep = Annotated[User, Depends(require_role("operator"))]
