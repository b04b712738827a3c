"""`/health` against real PostgreSQL and Redis, and the problem+json shape of errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import JWT_SECRET, assert_problem, closed_port, make_settings

from request_network.app import create_app
from shared.health import ferry_version
from shared.security.tokens import issue_token

pytestmark = pytest.mark.postgres


@pytest.mark.redis
def test_health_is_ok_with_real_postgres_and_redis(client):
    reply = client.get("/health")

    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok"},
        "version": ferry_version(),
    }


def test_health_needs_no_token(client):
    assert client.get("/health").status_code == 200


def test_health_is_degraded_when_redis_is_unreachable(api_db):
    settings = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings)) as client:
        reply = client.get("/health")

    assert reply.status_code == 200  # the API stays up; only the cache is gone
    body = reply.json()
    assert body["status"] == "degraded"
    assert body["checks"] == {"database": "ok", "redis": "unavailable"}


def test_health_is_503_degraded_when_the_database_is_unreachable(api_db):
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/nowhere"
    with TestClient(create_app(make_settings(dead)), raise_server_exceptions=False) as client:
        reply = client.get("/health")

    assert reply.status_code == 503
    assert reply.json()["status"] == "degraded"
    assert reply.json()["checks"]["database"] == "unavailable"


def test_unknown_route_is_a_404_problem(client):
    body = assert_problem(client.get("/api/v1/nothing-here"), 404)
    assert body["instance"] == "/api/v1/nothing-here"


def test_wrong_method_is_a_405_problem(client):
    assert_problem(client.delete("/api/v1/auth/login"), 405)


def test_validation_error_is_a_422_problem_listing_every_bad_field(client):
    body = assert_problem(client.post("/api/v1/auth/login", data={}), 422)
    assert {e["loc"] for e in body["errors"]} == {"body.username", "body.password"}
    assert "body.username" in body["detail"] and "body.password" in body["detail"]


def test_database_failure_on_an_authenticated_endpoint_is_a_problem_not_a_stack_trace(api_db):
    """Whatever goes wrong, the client gets problem+json (DESIGN.md: RFC 9457 errors)."""
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/nowhere"
    settings = make_settings(dead)
    token, _ = issue_token(
        subject="someone",
        role="user",
        secret=JWT_SECRET,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        minutes=5,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        reply = client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"})

    assert reply.status_code >= 500
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == reply.status_code
    assert body["title"]
    assert "psycopg" not in reply.text and "127.0.0.1" not in reply.text
