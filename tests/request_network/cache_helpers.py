"""Helpers for the response-cache tests: a private Redis database, signed batches delivered
to the request network's inbox, responses of a chosen size."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from request_api_helpers import PASSWORD, make_settings
from sqlalchemy import select

from request_network.models import Batch
from request_network.services.response_cache import etag_of
from request_network.settings import RequestSettings
from shared.db import reading
from tests.conftest import network_settings
from transfer.format import Record, write_batch
from transfer.format.keys import load_signing_key

# The cache tests' own Redis database: other tests clear 15 and other servers use 12 and 14.
CACHE_REDIS_URL = "redis://127.0.0.1:6379/9"
BCRYPT = "$2b$04$" + "a" * 53
FIRST_RUN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def clear_keys(client: redis.Redis) -> None:
    """Delete what these tests leave: cache keys, login counters, rate-limit windows."""
    with suppress(redis.RedisError):
        keys = [k for p in ("resp:*", "auth:*", "rl:*") for k in client.scan_iter(match=p)]
        if keys:
            client.delete(*keys)


def cache_settings(database_url: str, **overrides: Any) -> RequestSettings:
    return make_settings(database_url, **{"redis_url": CACHE_REDIS_URL, **overrides})


def response_url(request_id: str) -> str:
    return f"/api/v1/requests/{request_id}/response"


def login(client, username: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def hits_of_size(nbytes: int, tag: str = "x") -> list[dict[str, Any]]:
    """Hits whose JSON is about `nbytes` long (a kilobyte each)."""
    filler = tag * 960
    count = max(1, nbytes // 1000)
    return [{"_id": f"{tag}{n}", "_source": {"body": filler}} for n in range(count)]


def assert_etag_of(reply) -> str:
    """The reply's ETag is the digest of its body; returns it."""
    etag = reply.headers["etag"]
    assert etag == etag_of(reply.content)
    return etag


def result(request_id: str, *, executed_at: datetime, hits: list[dict[str, Any]]) -> Record:
    data = {
        "status": "DONE",
        "total": len(hits),
        "hits": hits,
        "error": None,
        "executed_at": executed_at.isoformat().replace("+00:00", "Z"),
        "took_ms": 5,
        "part": 0,
        "parts": 1,
    }
    return Record("result", request_id, 1, data)


def user_record(user_id: str, username: str, *, active: bool, version: int) -> Record:
    data = {
        "username": username,
        "password_hash": BCRYPT,
        "role": "user",
        "profile_type": "articles",
        "active": active,
        "rate_limits": None,
    }
    return Record("user", user_id, version, data)


class Carrier:
    """Signed batches from the response network, put in the request network's inbox, one
    sequence per stream, as an operator would carry them."""

    def __init__(self, tmp_path: Path, keys: dict[str, Path], database_url: str) -> None:
        self.settings = network_settings(
            "request", tmp_path, keys, database_url=database_url, redis_url=CACHE_REDIS_URL
        )
        self.response_key = load_signing_key(keys["response"] / "response.ed25519.pem")
        self.made = tmp_path / "made"
        self.made.mkdir(parents=True, exist_ok=True)

    def _last(self, stream: str) -> tuple[int, str | None]:
        """The stream's last batch the request network holds (seeded ones included)."""
        with reading(self.settings.database_url) as session:
            last = session.execute(
                select(Batch.seq, Batch.digest)
                .where(Batch.direction == "in", Batch.stream == stream, Batch.source == "response")
                .order_by(Batch.seq.desc())
                .limit(1)
            ).first()
        return (last.seq, last.digest) if last else (0, None)

    def deliver(self, stream: str, records: list[Record]) -> None:
        """The stream's next batch, chained to the last one imported, into the inbox."""
        seq, prev = self._last(stream)
        written = write_batch(
            self.made,
            stream=stream,
            source="response",
            destination="request",
            seq=seq + 1,
            prev_digest=prev,
            signing_key=self.response_key,
            records=records,
            capabilities=("acks",),
        )
        inbox = self.settings.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        for path in (written.path, written.sidecar):
            (inbox / path.name).write_bytes(path.read_bytes())
