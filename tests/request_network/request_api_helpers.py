"""Helpers for request API tests: settings, seeding committed rows, problem+json checks."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from request_network.models import (
    EXPORTED,
    PENDING,
    Base,
    Batch,
    ProfileType,
    Request,
    RequestEvent,
    RequestExport,
    Response,
    User,
)
from request_network.settings import RequestSettings
from shared.db import get_engine, transaction, utcnow
from shared.security.passwords import hash_password

TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
PASSWORD = "correct horse battery"
JWT_SECRET = "test-secret-for-the-request-api-0123456789"
ARTICLES_FIELDS = {
    "title": "text",
    "body": "text",
    "category": "keyword",
    "year": "integer",
    "published": "date",
}
VALID_QUERY = {"query": {"match": {"field": "title", "value": "gap"}}, "size": 5}


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def truncate_request_db(url: str) -> list[str]:
    """Empty every request-network table; returns the ids of the requests that existed.

    DELETE children before parents is much quicker than TRUNCATE on these tiny tables.
    """
    with get_engine(url).begin() as conn:
        ids = list(conn.execute(select(Request.id)).scalars())
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return ids


def clear_auth_keys(client) -> None:
    """Delete what tests leave in the test Redis DB: login counters, locks and revocations
    (`auth:*`) and rate-limit windows (`rl:*`)."""
    import redis

    try:
        keys = [
            k for pattern in ("auth:*", "rl:*") for k in client.scan_iter(match=pattern, count=500)
        ]
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # no Redis, nothing to clean


def make_settings(database_url: str, **overrides: Any) -> RequestSettings:
    values: dict[str, Any] = dict(
        mode="production",
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        jwt_secret=JWT_SECRET,
        api_key_pepper="pepper-for-tests-0123456789abcdef0123",
        bcrypt_rounds=4,
        # A notification stream ends at once (after one look) unless a test wants it open.
        notification_stream_seconds=0.05,
    )
    values.update(overrides)
    return RequestSettings(**values)


@dataclass
class Seed:
    """Committed rows in the request database, made the way the importer would make them."""

    url: str

    def profile_type(
        self,
        name: str = "articles",
        *,
        fields: dict[str, str] | None = None,
        return_fields: list[str] | None = None,
        max_size: int = 50,
        rate_limits: dict[str, int] | None = None,
    ) -> str:
        fields = fields or ARTICLES_FIELDS
        with transaction(self.url) as session:
            session.add(
                ProfileType(
                    name=name,
                    index=name,
                    fields=fields,
                    return_fields=return_fields if return_fields is not None else list(fields),
                    max_size=max_size,
                    rate_limits=rate_limits or {"minute": 30, "hour": 500, "day": 2000},
                    version=1,
                )
            )
        return name

    def user(
        self,
        username: str,
        password: str = PASSWORD,
        *,
        profile_type: str = "articles",
        active: bool = True,
        role: str = "user",
    ) -> str:
        user_id = str(uuid.uuid4())
        with transaction(self.url) as session:
            session.add(
                User(
                    id=user_id,
                    username=username,
                    password_hash=hash_password(password, rounds=4),
                    role=role,
                    profile_type=profile_type,
                    active=active,
                    version=1,
                )
            )
        return user_id

    def set_active(self, user_id: str, active: bool) -> None:
        with transaction(self.url) as session:
            session.get(User, user_id).active = active

    def request(self, user_id: str, *, status: str = PENDING, profile_type: str = "articles"):
        """A request in `status`; EXPORTED means stored PENDING and carried by a batch."""
        request_id = str(uuid.uuid4())
        with transaction(self.url) as session:
            session.add(
                Request(
                    id=request_id,
                    user_id=user_id,
                    profile_type=profile_type,
                    query=VALID_QUERY,
                    status=PENDING if status == EXPORTED else status,
                )
            )
            session.flush()
            session.add(RequestEvent(request_id=request_id, status=PENDING, detail="seeded"))
            if status == EXPORTED:
                batch_id = _batch(session, "out", "requests", "request", "response")
                session.add(RequestExport(request_id=request_id, batch_id=batch_id, at=utcnow()))
        return request_id

    def response(self, request_id: str, hits: list[dict[str, Any]]) -> None:
        with transaction(self.url) as session:
            batch_id = _batch(session, "in", "results", "response", "request")
            session.add(
                Response(
                    request_id=request_id,
                    status="DONE",
                    total=len(hits),
                    hits=hits,
                    error=None,
                    executed_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
                    took_ms=7,
                    batch_id=batch_id,
                )
            )

    def delete_response(self, request_id: str) -> None:
        with transaction(self.url) as session:
            session.delete(session.get(Response, request_id))


def _batch(session: Session, direction: str, stream: str, source: str, destination: str) -> str:
    """A batch row (no file) for seeded rows to point at."""
    batch_id = str(uuid.uuid4())
    seq = session.execute(text("SELECT count(*) + 1 FROM batches")).scalar_one()
    session.add(
        Batch(
            id=batch_id,
            direction=direction,
            stream=stream,
            source=source,
            destination=destination,
            seq=seq,
            digest="0" * 64,
            filename=f"{stream}-{source}-{seq:08d}-{batch_id}.jsonl",
            record_count=1,
            bytes=1,
        )
    )
    session.flush()
    return batch_id


def assert_problem(reply, status: int) -> dict[str, Any]:
    """The reply is RFC 9457 problem+json with the given status; returns the body."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body
