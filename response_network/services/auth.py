"""Login for the response network's own operators and admins (it is the user authority)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from response_network.models import User
from response_network.settings import ResponseSettings
from shared.problems import Problem
from shared.security.passwords import verify_password
from shared.security.tokens import InvalidToken, decode_token, issue_token


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def login(settings: ResponseSettings, *, session: Session, username: str, password: str) -> dict:
    """Same reply and the same bcrypt work whether or not the account exists."""
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    ok = verify_password(
        password, user.password_hash if user else None, rounds=settings.bcrypt_rounds
    )
    if not ok or user is None or not user.active:
        raise _unauthorized("incorrect username or password")
    token, exp = issue_token(
        subject=user.id,
        role=user.role,
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        minutes=settings.access_token_minutes,
    )
    return {"access_token": token, "token_type": "bearer", "expires_at": exp.isoformat()}


def user_for_token(settings: ResponseSettings, token: str, *, session: Session) -> User:
    try:
        claims = decode_token(
            token,
            secret=settings.jwt_secret.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except InvalidToken:
        raise _unauthorized("invalid or expired token") from None
    user = session.get(User, claims.sub)
    if user is None or not user.active:
        raise _unauthorized("unknown or inactive user")
    return user
