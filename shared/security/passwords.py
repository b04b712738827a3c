"""Password hashing with passlib's bcrypt scheme (the maintained `libpass` distribution)."""

from __future__ import annotations

from functools import cache

from passlib.context import CryptContext

MAX_PASSWORD_BYTES = 72  # bcrypt ignores the rest; we refuse rather than truncate


class PasswordTooLong(ValueError):
    pass


@cache
def _context(rounds: int) -> CryptContext:
    return CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds, bcrypt__ident="2b")


def check_length(password: str) -> str:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong(f"password is longer than {MAX_PASSWORD_BYTES} bytes")
    return password


def hash_password(password: str, *, rounds: int = 12) -> str:
    return _context(rounds).hash(check_length(password))


def verify_password(password: str, password_hash: str | None, *, rounds: int = 12) -> bool:
    """The same work whether or not the user exists: an unknown user checks a dummy hash made
    at `rounds`, the cost the real hashes use."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return False
    ctx = _context(rounds)
    if not password_hash:
        ctx.dummy_verify()
        return False
    try:
        return ctx.verify(password, password_hash)
    except ValueError:
        return False
