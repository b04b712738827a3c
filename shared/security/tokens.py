"""JWT access tokens behind one small module: the algorithm and key never come from the token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jose import JWTError, jwt

ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "iss", "jti")


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    role: str
    jti: str
    exp: datetime
    iat: datetime | None = None  # when it was issued (a sessions cut-off refuses older ones)


def issue_token(
    *, subject: str, role: str, secret: str, issuer: str, audience: str, minutes: int
) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    exp = now + timedelta(minutes=minutes)
    claims = {
        "sub": subject,
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "iat_us": int(now.timestamp() * 1_000_000),  # to the microsecond: sessions cut-offs
        "exp": int(exp.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHMS[0]), exp


def decode_token(token: str, *, secret: str, issuer: str, audience: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            options={f"require_{c}": True for c in REQUIRED_CLAIMS}
            | {"verify_aud": True, "verify_iss": True},
        )
    except JWTError as exc:
        raise InvalidToken(str(exc)) from None
    missing = [c for c in REQUIRED_CLAIMS if c not in claims]
    if missing or not isinstance(claims.get("role"), str):
        raise InvalidToken(f"token lacks required claims: {', '.join(missing) or 'role'}")
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise InvalidToken("exp must be an integer timestamp")
    try:
        expires = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken("exp is out of range") from None
    issued = _issued_at(claims)
    return TokenClaims(
        sub=str(claims["sub"]),
        role=claims["role"],
        jti=str(claims["jti"]),
        exp=expires,
        iat=issued,
    )


def _issued_at(claims: dict) -> datetime | None:
    """When the token was issued: `iat_us` (microseconds) if it has it, else `iat`."""
    precise, whole = claims.get("iat_us"), claims.get("iat")
    for value, scale in ((precise, 1_000_000), (whole, 1)):
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value / scale, UTC)
            except (OverflowError, OSError, ValueError):
                raise InvalidToken("iat is out of range") from None
    return None
