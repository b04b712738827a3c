"""Login for the response network's own operators and admins (it is the user authority).

Login is `shared.security.login_flow` over this network's tables, as on the request network:
never telling whether an account exists, throttled per client address and per account,
locked out after repeated failures (an `AccountLock` row and Redis), audited, and refused
with a 503 while Redis cannot be reached. Its Redis counters live under their own prefix.
"""

from __future__ import annotations

import redis
from sqlalchemy.orm import Session

from response_network.models import AccountLock, AuditLog, User
from response_network.settings import ResponseSettings
from shared.security import login_flow
from shared.security.clock import issued_after_cutoff
from shared.security.login_flow import LoginResult, unauthorized
from shared.security.tokens import InvalidToken, decode_token

ACCOUNTS = login_flow.Accounts(
    user=User, lock=AccountLock, audit=AuditLog, key_prefix="auth:response:login:"
)


def login(
    settings: ResponseSettings,
    cache: redis.Redis,
    *,
    session: Session,
    username: str,
    password: str,
    client: str,
) -> LoginResult:
    """`shared.security.login_flow.login` over the response network's tables."""
    return login_flow.login(
        settings,
        cache,
        ACCOUNTS,
        session=session,
        username=username,
        password=password,
        client=client,
    )


def user_for_token(settings: ResponseSettings, token: str, *, session: Session) -> User:
    try:
        claims = decode_token(
            token,
            secret=settings.jwt_secret.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except InvalidToken:
        raise unauthorized("invalid or expired token") from None
    user = session.get(User, claims.sub)
    if user is None or not user.active:
        raise unauthorized("unknown or inactive user")
    if not issued_after_cutoff(user.sessions_valid_after, claims.iat):
        raise unauthorized("this session ended when the password changed; log in again")
    return user
