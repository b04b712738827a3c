"""Helpers of the response network's panel tests: its settings on the test PostgreSQL and
Redis (the search cluster out of reach, so its health is red at once), its API with the
panel, and committed rows: profile types, users, imported requests with their executions and
results."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from response_network.app import create_app
from response_network.models import (
    DONE,
    FAILED,
    Execution,
    ImportedRequest,
    ProfileType,
    Result,
    User,
)
from response_network.settings import ResponseSettings
from shared.db import get_engine, transaction, utcnow
from shared.security.passwords import hash_password
from tests.panel.panel_support import PASSWORD, common_values

#: Nothing listens here: the search probe fails at once (connection refused).
NO_SEARCH = "http://127.0.0.1:9"
QUERY = {"query": {"match": {"field": "title", "value": "ferry"}}, "size": 10}


def make_response_settings(
    database_url: str, transfer_dir: Path, **overrides: Any
) -> ResponseSettings:
    values = common_values(
        database_url, transfer_dir, "test-secret-for-the-response-panel-0123456789"
    )
    values.update(elasticsearch_url=NO_SEARCH, health_probe_timeout_s=1.0)
    return ResponseSettings(**{**values, **overrides})


def response_app(settings: ResponseSettings) -> FastAPI:
    """The response API as served, with its panel at /admin."""
    return create_app(settings)


def empty_response_db(url: str) -> None:
    from response_network.models import Base

    with get_engine(url).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


class ResponseSeed:
    """Committed rows of the response network's database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def profile_type(self, name: str = "articles") -> str:
        with transaction(self.url) as session:
            session.add(
                ProfileType(
                    name=name,
                    index=f"{name}-index",
                    fields={"title": "text"},
                    return_fields=["title"],
                    max_size=100,
                    rate_limits={"minute": 10, "hour": 100, "day": 1000},
                    version=1,
                )
            )
        return name

    def user(self, username: str, *, role: str = "user", profile_type: str = "articles") -> str:
        user_id = str(uuid.uuid4())
        with transaction(self.url) as session:
            session.add(
                User(
                    id=user_id,
                    username=username,
                    password_hash=hash_password(PASSWORD, rounds=4),
                    role=role,
                    profile_type=profile_type,
                    active=True,
                    version=1,
                )
            )
        return user_id

    def request(
        self,
        user_id: str,
        *,
        status: str = "QUEUED",
        error: str | None = None,
        hours_ago: float = 0,
        **columns: Any,
    ) -> str:
        """An imported request; FAILED or DONE ones with an execution and a result."""
        request_id = str(uuid.uuid4())
        at = utcnow() - timedelta(hours=hours_ago)
        values: dict[str, Any] = dict(
            user_id=user_id,
            profile_type="articles",
            query=QUERY,
            submitted_at=at,
            imported_at=at,
            batch_id=str(uuid.uuid4()),
            status=status,
        )
        values.update(columns)
        with transaction(self.url) as session:
            session.add(ImportedRequest(id=request_id, **values))
            session.flush()
            if status in (DONE, FAILED):
                session.add(
                    Execution(
                        request_id=request_id,
                        started_at=at,
                        finished_at=at,
                        status=status,
                        error=error,
                        took_ms=12 if status == DONE else None,
                    )
                )
                session.add(
                    Result(
                        request_id=request_id,
                        status=status,
                        total=1 if status == DONE else None,
                        hits=[],
                        error=error,
                        executed_at=at,
                        took_ms=12 if status == DONE else None,
                    )
                )
        return request_id
