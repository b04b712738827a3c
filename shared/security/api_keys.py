"""API keys: the format, its offline checksum, the stored HMAC, and the scopes a key may hold.

A key reads ``ferry_<live|test>_<key id>_<secret><checksum>``:

- key id: 12 characters of lowercase base32 (``a-z2-7``, 60 random bits). It is public: it
  names the key in listings and logs and is the database lookup key.
- secret: 32 characters of base62 from `secrets` (about 190 random bits).
- checksum: CRC32 of everything before it, in base62, zero-padded to 6 characters, so a
  typo or a truncated paste is caught without touching the database.

A rotation draws a new secret under the same key id (`generate_key(env, key_id)`); until
its grace period ends the key matches either stored HMAC (`matching_secret`).

Only the key id and HMAC-SHA256(pepper, whole key) are stored; a leaked database holds no
usable key and cannot be brute-forced without the pepper. Never bcrypt an API key: it is
already high-entropy, and a slow hash would cost 50-250 ms on every call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
PREFIX = "ferry"
ENVIRONMENTS = ("live", "test")
KEY_ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + 1 + 4 + 1 + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

_KEY = re.compile(
    rf"{PREFIX}_(?P<env>live|test)_(?P<key_id>[a-z2-7]{{{KEY_ID_LENGTH}}})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)

# Scopes ---------------------------------------------------------------------------------

SCOPES: dict[str, str] = {
    "requests:read": "read your own requests, their responses and your rate-limit status",
    "requests:write": "submit requests",
    "keys:manage": "list and revoke your own API keys (creating a key needs a login)",
    "operator": "operator routes: transfer directory, batches, quarantine",
    "admin": "admin routes: users, locks, rate limits",
}
_USER_SCOPES = frozenset({"requests:read", "requests:write", "keys:manage"})
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "user": _USER_SCOPES,
    "operator": _USER_SCOPES | {"operator"},
    "admin": _USER_SCOPES | {"operator", "admin"},
}


def scopes_for_role(role: str) -> frozenset[str]:
    """Everything a role may do; an unknown role may do nothing."""
    return ROLE_SCOPES.get(role, frozenset())


# Format ---------------------------------------------------------------------------------


class MalformedKey(ValueError):
    """Not a Ferry API key: wrong shape, unknown environment or a checksum that fails."""


@dataclass(frozen=True)
class ParsedKey:
    environment: str
    key_id: str
    key: str

    @property
    def prefix(self) -> str:
        return display_prefix(self.environment, self.key_id)


def display_prefix(environment: str, key_id: str) -> str:
    """What listings show instead of the key: enough to recognise it, useless to call with."""
    return f"{PREFIX}_{environment}_{key_id}"


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits)).rjust(width, BASE62[0])


def checksum(body: str) -> str:
    """CRC32 of `body` in base62, always CHECKSUM_LENGTH characters (62**6 > 2**32)."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_key(environment: str, key_id: str | None = None) -> ParsedKey:
    """A new key; given `key_id`, a new secret for that key (a rotation)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}")
    if key_id is None:
        key_id = "".join(secrets.choice(BASE32) for _ in range(KEY_ID_LENGTH))
    secret = "".join(secrets.choice(BASE62) for _ in range(SECRET_LENGTH))
    body = f"{PREFIX}_{environment}_{key_id}_{secret}"
    return ParsedKey(environment=environment, key_id=key_id, key=body + checksum(body))


def parse_key(candidate: str) -> ParsedKey:
    """Check the shape and the checksum; no I/O. Raises MalformedKey."""
    if len(candidate) != KEY_LENGTH:
        raise MalformedKey(f"an API key is exactly {KEY_LENGTH} characters")
    match = _KEY.fullmatch(candidate)
    if match is None:
        raise MalformedKey("not a Ferry API key")
    body = candidate[:-CHECKSUM_LENGTH]
    if not hmac.compare_digest(checksum(body), match["checksum"]):
        raise MalformedKey("the API key's checksum does not match (mistyped or truncated?)")
    return ParsedKey(environment=match["env"], key_id=match["key_id"], key=candidate)


def looks_like_key(value: str) -> bool:
    return value.startswith(f"{PREFIX}_")


# Storage --------------------------------------------------------------------------------


def key_hmac(key: str, pepper: str) -> str:
    """HMAC-SHA256(pepper, key) as 64 hex characters: what the database stores."""
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def hmac_matches(key: str, pepper: str, stored: str | None) -> bool:
    """Constant-time comparison; a missing row still costs one HMAC and one comparison."""
    computed = key_hmac(key, pepper)
    return hmac.compare_digest(computed, stored if stored is not None else "0" * 64) and (
        stored is not None
    )


CURRENT, PREVIOUS = "current", "previous"


def matching_secret(key: str, pepper: str, current: str | None, previous: str | None) -> str | None:
    """Which stored HMAC the key matches: `CURRENT`, `PREVIOUS` (the secret a rotation
    replaced) or None. One HMAC and two constant-time comparisons, whatever matches."""
    computed = key_hmac(key, pepper)
    blank = "0" * 64
    is_current = hmac.compare_digest(computed, current or blank) and current is not None
    is_previous = hmac.compare_digest(computed, previous or blank) and previous is not None
    return CURRENT if is_current else PREVIOUS if is_previous else None
