"""The request log and request ids of both APIs (shared/http_logging.py): one JSON line per
request with the route template, status, duration, user, client (behind trusted proxies) and
request id; `X-Request-ID` accepted when well-formed, replaced otherwise, returned on every
reply, errors included; bodies, queries and credentials never logged. The real apps, on real
PostgreSQL and Redis where a route needs them."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from request_network.api.deps import UserDep
from request_network.app import create_app as request_app
from request_network.settings import RequestSettings
from response_network.app import create_app as response_app
from shared.logs import get_logger
from tests.conftest import REDIS_URL
from tests.request_network import request_api_helpers as rq
from tests.response_network import response_api_helpers as rs
from tests.shared.logging_support import captured_logs

HEX_ID = re.compile(r"[0-9a-f]{32}")
PROXY = ("10.0.0.2", 50000)  # a trusted proxy, in front of the client it names
CLIENT = "198.51.100.7"


@pytest.fixture
def demo_app():
    """The request network's app on an in-memory database, with three routes of this test."""
    app = request_app(RequestSettings(database_url="sqlite://", mode="demo"))

    @app.get("/test/note")
    async def note() -> dict[str, str]:
        logging.getLogger("ferry.test.http").info("noted by a standard logger")
        return {}

    @app.get("/test/note-in-thread")
    def note_in_thread() -> dict[str, str]:
        get_logger("ferry.test.http").info("noted by structlog in a worker thread")
        return {}

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("the store refused password=hunter2-not-for-logs")

    return app


def _http_lines(logs) -> list[dict]:
    return logs.from_logger("ferry.http")


def _server_side(logs) -> str:
    """The output without the test's own HTTP client's lines (they hold the URLs it called)."""
    return "\n".join(str(line) for line in logs.lines() if line["logger"] != "httpx")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def rq_db(pg_urls, redis_client) -> Iterator[str]:
    url = pg_urls["request"]
    rq.truncate_request_db(url)
    yield url
    rq.truncate_request_db(url)
    rq.clear_auth_keys(redis_client)


@pytest.fixture
def rs_db(pg_urls, redis_client) -> Iterator[str]:
    url = pg_urls["response"]
    rs.empty_response_db(url)
    yield url
    rs.empty_response_db(url)
    rs.clear_auth_keys(redis_client)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_request_is_one_line_with_its_route_status_user_client_and_id(rq_db) -> None:
    seed = rq.Seed(rq_db)
    seed.profile_type()
    alice = seed.user("alice")
    settings = rq.make_settings(rq_db, redis_url=REDIS_URL, trusted_proxies=["10.0.0.0/8"])
    needle = f"needle-{uuid.uuid4().hex}"
    forwarded = {"X-Forwarded-For": CLIENT}
    app = request_app(settings)

    @app.get("/test/whoami")
    def whoami(caller: UserDep) -> dict[str, str]:  # in a worker thread, after the auth
        logging.getLogger("ferry.test.http").info("seen by the endpoint")
        return {}

    with captured_logs() as logs, TestClient(app, client=PROXY) as client:
        login = client.post(
            "/api/v1/auth/login",
            data={"username": "alice", "password": rq.PASSWORD},
            headers=forwarded,
        )
        token = login.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"} | forwarded
        query = {"query": {"match": {"field": "title", "value": needle}}, "size": 5}
        submitted = client.post(
            "/api/v1/requests", json={"profile_type": "articles", "query": query}, headers=auth
        )
        assert submitted.status_code == 202, submitted.text
        request_id = submitted.json()["id"]
        shown = client.get(
            f"/api/v1/requests/{request_id}?note={needle}",
            headers=auth | {"X-Request-ID": "trace-7.a:b"},
        )
        assert client.get("/test/whoami", headers=auth).status_code == 200
    assert shown.status_code == 200
    assert shown.headers["x-request-id"] == "trace-7.a:b"

    lines = _http_lines(logs)
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("POST", "/api/v1/auth/login", 200),
        ("POST", "/api/v1/requests", 202),
        ("GET", "/api/v1/requests/{request_id}", 200),
        ("GET", "/test/whoami", 200),
    ]
    seen = next(line for line in logs.lines() if line["event"] == "seen by the endpoint")
    assert seen["user_id"] == alice and seen["request_id"] == lines[-1]["request_id"]
    lines = lines[:3]
    login_line, submit_line, show_line = lines
    assert login_line["user_id"] is None  # nobody is authenticated on the login route
    assert submit_line["user_id"] == show_line["user_id"] == alice
    assert show_line["request_id"] == "trace-7.a:b"
    assert HEX_ID.fullmatch(login_line["request_id"])
    assert login_line["request_id"] == login.headers["x-request-id"]
    assert {line["client"] for line in lines} == {CLIENT}
    assert all(
        isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0 for line in lines
    )
    assert request_id not in str(show_line)  # the template, not the raw path
    # No body, query string or credential anywhere in the output.
    for private in (needle, rq.PASSWORD, token):
        assert private not in _server_side(logs)


@pytest.mark.postgres
@pytest.mark.redis
def test_the_response_network_logs_its_requests_the_same_way(rs_db) -> None:
    admin = rs.add_user(rs_db, "root")
    settings = rs.make_settings(rs_db, redis_url=REDIS_URL)
    with captured_logs() as logs, TestClient(response_app(settings)) as client:
        login = client.post(
            "/api/v1/auth/login", data={"username": "root", "password": rs.PASSWORD}
        )
        token = login.json()["access_token"]
        listed = client.get(
            "/api/v1/admin/users?q=secret-query",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "rs-1"},
        )
    assert listed.status_code == 200
    assert listed.headers["x-request-id"] == "rs-1"
    line = _http_lines(logs)[-1]
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v1/admin/users", 200)
    assert line["user_id"] == admin
    assert line["request_id"] == "rs-1"
    assert line["client"] == "testclient"
    assert "secret-query" not in _server_side(logs)
    assert token not in logs.text and rs.PASSWORD not in logs.text


@pytest.mark.parametrize(
    "sent", ["has space", "x" * 129, "<script>", "semi;colon", "slash/no", 'quo"te', "a,b"]
)
def test_a_malformed_request_id_is_replaced_by_a_fresh_one(demo_app, sent: str) -> None:
    with captured_logs() as logs:
        reply = TestClient(demo_app).get("/test/note", headers={"X-Request-ID": sent})
    given = reply.headers["x-request-id"]
    assert HEX_ID.fullmatch(given) and given != sent
    ours = [line for line in logs.lines() if line["logger"].startswith("ferry.")]
    assert len(ours) == 2 and {line["request_id"] for line in ours} == {given}
    assert sent not in logs.text


@pytest.mark.parametrize(
    "sent", ["a", "A" * 128, "0.1:2-3", "7f9c24e5-4d2b-4a56-9fb1-3b1e2d6a0c11"]
)
def test_a_well_formed_request_id_is_kept(demo_app, sent: str) -> None:
    reply = TestClient(demo_app).get("/health", headers={"X-Request-ID": sent})
    assert reply.headers["x-request-id"] == sent


def test_every_line_written_during_a_request_carries_its_id(demo_app) -> None:
    with captured_logs() as logs:
        client = TestClient(demo_app)
        first = client.get("/test/note")
        second = client.get("/test/note-in-thread", headers={"X-Request-ID": "thread-2"})
        logging.getLogger("ferry.test.http").info("after the requests")
    assert second.headers["x-request-id"] == "thread-2"
    by_event = {line["event"]: line for line in logs.lines()}
    assert by_event["noted by a standard logger"]["request_id"] == first.headers["x-request-id"]
    assert by_event["noted by structlog in a worker thread"]["request_id"] == "thread-2"
    assert "request_id" not in by_event["after the requests"]


def test_errors_carry_the_request_id_too(demo_app) -> None:
    with captured_logs() as logs:
        client = TestClient(demo_app, raise_server_exceptions=False)
        failed = client.get("/test/boom", headers={"X-Request-ID": "boom-1"})
        missing = client.get("/no/such/route", headers={"X-Request-ID": "lost-1"})
        refused = client.post("/api/v1/auth/login", data={}, headers={"X-Request-ID": "bad-1"})
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "boom-1"
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "lost-1"
    assert refused.status_code == 422 and refused.headers["x-request-id"] == "bad-1"

    error = next(line for line in logs.lines() if line["logger"] == "ferry.api")
    assert error["request_id"] == "boom-1"
    assert error["error_id"] == failed.headers["x-error-id"]
    assert "RuntimeError" in error["exception"]
    assert "hunter2-not-for-logs" not in logs.text  # masked in the traceback as well
    statuses = {line["request_id"]: (line["route"], line["status"]) for line in _http_lines(logs)}
    assert statuses == {
        "boom-1": ("/test/boom", 500),
        "lost-1": (None, 404),
        "bad-1": ("/api/v1/auth/login", 422),
    }
