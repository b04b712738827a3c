"""Reply bodies of the response network's API."""

from __future__ import annotations

from pydantic import BaseModel


class Token(BaseModel):
    access_token: str
    token_type: str
    expires_at: str  # RFC 3339, as the token's `exp`


class Health(BaseModel):
    status: str
    checks: dict[str, str]
    version: str = ""  # the installed Ferry's
