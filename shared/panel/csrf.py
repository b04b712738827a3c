"""CSRF protection of the panel: every state-changing request carries the session's token,
in the `X-CSRF-Token` header (htmx sends it from the `hx-headers` of `<body>`) or in the
form field `csrf_token` (every `<form method="post">` has it). Anything else is refused (403).

Before login there is no session: the login form's token is a random value kept in a cookie
of its own and repeated in the form (double submit), so a page elsewhere cannot log a
browser in under someone else's account.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request

HEADER = "x-csrf-token"
FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; an empty or missing value never matches."""
    if not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


async def submitted_token(request: Request) -> str | None:
    """The token a request carries: its header, else its form field."""
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(FORM_TYPES):
        value = (await request.form()).get(FIELD)
        return value if isinstance(value, str) else None
    return None
