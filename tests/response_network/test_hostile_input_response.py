"""Every parameter of every response-API route, sent hostile values (NUL and other control
characters, 10,000 characters, numbers past 64 bits, non-UUIDs, invalid UTF-8 in the path,
`../`, long file names) with a valid token of each role, and hostile credentials on every
protected route: never a 5xx, and every refusal a problem+json. The calls come from the
app's own OpenAPI schema, so a route added later is covered without editing this file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hostile_values import (
    credential_failures,
    hostile_calls,
    hostile_failures,
    operations_with_inputs,
)
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
    with_inputs = operations_with_inputs(_schema())
    assert with_inputs and routes == with_inputs
    assert len(CALLS) > 200


@pytest.mark.parametrize("role", ROLES)
def test_hostile_parameters_never_reach_a_500(walker, tokens, role):
    failures = hostile_failures(walker[0], CALLS, tokens[role])
    assert not failures, "\n".join(failures[:40])


def test_hostile_credentials_are_a_401(walker):
    """A bearer token made of hostile text is refused, never a 500."""
    failures = credential_failures(
        walker[0], _schema(), lambda value: ({"Authorization": f"Bearer {value}"},)
    )
    assert not failures, "\n".join(failures[:40])
