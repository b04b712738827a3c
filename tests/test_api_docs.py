"""The API docs and schema describe every route, so production serves them only on request."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from request_network.app import create_app as request_app
from request_network.settings import RequestSettings
from response_network.app import create_app as response_app
from response_network.settings import ResponseSettings

SECRETS = {
    "jwt_secret": "a-real-secret-for-this-test-0123456789abcdef",
    "api_key_pepper": "a-real-pepper-for-this-test-0123456789abcdef",
}
APPS = {
    "request": lambda **kw: request_app(RequestSettings(**SECRETS, **kw)),
    "response": lambda **kw: response_app(ResponseSettings(**SECRETS, **kw)),
}


@pytest.mark.parametrize("network", APPS)
@pytest.mark.parametrize(
    ("settings", "served"),
    [
        ({"mode": "production"}, False),
        ({"mode": "production", "api_docs": True}, True),
        ({"mode": "demo"}, True),
    ],
)
def test_docs_and_schema_are_served_only_when_asked_for(network, settings, served):
    client = TestClient(APPS[network](database_url="sqlite://", **settings))
    for path in ("/docs", "/openapi.json"):
        reply = client.get(path)
        assert reply.status_code == (200 if served else 404), (path, reply.status_code)
    assert client.get("/redoc").status_code == 404
