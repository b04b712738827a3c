"""Every route of the request API, walked from its OpenAPI schema, with no credentials, with
each role's bearer token and with API keys, checked against the tables below.

A route missing from ACCESS (or, unless public, from KEY_SCOPE) fails: a new route must be
declared here. A row whose route does not exist (yet) is tolerated. "Allowed" means the
reply is neither 401 nor 403; a 404 or 422 for a dummy id or body is fine.
"""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from request_api_helpers import JWT_SECRET, assert_problem, make_settings

from request_network.app import create_app
from shared.security.api_keys import SCOPES
from shared.security.tokens import issue_token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PUBLIC = "public"
ROLES = ("user", "operator", "admin")
RANK = {"user": 0, "operator": 1, "admin": 2}

#: Who may call each route: "public", or the least role that may.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): "operator",
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): "user",
    ("GET", "/api/v1/auth/me"): "user",
    ("GET", "/api/v1/users/me"): "user",
    ("GET", "/api/v1/notifications"): "user",
    ("GET", "/api/v1/notifications/stream"): "user",
    ("POST", "/api/v1/notifications/{notification_id}/read"): "user",
    ("POST", "/api/v1/notifications/read-all"): "user",
    ("POST", "/api/v1/webhooks"): "user",
    ("GET", "/api/v1/webhooks"): "user",
    ("GET", "/api/v1/webhooks/{webhook_id}"): "user",
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): "user",
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): "user",
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): "user",
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): "user",
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): "user",
    ("PATCH", "/api/v1/users/me"): "user",
    ("POST", "/api/v1/users/me/password"): "user",
    ("POST", "/api/v1/requests"): "user",
    ("GET", "/api/v1/requests"): "user",
    ("GET", "/api/v1/requests/{request_id}"): "user",
    ("GET", "/api/v1/requests/{request_id}/response"): "user",
    ("POST", "/api/v1/api-keys"): "user",
    ("GET", "/api/v1/api-keys"): "user",
    ("DELETE", "/api/v1/api-keys/{key_id}"): "user",
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): "user",
    ("POST", "/api/v1/admin/api-keys/{key_id}/disable"): "admin",
    ("POST", "/api/v1/admin/api-keys/{key_id}/enable"): "admin",
    ("GET", "/api/v1/rate-limits/me"): "user",
    ("GET", "/api/v1/admin/rate-limits/{user_id}"): "admin",
    ("DELETE", "/api/v1/admin/rate-limits/{user_id}"): "admin",
    ("PUT", "/api/v1/admin/users/{user_id}/rate-limits"): "admin",
    ("GET", "/api/v1/admin/rate-limits/violations"): "admin",
    ("GET", "/api/v1/admin/users/{user_id}/lock"): "admin",
    ("DELETE", "/api/v1/admin/users/{user_id}/lock"): "admin",
    ("GET", "/api/v1/admin/users"): "admin",
    ("GET", "/api/v1/admin/users/{user_id}"): "admin",
    ("GET", "/api/v1/admin/requests"): "admin",
    ("GET", "/api/v1/admin/requests/{request_id}/trace"): "admin",
    ("GET", "/api/v1/admin/alerts"): "admin",
    ("POST", "/api/v1/admin/alerts/{alert_id}/ack"): "admin",
    ("POST", "/api/v1/admin/requests/{request_id}/cancel"): "admin",
    ("POST", "/api/v1/admin/requests/{request_id}/retry"): "admin",
    ("GET", "/api/v1/admin/stats"): "admin",
    ("GET", "/api/v1/admin/cache/stats"): "admin",
    ("DELETE", "/api/v1/admin/cache"): "admin",
    ("POST", "/api/v1/admin/cache/optimize"): "admin",
    ("GET", "/api/v1/admin/health"): "admin",
    ("GET", "/api/v1/admin/queues"): "admin",
    ("POST", "/api/v1/admin/queues/{name}/purge"): "admin",
    ("POST", "/api/v1/admin/tasks/{name}/run"): "admin",
    ("GET", "/api/v1/admin/tasks/{task_id}"): "admin",
    ("GET", "/api/v1/admin/batches"): "admin",
    ("GET", "/api/v1/admin/settings"): "admin",
    ("PUT", "/api/v1/admin/settings"): "admin",
    ("GET", "/api/v1/operator/status"): "operator",
    ("GET", "/api/v1/operator/outbox"): "operator",
    ("GET", "/api/v1/operator/outbox/{name}"): "operator",
    ("PUT", "/api/v1/operator/inbox/{name}"): "operator",
    ("GET", "/api/v1/operator/quarantine"): "operator",
    ("GET", "/api/v1/operator/quarantine/{name}"): "operator",
    ("POST", "/api/v1/operator/quarantine/{name}/release"): "operator",
    ("DELETE", "/api/v1/operator/quarantine/{name}"): "operator",
}

#: The scope an API key needs on each protected route; None: login sessions only.
#: "*" : any key of a user the route's role admits.
KEY_SCOPE: dict[tuple[str, str], str | None] = {
    ("POST", "/api/v1/auth/logout"): None,
    ("GET", "/metrics"): "operator",
    ("GET", "/api/v1/auth/me"): "*",
    ("GET", "/api/v1/users/me"): "*",
    ("GET", "/api/v1/notifications"): "requests:read",
    ("GET", "/api/v1/notifications/stream"): "requests:read",
    ("POST", "/api/v1/notifications/{notification_id}/read"): "requests:read",
    ("POST", "/api/v1/notifications/read-all"): "requests:read",
    # Webhooks: login sessions only (a leaked key must not add a destination for events).
    ("POST", "/api/v1/webhooks"): None,
    ("GET", "/api/v1/webhooks"): None,
    ("GET", "/api/v1/webhooks/{webhook_id}"): None,
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): None,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): None,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): None,
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): None,
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): None,
    ("PATCH", "/api/v1/users/me"): None,
    ("POST", "/api/v1/users/me/password"): None,
    ("POST", "/api/v1/requests"): "requests:write",
    ("GET", "/api/v1/requests"): "requests:read",
    ("GET", "/api/v1/requests/{request_id}"): "requests:read",
    ("GET", "/api/v1/requests/{request_id}/response"): "requests:read",
    ("POST", "/api/v1/api-keys"): None,
    ("GET", "/api/v1/api-keys"): "keys:manage",
    ("DELETE", "/api/v1/api-keys/{key_id}"): "keys:manage",
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): "keys:manage",
    ("POST", "/api/v1/admin/api-keys/{key_id}/disable"): "admin",
    ("POST", "/api/v1/admin/api-keys/{key_id}/enable"): "admin",
    ("GET", "/api/v1/rate-limits/me"): "requests:read",
    ("GET", "/api/v1/admin/rate-limits/{user_id}"): "admin",
    ("DELETE", "/api/v1/admin/rate-limits/{user_id}"): "admin",
    ("PUT", "/api/v1/admin/users/{user_id}/rate-limits"): "admin",
    ("GET", "/api/v1/admin/rate-limits/violations"): "admin",
    ("GET", "/api/v1/admin/users/{user_id}/lock"): "admin",
    ("DELETE", "/api/v1/admin/users/{user_id}/lock"): "admin",
    ("GET", "/api/v1/admin/users"): "admin",
    ("GET", "/api/v1/admin/users/{user_id}"): "admin",
    ("GET", "/api/v1/admin/requests"): "admin",
    ("GET", "/api/v1/admin/requests/{request_id}/trace"): "admin",
    ("GET", "/api/v1/admin/alerts"): "admin",
    ("POST", "/api/v1/admin/alerts/{alert_id}/ack"): "admin",
    ("POST", "/api/v1/admin/requests/{request_id}/cancel"): "admin",
    ("POST", "/api/v1/admin/requests/{request_id}/retry"): "admin",
    ("GET", "/api/v1/admin/stats"): "admin",
    ("GET", "/api/v1/admin/cache/stats"): "admin",
    ("DELETE", "/api/v1/admin/cache"): "admin",
    ("POST", "/api/v1/admin/cache/optimize"): "admin",
    ("GET", "/api/v1/admin/health"): "admin",
    ("GET", "/api/v1/admin/queues"): "admin",
    ("POST", "/api/v1/admin/queues/{name}/purge"): "admin",
    ("POST", "/api/v1/admin/tasks/{name}/run"): "admin",
    ("GET", "/api/v1/admin/tasks/{task_id}"): "admin",
    ("GET", "/api/v1/admin/batches"): "admin",
    ("GET", "/api/v1/admin/settings"): "admin",
    ("PUT", "/api/v1/admin/settings"): "admin",
    ("GET", "/api/v1/operator/status"): "operator",
    ("GET", "/api/v1/operator/outbox"): "operator",
    ("GET", "/api/v1/operator/outbox/{name}"): "operator",
    ("PUT", "/api/v1/operator/inbox/{name}"): "operator",
    ("GET", "/api/v1/operator/quarantine"): "operator",
    ("GET", "/api/v1/operator/quarantine/{name}"): "operator",
    ("POST", "/api/v1/operator/quarantine/{name}/release"): "operator",
    ("DELETE", "/api/v1/operator/quarantine/{name}"): "operator",
}

HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}
DUMMY = {"key_id": "abcdefghijkl", "name": "requests-request-00000001-x.jsonl"}


def _app():
    return create_app(make_settings("postgresql+psycopg://postgres@127.0.0.1:5432/unused"))


def openapi_routes() -> list[tuple[str, str]]:
    paths = _app().openapi()["paths"]
    return sorted((m.upper(), p) for p, ops in paths.items() for m in ops if m in HTTP_METHODS)


ROUTES = openapi_routes()


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: DUMMY.get(m[1], str(uuid.uuid4())), path)


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]):
    return client.request(method, _url(path), headers=headers, json={})


def _allowed(reply) -> bool:
    return reply.status_code not in (401, 403)


@pytest.fixture
def walker(settings, tmp_path):
    settings = settings.model_copy(update={"transfer_dir": tmp_path / "transfer"})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def people(seed) -> dict[str, str]:
    seed.profile_type()
    return {role: seed.user(f"the-{role}", role=role) for role in ROLES}


def _token(settings, user_id: str, role: str) -> dict[str, str]:
    token, _ = issue_token(
        subject=user_id,
        role=role,
        secret=JWT_SECRET,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        minutes=5,
    )
    return {"Authorization": f"Bearer {token}"}


def _key(client, settings, people, scopes) -> dict[str, str]:
    reply = client.post(
        "/api/v1/api-keys",
        json={"name": "walker", "scopes": sorted(scopes)},
        headers=_token(settings, people["admin"], "admin"),
    )
    assert reply.status_code == 201, reply.text
    return {"X-API-Key": reply.json()["key"]}


def test_every_route_is_declared():
    missing = [r for r in ROUTES if r not in ACCESS]
    assert not missing, f"declare who may call these routes in ACCESS: {missing}"
    unkeyed = [r for r in ROUTES if ACCESS[r] != PUBLIC and r not in KEY_SCOPE]
    assert not unkeyed, f"declare the API-key scope of these routes in KEY_SCOPE: {unkeyed}"


def test_no_route_hides_from_the_schema():
    """The walk covers the OpenAPI schema; an API route left out of it would escape it."""
    hidden = [
        (m, r.path)
        for r in _app().routes
        if isinstance(r, APIRoute)
        for m in r.methods
        if (m, r.path) not in ROUTES
    ]
    assert not hidden


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_roles_on_route(walker, settings, people, method, path):
    required = ACCESS.get((method, path))
    if required is None:
        pytest.fail(f"{method} {path} is not declared in ACCESS")

    anonymous = _call(walker, method, path, {})
    if required == PUBLIC:
        assert _allowed(anonymous), anonymous.text
        return
    assert_problem(anonymous, 401)
    for role in ROLES:
        reply = _call(walker, method, path, _token(settings, people[role], role))
        if RANK[role] >= RANK[required]:
            assert _allowed(reply), f"{role}: {reply.status_code} {reply.text}"
        else:
            assert_problem(reply, 403)


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_api_keys_on_route(walker, settings, people, method, path):
    if ACCESS.get((method, path)) == PUBLIC:
        return
    scope = KEY_SCOPE.get((method, path), "undeclared")
    assert scope != "undeclared", f"{method} {path} is not declared in KEY_SCOPE"

    every_scope = _key(walker, settings, people, SCOPES)
    reply = _call(walker, method, path, every_scope)
    if scope is None:
        assert "login session" in assert_problem(reply, 403)["detail"]
        return
    assert _allowed(reply), f"{reply.status_code} {reply.text}"
    if scope != "*":
        lacking = _key(walker, settings, people, set(SCOPES) - {scope})
        assert scope in assert_problem(_call(walker, method, path, lacking), 403)["detail"]
