"""The response network's admins follow imported requests and their executions, and retry a
failed one: real PostgreSQL and Redis, the real executor against an OpenSearch-compatible
server (osmem-server), the real results export.

A request against a missing index fails; once the index exists, an admin's retry queues it
again (audited), the executor runs it once more (a second execution), its new result
replaces the old, exported one and waits for the next results batch, which carries it. A
retry is accepted once: a second while it is queued is a 409, and of two at once exactly
one wins (the row lock decides, shown by holding it while both wait).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from response_api_helpers import (
    PASSWORD,
    add_user,
    assert_problem,
    clear_auth_keys,
    empty_response_db,
    make_settings,
)
from sqlalchemy import select, text

from ferry.demo import DATA, expected_ids
from response_network import jobs
from response_network import models as rs
from response_network.services.documents import read_jsonl
from response_network.services.identity import load_profile_types
from response_network.services.search import SearchBackend, make_client
from shared.db import get_engine, transaction, utcnow
from tests.conftest import network_settings

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REQUESTS = "/api/v1/admin/requests"
EXECUTIONS = "/api/v1/admin/executions"
MATCHING = {
    "query": {
        "all": [
            {"match": {"field": "title", "value": "ferry"}},
            {"range": {"field": "year", "gte": 1990}},
        ]
    },
    "size": 50,
}
WAIT_S = 60.0  # a deadline for a condition to come true, never a speed threshold


@pytest.fixture
def url(pg_urls) -> Iterator[str]:
    import redis

    url = pg_urls["response"]
    empty_response_db(url)
    cache = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    clear_auth_keys(cache)
    with transaction(url) as session:
        load_profile_types(DATA / "profile_types.json", session=session)
    add_user(url, "root", role="admin")
    add_user(url, "ursula", role="user")
    yield url
    empty_response_db(url)
    clear_auth_keys(cache)


@pytest.fixture
def client(url, tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app_for(url, tmp_path)) as client:
        yield client


def create_app_for(url: str, tmp_path):
    from response_network.app import create_app

    return create_app(make_settings(url, transfer_dir=tmp_path / "api-transfer"))


def login(client: TestClient, username: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def in_batch(url: str, seq: int = 1) -> tuple[str, str]:
    """A committed requests batch as the import records it: (id, file name)."""
    batch_id = str(uuid.uuid4())
    filename = f"requests-request-{seq:08d}-{batch_id}.jsonl"
    with transaction(url) as session:
        session.add(
            rs.Batch(
                id=batch_id,
                direction="in",
                stream="requests",
                source="request",
                destination="response",
                seq=seq,
                digest="0" * 64,
                filename=filename,
                record_count=1,
                bytes=1,
            )
        )
    return batch_id, filename


def imported(url: str, batch_id: str, **columns: Any) -> str:
    """A committed imported request (QUEUED, articles, MATCHING unless told)."""
    rid = str(uuid.uuid4())
    values: dict[str, Any] = dict(
        user_id="u-1",
        profile_type="articles",
        query=MATCHING,
        submitted_at=utcnow(),
        batch_id=batch_id,
    )
    values.update(columns)
    with transaction(url) as session:
        session.add(rs.ImportedRequest(id=rid, **values))
    return rid


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def detail(client: TestClient, headers: dict[str, str], rid: str) -> dict[str, Any]:
    reply = client.get(f"{REQUESTS}/{rid}", headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_failed_request_retried_runs_once_more_and_its_new_result_goes_out(
    url, client, tmp_path, keys, osmem_clone
):
    settings = network_settings(
        "response",
        tmp_path,
        keys,
        database_url=url,
        elasticsearch_url=osmem_clone.url,
        compat_headers=False,
    )
    jobs.make_transfer_dirs(settings)
    batch_id, batch_file = in_batch(url)
    rid = imported(url, batch_id)
    root = login(client, "root")
    with SearchBackend(make_client(osmem_clone.url, compat_headers=False)) as backend:
        # The profile type's index does not exist yet: the search fails, per request.
        assert jobs.execute(settings, backend) == {"done": 0, "failed": 1, "deferred": 0}
        failed = detail(client, root, rid)
        assert (failed["status"], failed["batch_id"], failed["batch_file"]) == (
            "FAILED",
            batch_id,
            batch_file,
        )
        assert [e["status"] for e in failed["executions"]] == ["FAILED"]
        assert failed["result"]["status"] == "FAILED" and failed["result"]["error"]
        assert failed["result"]["exported"] is False

        assert jobs.export(settings)["results"] == 1
        first_export = detail(client, root, rid)["result"]
        assert first_export["exported"] is True
        with transaction(url) as session:
            carried = session.get(rs.Batch, first_export["batch_id"])
            assert (carried.direction, carried.stream) == ("out", "results")

        backend.bulk_load("articles", read_jsonl(DATA / "articles.jsonl"))
        retried = client.post(f"{REQUESTS}/{rid}/retry", headers=root)
        assert retried.status_code == 202, retried.text
        assert retried.headers["location"] == f"{REQUESTS}/{rid}"
        body = retried.json()
        assert (body["status"], body["previous_status"], body["executions"]) == (
            "QUEUED",
            "FAILED",
            1,
        )
        queued = detail(client, root, rid)
        assert queued["status"] == "QUEUED"
        assert at(queued["updated_at"]) > at(failed["updated_at"])
        assert queued["result"] == first_export  # the old one stands until the new one lands

        again = assert_problem(client.post(f"{REQUESTS}/{rid}/retry", headers=root), 409)
        assert "QUEUED" in again["detail"]

        assert jobs.execute(settings, backend) == {"done": 1, "failed": 0, "deferred": 0}
        assert jobs.execute(settings, backend) == {
            "done": 0,
            "failed": 0,
            "deferred": 0,
        }  # run once, only

    done = detail(client, root, rid)
    assert done["status"] == "DONE"
    assert [e["status"] for e in done["executions"]] == ["FAILED", "DONE"]
    assert done["executions"][1]["took_ms"] is not None
    result = done["result"]
    assert (result["status"], result["error"], result["total"]) == (
        "DONE",
        None,
        len(expected_ids()),
    )
    assert at(result["executed_at"]) > at(first_export["executed_at"])
    assert (result["exported"], result["batch_id"]) == (False, None)
    with transaction(url) as session:
        stored = session.get(rs.Result, rid)
        assert {h["id"] for h in stored.hits} == expected_ids()
        audited = session.execute(
            select(rs.AuditLog.actor, rs.AuditLog.action, rs.AuditLog.detail).where(
                rs.AuditLog.target == rid
            )
        ).all()
    assert audited == [
        ("root", "request.retried", {"from": "FAILED", "attempt": 1, "executions": 1})
    ]
    assert (
        "DONE"
        in assert_problem(client.post(f"{REQUESTS}/{rid}/retry", headers=root), 409)["detail"]
    )

    assert jobs.export(settings)["results"] == 1
    second_export = detail(client, root, rid)["result"]
    assert second_export["exported"] is True
    assert second_export["batch_id"] not in (None, first_export["batch_id"])

    runs = client.get(EXECUTIONS, params={"request_id": rid}, headers=root).json()
    assert [e["status"] for e in runs["items"]] == ["DONE", "FAILED"]  # newest first
    assert runs["total"] == 2
    assert {e["profile_type"] for e in runs["items"]} == {"articles"}


def _lock_waiters(url: str) -> int:
    """Backends of this database waiting for a lock (a row lock, here)."""
    with get_engine(url).connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()


def _until(check: Callable[[], bool], what: str) -> None:
    """Wait for `check` to come true (a deadline, not a speed threshold)."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_of_two_retries_at_once_exactly_one_is_accepted(url, client):
    batch_id, _ = in_batch(url)
    rid = imported(url, batch_id, status=rs.FAILED)
    root = login(client, "root")
    replies: list[Any] = []

    def retry() -> None:
        replies.append(client.post(f"{REQUESTS}/{rid}/retry", headers=root))

    threads = [threading.Thread(target=retry) for _ in range(2)]
    # Hold the request's row lock while both retries arrive, so both are in flight at once:
    # each waits for the lock before it reads the status.
    with get_engine(url).connect() as holder, holder.begin():
        holder.execute(
            text("SELECT id FROM imported_requests WHERE id = :id FOR UPDATE"), {"id": rid}
        )
        for thread in threads:
            thread.start()
        _until(
            lambda: _lock_waiters(url) >= 2 or len(replies) == 2,
            "both retries to wait for the row lock",
        )
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in replies) == [202, 409], [r.text for r in replies]
    (refused,) = [r for r in replies if r.status_code == 409]
    assert "QUEUED" in assert_problem(refused, 409)["detail"]
    with transaction(url) as session:
        assert session.get(rs.ImportedRequest, rid).status == rs.QUEUED
        actions = session.execute(
            select(rs.AuditLog.action).where(rs.AuditLog.target == rid)
        ).scalars()
        assert list(actions) == ["request.retried"]


def test_requests_list_filters_pages_and_refuses(url, client):
    first, _ = in_batch(url, 1)
    second, _ = in_batch(url, 2)
    now = utcnow()
    ids = {
        "queued": imported(url, first, imported_at=now - timedelta(minutes=5)),
        "failed": imported(
            url, first, status=rs.FAILED, user_id="u-2", imported_at=now - timedelta(minutes=4)
        ),
        "cancelled": imported(
            url, second, status=rs.CANCELLED, imported_at=now - timedelta(minutes=3)
        ),
        "payroll": imported(
            url, second, profile_type="payroll", imported_at=now - timedelta(minutes=2)
        ),
    }
    root = login(client, "root")

    def listed(**params: Any) -> dict[str, Any]:
        reply = client.get(REQUESTS, params=params, headers=root)
        assert reply.status_code == 200, reply.text
        return reply.json()

    everything = listed()
    assert [r["id"] for r in everything["items"]] == [
        ids["payroll"],
        ids["cancelled"],
        ids["failed"],
        ids["queued"],
    ]  # latest imported first
    assert everything["total"] == 4
    page = listed(limit=2, offset=2)
    assert [r["id"] for r in page["items"]] == [ids["failed"], ids["queued"]]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 2)
    assert listed(offset=10) == {"items": [], "total": 4, "limit": 50, "offset": 10}
    assert [r["id"] for r in listed(status="FAILED")["items"]] == [ids["failed"]]
    assert [r["id"] for r in listed(status="CANCELLED")["items"]] == [ids["cancelled"]]
    assert [r["id"] for r in listed(user_id="u-2")["items"]] == [ids["failed"]]
    assert [r["id"] for r in listed(profile_type="payroll")["items"]] == [ids["payroll"]]
    assert listed(status="RUNNING")["total"] == 0
    row = listed(status="FAILED")["items"][0]
    assert (row["batch_id"], row["attempt"], row["user_id"]) == (first, 1, "u-2")

    assert_problem(client.get(REQUESTS, params={"status": "LOST"}, headers=root), 422)
    unknown = str(uuid.uuid4())
    assert_problem(client.get(f"{REQUESTS}/{unknown}", headers=root), 404)
    assert_problem(client.post(f"{REQUESTS}/{unknown}/retry", headers=root), 404)
    assert_problem(client.get(f"{REQUESTS}/not-a-uuid", headers=root), 422)
    for rid, state in ((ids["queued"], "QUEUED"), (ids["cancelled"], "CANCELLED")):
        refused = assert_problem(client.post(f"{REQUESTS}/{rid}/retry", headers=root), 409)
        assert state in refused["detail"]
    ursula = login(client, "ursula")
    for method, path in (
        ("GET", REQUESTS),
        ("GET", f"{REQUESTS}/{ids['failed']}"),
        ("POST", f"{REQUESTS}/{ids['failed']}/retry"),
        ("GET", EXECUTIONS),
        ("GET", "/api/v1/admin/stats"),
    ):
        assert_problem(client.request(method, path, headers=ursula), 403)
        assert_problem(client.request(method, path), 401)
    assert detail(client, root, ids["failed"])["status"] == "FAILED"  # nothing retried


def test_requests_list_filters_by_age(url, client):
    batch, _ = in_batch(url, 1)
    now = utcnow()
    old = imported(url, batch, submitted_at=now - timedelta(hours=30), status=rs.FAILED)
    imported(url, batch, submitted_at=now - timedelta(hours=2))
    root = login(client, "root")

    def listed(**params: Any) -> list[str]:
        reply = client.get(REQUESTS, params=params, headers=root)
        assert reply.status_code == 200, reply.text
        return [r["id"] for r in reply.json()["items"]]

    assert len(listed()) == 2
    assert listed(older_than_hours=24) == [old]
    assert listed(older_than_hours=24, status="QUEUED") == []
    assert len(listed(older_than_hours=1)) == 2
    for bad in (0, "soon"):
        refused = client.get(REQUESTS, params={"older_than_hours": bad}, headers=root)
        assert_problem(refused, 422)


def test_requests_list_sorts_by_a_column_and_refuses_any_other(url, client):
    batch, _ = in_batch(url, 1)
    now = utcnow()
    ids = [
        imported(
            url,
            batch,
            user_id=user,
            status=state,
            submitted_at=now - timedelta(hours=hours),
            imported_at=now - timedelta(minutes=minutes),
        )
        for user, state, hours, minutes in (
            ("u-b", rs.FAILED, 1, 3),
            ("u-c", rs.QUEUED, 3, 1),
            ("u-a", rs.CANCELLED, 2, 2),
        )
    ]
    root = login(client, "root")

    def listed(sort: str | None = None) -> list[str]:
        params = {"sort": sort} if sort else {}
        reply = client.get(REQUESTS, params=params, headers=root)
        assert reply.status_code == 200, reply.text
        return [r["id"] for r in reply.json()["items"]]

    newest_imported = [ids[1], ids[2], ids[0]]
    assert listed() == listed("-imported_at") == newest_imported
    assert listed("imported_at") == newest_imported[::-1]
    assert listed("submitted_at") == [ids[1], ids[2], ids[0]]  # the oldest submitted first
    assert listed("user_id") == [ids[2], ids[0], ids[1]]
    assert listed("-user_id") == [ids[1], ids[0], ids[2]]
    assert listed("status") == [ids[2], ids[0], ids[1]]  # CANCELLED, FAILED, QUEUED
    assert listed("id") == sorted(ids) and listed("-id") == sorted(ids, reverse=True)
    with transaction(url) as session:
        for rid, correlation in ((ids[0], "corr-b"), (ids[2], "corr-a")):
            session.get(rs.ImportedRequest, rid).correlation_id = correlation
    assert listed("correlation_id") == [ids[2], ids[0], ids[1]]  # none: last either way
    assert listed("-correlation_id") == [ids[0], ids[2], ids[1]]
    for bad in ("query", "--status", "batch_id"):
        refused = assert_problem(client.get(REQUESTS, params={"sort": bad}, headers=root), 422)
        assert "sort" in refused["detail"]


def executed(url: str, *runs: tuple[str, int, str, str | None, int | None]) -> None:
    """Executions, each (request id, minutes ago it started, status, error, took_ms); one
    not RUNNING finished a second after it started."""
    now = utcnow()
    with transaction(url) as session:
        for rid, minutes, status, error, took in runs:
            started = now - timedelta(minutes=minutes)
            session.add(
                rs.Execution(
                    request_id=rid,
                    started_at=started,
                    finished_at=None if status == rs.RUNNING else started + timedelta(seconds=1),
                    status=status,
                    error=error,
                    took_ms=took,
                )
            )


def ran(url: str, b_status: str) -> tuple[str, str]:
    """Two imported requests and their executions: `a` (u-a, articles, DONE) failed, then
    ran; `b` (u-b, payroll, in `b_status`) failed after a search time-out, later."""
    batch_id, _ = in_batch(url)
    a = imported(url, batch_id, user_id="u-a", status=rs.DONE)
    b = imported(url, batch_id, user_id="u-b", profile_type="payroll", status=b_status)
    executed(
        url,
        (a, 50, rs.FAILED, "worker lost", None),
        (a, 40, rs.DONE, None, 12),
        (b, 30, rs.FAILED, "search timed out", 900),
    )
    return a, b


def executions_listed(client: TestClient, headers: dict[str, str], **params: Any) -> list:
    """(request id, status) of each execution `GET /api/v1/admin/executions` lists."""
    reply = client.get(EXECUTIONS, params=params, headers=headers)
    assert reply.status_code == 200, reply.text
    return [(e["request_id"], e["status"]) for e in reply.json()["items"]]


def test_executions_newest_first_with_filters(url, client):
    now = utcnow()
    a, b = ran(url, rs.RUNNING)
    executed(url, (b, 10, rs.RUNNING, None, None))
    root = login(client, "root")

    def listed(**params: Any) -> list[tuple[str, str]]:
        return executions_listed(client, root, **params)

    assert listed() == [(b, "RUNNING"), (b, "FAILED"), (a, "DONE"), (a, "FAILED")]
    assert listed(status="FAILED") == [(b, "FAILED"), (a, "FAILED")]
    assert listed(profile_type="payroll") == [(b, "RUNNING"), (b, "FAILED")]
    assert listed(request_id=a) == [(a, "DONE"), (a, "FAILED")]
    since = (now - timedelta(minutes=35)).isoformat()
    assert listed(since=since) == [(b, "RUNNING"), (b, "FAILED")]
    naive = (now - timedelta(minutes=35)).replace(tzinfo=None).isoformat()  # read as UTC
    assert listed(since=naive) == [(b, "RUNNING"), (b, "FAILED")]
    page = client.get(EXECUTIONS, params={"limit": 1, "offset": 1}, headers=root).json()
    assert page["total"] == 4 and [e["status"] for e in page["items"]] == ["FAILED"]
    row = page["items"][0]
    assert (row["user_id"], row["profile_type"], row["took_ms"], row["error"]) == (
        "u-b",
        "payroll",
        900,
        "search timed out",
    )
    assert row["attempt"] == 1 and row["finished_at"] is not None
    assert_problem(client.get(EXECUTIONS, params={"status": "QUEUED"}, headers=root), 422)
    for number in ("1700000000", "-4.2e-184", "nan"):  # never read as Unix time
        assert_problem(client.get(EXECUTIONS, params={"since": number}, headers=root), 422)
    assert_problem(client.get(EXECUTIONS, params={"request_id": "x"}, headers=root), 422)


def test_executions_sort_by_a_column_and_refuse_any_other(url, client):
    a, b = ran(url, rs.FAILED)
    root = login(client, "root")

    def listed(sort: str) -> list[tuple[str, str]]:
        return executions_listed(client, root, sort=sort)

    first_a, done_a, failed_b = (a, "FAILED"), (a, "DONE"), (b, "FAILED")
    assert listed("-started_at") == [failed_b, done_a, first_a]  # the default
    assert listed("started_at") == [first_a, done_a, failed_b]
    assert listed("took_ms") == [done_a, failed_b, first_a]  # never ran: last either way
    assert listed("-took_ms") == [failed_b, done_a, first_a]
    assert listed("error") == [failed_b, first_a, done_a]  # "search…", "worker…", none
    assert listed("-error") == [first_a, failed_b, done_a]
    assert listed("status") == [done_a, failed_b, first_a]  # ties newest first
    assert listed("-profile_type") == [failed_b, done_a, first_a]
    by_request = listed("request_id")
    assert by_request == sorted(by_request, key=lambda e: e[0])
    for key in ("attempt", "finished_at", "profile_type"):
        for sort in (key, f"-{key}"):
            assert len(listed(sort)) == 3
    for bad in ("user_id", "--status", "started"):
        refused = assert_problem(client.get(EXECUTIONS, params={"sort": bad}, headers=root), 422)
        assert "query.sort" in refused["detail"]
