"""Bearer tokens refused at the API, logout by `jti`, and what Redis being down means.

Real PostgreSQL and Redis (DB 15; `api_db` clears the `auth:*` keys around each test).
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from request_api_helpers import JWT_SECRET, PASSWORD, assert_problem, closed_port, make_settings

from request_network.app import create_app
from shared.security.revocation import DENIED_TOKEN
from shared.security.tokens import decode_token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LOGIN, LOGOUT, ME = "/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/auth/me"


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(settings, sub: str, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": sub,
        "role": "user",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def alice(seed) -> str:
    seed.profile_type()
    return seed.user("alice")


def _login_token(client) -> str:
    reply = client.post(LOGIN, data={"username": "alice", "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def _alg_none(settings, sub):
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings, sub))}."


def _revoked(settings, sub, client):
    token = _login_token(client)
    assert client.post(LOGOUT, headers=_bearer(token)).status_code == 204
    return token


REFUSED = {
    "alg-none": lambda s, sub, c: _alg_none(s, sub),
    "wrong-algorithm": lambda s, sub, c: jwt.encode(_claims(s, sub), JWT_SECRET, "HS512"),
    "wrong-key": lambda s, sub, c: jwt.encode(_claims(s, sub), "k" * 48, "HS256"),
    "no-exp": lambda s, sub, c: jwt.encode(_claims(s, sub, exp=None), JWT_SECRET, "HS256"),
    "expired-exp": lambda s, sub, c: jwt.encode(
        _claims(s, sub, iat=int(time.time()) - 900, exp=int(time.time()) - 60), JWT_SECRET
    ),
    "wrong-audience": lambda s, sub, c: jwt.encode(_claims(s, sub, aud="elsewhere"), JWT_SECRET),
    "revoked-jti": _revoked,
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_bad_tokens_are_refused_by_the_api(client, settings, alice, kind):
    token = REFUSED[kind](settings, alice, client)
    reply = client.get("/api/v1/requests", headers=_bearer(token))
    assert_problem(reply, 401)
    assert reply.headers["www-authenticate"] == "Bearer"


def test_a_well_made_token_is_accepted(client, settings, alice):
    """The control for the refusals above: the same factory, nothing wrong with it."""
    token = jwt.encode(_claims(settings, alice), JWT_SECRET, "HS256")
    assert client.get("/api/v1/requests", headers=_bearer(token)).status_code == 200


def test_logout_revokes_that_token_only_until_it_would_expire(
    client, settings, alice, redis_client
):
    token, other = _login_token(client), _login_token(client)

    assert client.post(LOGOUT, headers=_bearer(token)).status_code == 204

    assert "revoked" in assert_problem(client.get(ME, headers=_bearer(token)), 401)["detail"]
    assert client.get(ME, headers=_bearer(other)).status_code == 200
    claims = decode_token(
        token, secret=JWT_SECRET, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    ttl = redis_client.ttl(DENIED_TOKEN + claims.jti)
    assert 0 < ttl <= settings.access_token_minutes * 60


def test_logging_out_twice_is_a_401(client, alice):
    token = _login_token(client)
    client.post(LOGOUT, headers=_bearer(token))
    assert_problem(client.post(LOGOUT, headers=_bearer(token)), 401)


def test_logout_needs_credentials(client, api_db):
    assert_problem(client.post(LOGOUT), 401)


def test_logout_is_for_login_sessions_not_api_keys(client, alice):
    token = _login_token(client)
    key = client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["requests:read"]}, headers=_bearer(token)
    ).json()["key"]
    reply = client.post(LOGOUT, headers={"X-API-Key": key})
    assert "login session" in assert_problem(reply, 403)["detail"]


def _down(api_db) -> TestClient:
    return TestClient(
        create_app(make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0"))
    )


def test_without_redis_login_and_logout_fail_closed(client, api_db, alice):
    token = _login_token(client)
    with _down(api_db) as down:
        logins = [
            down.post(LOGIN, data={"username": name, "password": PASSWORD})
            for name in ("alice", "nobody")
        ]
        logout = down.post(LOGOUT, headers=_bearer(token))

    bodies = [assert_problem(reply, 503) for reply in logins]
    assert bodies[0] == bodies[1]  # no hint whether the account exists
    assert all(r.headers["retry-after"] for r in logins)
    assert "logout" in assert_problem(logout, 503)["detail"]
    assert client.get(ME, headers=_bearer(token)).status_code == 200  # it was not revoked


def test_without_redis_an_unrevoked_token_still_works(client, api_db, alice):
    """The deny-list check fails open (logged): tokens are short-lived, and the API stays up."""
    token = _login_token(client)
    with _down(api_db) as down:
        reply = down.get("/api/v1/requests", headers=_bearer(token))
    assert reply.status_code == 200, reply.text
