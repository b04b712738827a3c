"""The request's transaction commits before the reply leaves: a client that reads right
after a 202 must find what it created."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from request_network.app import create_app
from shared.migrate import upgrade
from tests.conftest import network_settings


def test_commit_happens_before_the_response_is_sent(tmp_path, keys):
    settings = network_settings("request", tmp_path, keys)
    upgrade("request", settings.database_url)
    order: list[str] = []
    app = create_app(settings)

    async def record_start(scope, receive, send):
        async def tracking_send(message):
            if message["type"] == "http.response.start":
                order.append("response")
            await send(message)

        await inner(scope, receive, tracking_send)

    inner = app.build_middleware_stack()
    app.middleware_stack = record_start

    def on_commit(_session):
        order.append("commit")

    event.listen(Session, "after_commit", on_commit)
    try:
        reply = TestClient(app).get("/health")
    finally:
        event.remove(Session, "after_commit", on_commit)
    assert reply.status_code == 200
    assert order == ["commit", "response"]
