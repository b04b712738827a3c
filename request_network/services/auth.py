"""Login and token checks for the request network."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from request_network.models import User
from request_network.settings import RequestSettings
from shared.problems import Problem
from shared.security.passwords import verify_password
from shared.security.tokens import InvalidToken, TokenClaims, decode_token, issue_token

_BAD_LOGIN = Problem(
    401, "Unauthorized", "incorrect username or password", headers={"WWW-Authenticate": "Bearer"}
)


def login(session: Session, settings: RequestSettings, *, username: str, password: str) -> dict:
    """Same reply and the same bcrypt work whether or not the account exists."""
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    ok = verify_password(
        password, user.password_hash if user else None, rounds=settings.bcrypt_rounds
    )
    if not ok or user is None or not user.active:
        raise _BAD_LOGIN
    token, exp = issue_token(
        subject=user.id,
        role=user.role,
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        minutes=settings.access_token_minutes,
    )
    return {"access_token": token, "token_type": "bearer", "expires_at": exp.isoformat()}


def user_for_token(session: Session, settings: RequestSettings, token: str) -> User:
    try:
        claims: TokenClaims = decode_token(
            token,
            secret=settings.jwt_secret.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except InvalidToken:
        raise Problem(
            401, "Unauthorized", "invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    user = session.get(User, claims.sub)
    if user is None or not user.active:
        raise Problem(
            401, "Unauthorized", "unknown or inactive user", headers={"WWW-Authenticate": "Bearer"}
        )
    return user
