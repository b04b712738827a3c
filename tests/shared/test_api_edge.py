"""What every reply of both APIs carries whatever its route: security headers, an `Allow`
listing every method of a path (on `OPTIONS` and on 405), and the safety net: input the
database refuses is a 4xx, a lost unique race a 409, anything else an opaque 500 whose id is
logged; never a stack trace or SQL. Real PostgreSQL behind a small app built the way both
networks build theirs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select

from request_network.app import create_app as request_app
from request_network.settings import RequestSettings
from response_network.app import create_app as response_app
from response_network.settings import ResponseSettings
from shared.http_edge import SecurityHeaders
from shared.problems import install_problem_handlers

SECRETS = {
    "jwt_secret": "a-real-secret-for-this-test-0123456789abcdef",
    "api_key_pepper": "a-real-pepper-for-this-test-0123456789abcdef",
}
APPS = {
    "request": lambda **kw: request_app(RequestSettings(**SECRETS, **kw)),
    "response": lambda **kw: response_app(ResponseSettings(**SECRETS, **kw)),
}
SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.fixture(params=list(APPS))
def network(request) -> TestClient:
    app = APPS[request.param](database_url="sqlite://", mode="demo")
    return TestClient(app, raise_server_exceptions=False)


def _has_security_headers(reply) -> None:
    for name, value in SECURITY.items():
        assert reply.headers.get(name) == value, (name, reply.headers)


def test_every_reply_carries_the_security_headers(network):
    for reply in (
        network.get("/health"),  # a route
        network.get("/no/such/route"),  # a 404 from the router
        network.request("PATCH", "/api/v1/auth/login"),  # a 405
        network.post("/api/v1/auth/login", data={"username": "\x00"}),  # a 422
        network.post("/api/v1/auth/login", content=b"x" * 200_000),  # a 413 from the guard
    ):
        _has_security_headers(reply)
    assert network.post("/api/v1/auth/login", content=b"x" * 200_000).status_code == 413


def test_html_pages_get_a_content_security_policy(network):
    docs = network.get("/docs")
    assert docs.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert "content-security-policy" not in network.get("/health").headers  # JSON: no CSP


def test_options_lists_every_method_of_the_path():
    """Two routes share the path (GET and DELETE): `Allow` names both, on OPTIONS and 405."""
    client = TestClient(request_app(RequestSettings(**SECRETS, database_url="sqlite://")))
    path = "/api/v1/admin/rate-limits/some-user"
    options = client.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == "DELETE, GET, OPTIONS"
    _has_security_headers(options)
    refused = client.request("PATCH", path)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "DELETE, GET, OPTIONS"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert client.options("/no/such/route").status_code == 404


@pytest.fixture
def edge_app(pg_urls) -> tuple[TestClient, Any]:
    """A route per way a database or bug can fail, behind the house's handlers."""
    engine = create_engine(pg_urls["request"])
    metadata = MetaData()
    table = Table(
        "edge_probe", metadata, Column("id", Integer, primary_key=True), Column("name", String)
    )
    metadata.create_all(engine)
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(SecurityHeaders, fastapi_app=app)

    @app.get("/text")
    def text(value: str) -> dict:  # deliberately unchecked: the database refuses NUL
        with engine.connect() as conn:
            return {"found": conn.execute(select(table).where(table.c.name == value)).all() != []}

    @app.get("/number")
    def number(value: int) -> dict:  # deliberately unbounded: beyond 64 bits
        with engine.connect() as conn:
            conn.execute(select(table).offset(value)).all()
        return {}

    @app.post("/twice")
    def twice() -> dict:
        with engine.begin() as conn:
            conn.execute(insert(table).values(id=1, name="one"))
            conn.execute(insert(table).values(id=1, name="again"))
        return {}

    @app.get("/bug")
    def bug() -> dict:
        raise RuntimeError("secret internals: SELECT password FROM users")

    yield TestClient(app, raise_server_exceptions=False), engine
    metadata.drop_all(engine)
    engine.dispose()


def _problem(reply, status: int) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status
    return body


def test_input_the_database_refuses_is_a_422(edge_app):
    client, _ = edge_app
    for reply in (client.get("/text?value=a%00b"), client.get("/number?value=" + "9" * 30)):
        body = _problem(reply, 422)
        assert "SELECT" not in reply.text and "psycopg" not in reply.text
        assert "error id" in body["detail"]


def test_a_lost_unique_race_is_a_409(edge_app):
    body = _problem(edge_app[0].post("/twice"), 409)
    assert "edge_probe" not in body["detail"] and "INSERT" not in str(body)


def test_an_unexpected_error_is_an_opaque_500_whose_id_is_logged(edge_app, caplog):
    client, _ = edge_app
    with caplog.at_level(logging.ERROR, logger="ferry.api"):
        reply = client.get("/bug")
    body = _problem(reply, 500)
    assert "secret internals" not in reply.text and "Traceback" not in reply.text
    error_id = reply.headers["x-error-id"]
    assert error_id in body["detail"]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the trace is in the log only
    _has_security_headers(reply)


def test_the_openapi_documents_every_error_as_problem_json(network):
    schema = network.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"500", "503"} <= set(responses), (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            for status, entry in responses.items():
                if int(status) >= 400:
                    assert list(entry["content"]) == ["application/problem+json"], (path, status)
