"""Login and bearer-token checks of the request API (DESIGN.md §4), on real PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
import uuid

import bcrypt
import pytest
from fastapi.testclient import TestClient
from jose import jwt
from request_api_helpers import JWT_SECRET, PASSWORD, assert_problem

from request_network.app import create_app
from shared.security.tokens import decode_token

pytestmark = pytest.mark.postgres

LOGIN = "/api/v1/auth/login"
PROTECTED = [
    ("GET", "/api/v1/requests"),
    ("POST", "/api/v1/requests"),
    ("GET", f"/api/v1/requests/{uuid.UUID(int=1)}"),
    ("GET", f"/api/v1/requests/{uuid.UUID(int=1)}/response"),
]


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
    return claims


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def alice(seed) -> str:
    seed.profile_type()
    return seed.user("alice")


# Login ----------------------------------------------------------------------------------


def test_good_login_returns_a_bearer_jwt_for_the_user(client, settings, alice):
    reply = client.post(LOGIN, data={"username": "alice", "password": PASSWORD})

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "bearer"
    claims = decode_token(
        body["access_token"],
        secret=JWT_SECRET,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    assert claims.sub == alice
    assert claims.role == "user"
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


def test_the_issued_token_opens_protected_endpoints(client, alice):
    token = client.post(LOGIN, data={"username": "alice", "password": PASSWORD}).json()
    reply = client.get("/api/v1/requests", headers=_bearer(token["access_token"]))
    assert reply.status_code == 200, reply.text


def test_wrong_password_and_unknown_user_get_identical_401s(client, alice):
    wrong = client.post(LOGIN, data={"username": "alice", "password": "not the password"})
    unknown = client.post(LOGIN, data={"username": "mallory", "password": "not the password"})

    body = assert_problem(wrong, 401)
    assert assert_problem(unknown, 401) == body
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"
    assert "alice" not in json.dumps(body)


def test_password_is_checked_exactly_not_by_prefix(client, alice):
    reply = client.post(LOGIN, data={"username": "alice", "password": PASSWORD[:-1]})
    assert_problem(reply, 401)


def test_inactive_user_cannot_log_in_and_gets_the_same_401(client, seed):
    seed.profile_type()
    seed.user("sleeper", active=False)

    inactive = client.post(LOGIN, data={"username": "sleeper", "password": PASSWORD})
    unknown = client.post(LOGIN, data={"username": "nobody", "password": PASSWORD})

    assert assert_problem(inactive, 401) == assert_problem(unknown, 401)


def test_unknown_user_login_does_the_same_bcrypt_work_as_a_known_user(
    client, settings, alice, monkeypatch
):
    """No username oracle: the dummy check must cost what a real one costs here.

    Users' hashes are made with the configured `bcrypt_rounds` (4 in these tests); a login
    for an unknown user must spend bcrypt work of the same cost, whatever that setting is.
    """
    costs: list[int] = []
    real_hashpw = bcrypt.hashpw

    def spy(secret: bytes, salt: bytes) -> bytes:
        costs.append(int(salt.split(b"$")[2]))
        return real_hashpw(secret, salt)

    monkeypatch.setattr(bcrypt, "hashpw", spy)
    client.post(LOGIN, data={"username": "alice", "password": "wrong guess"})
    known = costs[:]
    costs.clear()
    client.post(LOGIN, data={"username": "nobody", "password": "wrong guess"})

    assert known == [settings.bcrypt_rounds]
    assert costs and costs[-1] == known[-1]


@pytest.mark.parametrize(
    "password",
    ["a" * 73, "é" * 37],  # 73 bytes; 74 bytes in only 37 characters
    ids=["73-ascii-bytes", "74-bytes-in-37-chars"],
)
def test_password_over_72_bytes_is_a_422_naming_the_field(client, alice, password):
    reply = client.post(LOGIN, data={"username": "alice", "password": password})

    body = assert_problem(reply, 422)
    assert "password" in body["detail"]
    assert any(e["loc"] == "body.password" for e in body["errors"])


def test_password_of_exactly_72_bytes_is_accepted(client, seed):
    seed.profile_type()
    seed.user("long", password="p" * 72)
    reply = client.post(LOGIN, data={"username": "long", "password": "p" * 72})
    assert reply.status_code == 200, reply.text


def test_login_without_password_is_a_422_naming_the_field(client, alice):
    reply = client.post(LOGIN, data={"username": "alice"})
    body = assert_problem(reply, 422)
    assert [e["loc"] for e in body["errors"]] == ["body.password"]


# Bearer tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_endpoints_without_a_token_are_401_problems(client, api_db, method, path):
    reply = client.request(method, path, json={})
    assert_problem(reply, 401)
    assert reply.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Bearer a.b.c", "Bearer ", "Basic YWxpY2U6cGFzc3dvcmQ="],
    ids=["garbage", "three-garbage-parts", "empty", "basic-auth"],
)
def test_garbage_credentials_are_401_problems(client, alice, authorization):
    reply = client.get("/api/v1/requests", headers={"Authorization": authorization})
    assert_problem(reply, 401)


def test_expired_token_is_a_401_problem(client, settings, alice):
    past = int(time.time()) - 3600
    token = jwt.encode(
        _claims(settings, alice, iat=past - 900, exp=past), JWT_SECRET, algorithm="HS256"
    )
    assert_problem(client.get("/api/v1/requests", headers=_bearer(token)), 401)


def test_token_signed_with_another_secret_is_a_401_problem(client, settings, alice):
    token = jwt.encode(_claims(settings, alice), "another-secret-" + "x" * 32, algorithm="HS256")
    assert_problem(client.get("/api/v1/requests", headers=_bearer(token)), 401)


def test_unsigned_alg_none_token_is_a_401_problem(client, settings, alice):
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings, alice))}."
    assert_problem(client.get("/api/v1/requests", headers=_bearer(token)), 401)


def test_token_with_another_algorithm_is_a_401_problem(client, settings, alice):
    token = jwt.encode(_claims(settings, alice), JWT_SECRET, algorithm="HS512")
    assert_problem(client.get("/api/v1/requests", headers=_bearer(token)), 401)


@pytest.mark.parametrize("claim", ["aud", "iss"])
def test_token_for_another_audience_or_issuer_is_a_401_problem(client, settings, alice, claim):
    token = jwt.encode(_claims(settings, alice, **{claim: "elsewhere"}), JWT_SECRET)
    assert_problem(client.get("/api/v1/requests", headers=_bearer(token)), 401)


def test_token_with_a_tampered_payload_is_a_401_problem(client, settings, login, alice):
    header, _payload, signature = login("alice")["Authorization"].split()[1].split(".")
    forged = f"{header}.{_b64(_claims(settings, alice, role='admin'))}.{signature}"
    assert_problem(client.get("/api/v1/requests", headers=_bearer(forged)), 401)


def test_token_for_a_user_that_does_not_exist_is_a_401_problem(client, settings, alice):
    token = jwt.encode(_claims(settings, str(uuid.uuid4())), JWT_SECRET)
    assert_problem(client.get("/api/v1/requests", headers=_bearer(token)), 401)


def test_token_of_a_user_deactivated_since_login_stops_working(client, seed, login, alice):
    headers = login("alice")
    assert client.get("/api/v1/requests", headers=headers).status_code == 200

    seed.set_active(alice, False)

    assert_problem(client.get("/api/v1/requests", headers=headers), 401)


def test_validly_signed_token_with_a_non_integer_exp_is_a_401_not_a_crash(settings, alice):
    """A string `exp` passes python-jose's check (it casts with int()), then must not 500."""
    token = jwt.encode(_claims(settings, alice, exp=str(int(time.time()) + 600)), JWT_SECRET)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        reply = client.get("/api/v1/requests", headers=_bearer(token))
    assert_problem(reply, 401)
