"""Request-scoped dependencies: settings, the transaction, the caller."""

from __future__ import annotations

from collections.abc import Iterator
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


def current_user(
    session: SessionDep, settings: SettingsDep, token: Annotated[str, Depends(oauth2)]
) -> User:
    return user_for_token(session, settings, token)


UserDep = Annotated[User, Depends(current_user)]
