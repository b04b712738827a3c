"""The body size guard refuses oversized bodies, declared or streamed, with problem+json."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.http import BodySizeLimit
from shared.problems import install_problem_handlers


def make_client(limit: int) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/echo")
    def echo(body: dict) -> dict:
        return body

    app.add_middleware(BodySizeLimit, max_bytes=limit)
    return TestClient(app)


def test_declared_length_over_the_limit_is_413():
    reply = make_client(100).post(
        "/echo", content=b"{" + b" " * 200 + b"}", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["detail"] == "the limit is 100 bytes"


def test_streamed_body_over_the_limit_is_413():
    def chunks():
        yield b'{"a": "'
        for _ in range(10):
            yield b"x" * 50
        yield b'"}'

    reply = make_client(100).post(
        "/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413


def test_body_within_the_limit_passes():
    reply = make_client(100).post("/echo", json={"a": 1})
    assert (reply.status_code, reply.json()) == (200, {"a": 1})
