"""What the request API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitRequest(Strict):
    profile_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    query: dict[str, Any]


class Accepted(BaseModel):
    id: str
    status: str
    links: dict[str, str]


class StatusEvent(BaseModel):
    status: str
    at: datetime
    detail: str


class RequestOut(BaseModel):
    id: str
    profile_type: str
    query: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    history: list[StatusEvent]


class RequestPage(BaseModel):
    items: list[RequestOut]
    total: int
    limit: int
    offset: int


class ResponseOut(BaseModel):
    request_id: str
    status: str
    total: int | None
    hits: list[dict[str, Any]]
    error: str | None
    executed_at: datetime
    took_ms: int | None
    received_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: str
    expires_at: datetime


class Health(BaseModel):
    status: str
    checks: dict[str, str]
