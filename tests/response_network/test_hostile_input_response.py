"""Every parameter of every response-API route, sent hostile values (NUL and other control
characters, 10,000 characters, numbers past 64 bits, non-UUIDs, invalid UTF-8 in the path,
`../`, long file names) with a valid token of each role, and hostile credentials on every
protected route: never a 5xx, and every refusal a problem+json. The calls come from the
app's own OpenAPI schema, so a route added later is covered without editing this file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hostile_values import HOSTILE_STRINGS, check_reply, hostile_calls
from response_api_helpers import JWT_SECRET, add_user, empty_response_db, make_settings

from response_network.app import create_app
from shared.security.tokens import issue_token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROLES = ("user", "operator", "admin")


def _schema() -> dict:
    return create_app(make_settings("postgresql+psycopg://postgres@127.0.0.1/unused")).openapi()


CALLS = list(hostile_calls(_schema()))


@pytest.fixture(scope="module")
def walker(pg_urls, tmp_path_factory):
    settings = make_settings(
        pg_urls["response"],
        transfer_dir=tmp_path_factory.mktemp("transfer"),
        login_attempts_per_minute_per_ip=100_000,
        login_attempts_per_minute_per_account=100_000,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, settings


@pytest.fixture(scope="module")
def tokens(walker, pg_urls) -> Iterator[dict[str, dict[str, str]]]:
    _, settings = walker
    empty_response_db(pg_urls["response"])
    headers = {}
    for role in ROLES:
        user_id = add_user(pg_urls["response"], f"hostile-{role}", role=role)
        token, _ = issue_token(
            subject=user_id,
            role=role,
            secret=JWT_SECRET,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            minutes=30,
        )
        headers[role] = {"Authorization": f"Bearer {token}"}
    yield headers
    empty_response_db(pg_urls["response"])


def test_the_walk_covers_every_route():
    routes = {(c.method, c.path) for c in CALLS}
    paths = _schema()["paths"]
    with_inputs = {
        (m.upper(), p)
        for p, ops in paths.items()
        for m, op in ops.items()
        if op.get("parameters") or op.get("requestBody")
    }
    assert with_inputs and routes == with_inputs
    assert len(CALLS) > 200


@pytest.mark.parametrize("role", ROLES)
def test_hostile_parameters_never_reach_a_500(walker, tokens, role):
    client, _ = walker
    failures = [f for call in CALLS if (f := check_reply(call, call.send(client, tokens[role])))]
    assert not failures, "\n".join(failures[:40])


def test_hostile_credentials_are_a_401(walker):
    """A bearer token or API key made of hostile text is refused, never a 500."""
    client, _ = walker
    schema = _schema()
    protected = [
        (m.upper(), p)
        for p, ops in schema["paths"].items()
        for m, op in ops.items()
        if op.get("security")
    ]
    failures = []
    for method, path in protected:
        url = path.replace("{", "").replace("}", "")
        for value in HOSTILE_STRINGS + ["ferry_live_" + "a" * 500, "Bearer", "x.y.z"]:
            if not (value.isascii() and value.isprintable()):
                continue  # not sendable as a header
            for header in ({"Authorization": f"Bearer {value}"},):
                reply = client.request(method, url, headers=header)
                if reply.status_code != 401:
                    failures.append(f"{method} {path} {header}: {reply.status_code}")
    assert not failures, "\n".join(failures[:40])
