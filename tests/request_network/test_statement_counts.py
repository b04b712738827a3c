"""The hot paths issue only the statements they need (DESIGN.md §7.12), counted on PostgreSQL.

Counts are stable where times are not: a change that adds a statement to a submit, a status
read, a list or a response read fails here and has to say why. Each count is of the whole
call: authentication (reads outside a transaction), then the endpoint's work (a transaction
for a submit, with its COMMIT; reads outside one). The API key has been used once before,
so its once-a-minute `last_used_at` write is not in the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from request_api_helpers import VALID_QUERY
from sqlalchemy import event
from sqlalchemy.engine import Engine

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: The statements of each call, by kind. Raise one only with a reason in the commit.
EXPECTED = {
    # auth: SELECT key+user; work: SELECT profile type+override, INSERT request, INSERT its
    # event, INSERT its outbox entry, COMMIT
    "submit": ["SELECT", "SELECT", "INSERT", "INSERT", "INSERT", "COMMIT"],
    # work: SELECT request with its events, export and batch
    "status": ["SELECT", "SELECT"],
    # work: SELECT a page with its total, SELECT the page's events
    "list": ["SELECT", "SELECT", "SELECT"],
    # work (the cache has no entry): SELECT the owner, SELECT the response (then cached in
    # Redis), UPDATE its first read time (once per response)
    "response (first read)": ["SELECT", "SELECT", "SELECT", "UPDATE"],
    # work: none; the cache's entry names its owner, so the hit is one Redis round trip
    "response (cached)": ["SELECT"],
}


@contextmanager
def counted() -> Iterator[list[str]]:
    """The first word of every statement sent while the block runs, and each COMMIT sent
    (none from a connection in AUTOCOMMIT, where a commit sends nothing)."""
    seen: list[str] = []

    def statement(_conn, _cursor, sql, *_args) -> None:
        seen.append(sql.split(None, 1)[0].upper())

    def commit(conn) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            seen.append("COMMIT")

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", commit)


@pytest.fixture
def key(client, seed, login) -> dict[str, str]:
    """An API key of a user with one answered request, used once already."""
    seed.profile_type()
    seed.user("alice")
    reply = client.post(
        "/api/v1/api-keys",
        json={"name": "counts", "scopes": ["requests:read", "requests:write"]},
        headers=login("alice"),
    )
    assert reply.status_code == 201, reply.text
    headers = {"X-API-Key": reply.json()["key"]}
    assert client.get("/api/v1/requests", headers=headers).status_code == 200
    return headers


def test_hot_paths_issue_only_the_statements_they_need(client, seed, key):
    calls = {}
    body = {"profile_type": "articles", "query": VALID_QUERY}
    with counted() as calls["submit"]:
        reply = client.post("/api/v1/requests", json=body, headers=key)
    assert reply.status_code == 202, reply.text
    request_id = reply.json()["id"]
    seed.response(request_id, [{"title": "a gap"}])
    with counted() as calls["status"]:
        reply = client.get(f"/api/v1/requests/{request_id}", headers=key)
    assert reply.status_code == 200 and len(reply.json()["history"]) == 1, reply.text
    with counted() as calls["list"]:
        reply = client.get("/api/v1/requests", headers=key)
    assert reply.json()["total"] == 1 and len(reply.json()["items"]) == 1, reply.text
    for name in ("response (first read)", "response (cached)"):
        with counted() as calls[name]:
            reply = client.get(f"/api/v1/requests/{request_id}/response", headers=key)
        assert reply.status_code == 200 and reply.json()["hits"] == [{"title": "a gap"}]
    assert calls == EXPECTED
