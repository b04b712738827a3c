"""Per-user limits are bounded where they are written and survive where they are read.

The limiter takes no limit above `shared.ratelimit.MAX_LIMIT` (10,000,000); one above it
used to make every submission of that user a 500. Now:

- written: the admin API's schema (the bound is in the OpenAPI schema; anything else is a
  422 naming the field), the service behind it, the replicated `users` records, and a CHECK
  on `rate_limit_overrides` (migration 0008 brings older rows into range first);
- read: a stored value out of range anyway (an old row, a hand edit, a profile type) is
  clamped to the bound when too large and skipped when not a non-negative integer, with a
  logged warning, and the user's submission goes through.

Real PostgreSQL and Redis (DB 15); the migration tests also run on SQLite.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import VALID_QUERY, assert_problem, make_settings
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import IntegrityError

from request_network.app import create_app
from request_network.models import RateLimitOverride, User
from request_network.services import rate_limits
from shared.db import get_engine, transaction
from shared.migrate import downgrade, upgrade
from shared.problems import Problem
from shared.ratelimit import MAX_LIMIT, keys_for
from shared.records import validate_record
from tests.conftest import _fresh_database
from transfer.format import Record

SUBMIT = "/api/v1/requests"
BODY = {"profile_type": "articles", "query": VALID_QUERY}
PROFILE_LIMITS = {"minute": 30, "hour": 500, "day": 2000}  # what Seed.profile_type sets
CHECKS = [f"ck_rate_limit_overrides_{w}_in_range" for w in ("minute", "hour", "day")]


def _policy(reply) -> dict[str, int]:
    """{window: quota} from the RateLimit-Policy header."""
    out = {}
    for item in reply.headers["RateLimit-Policy"].split(", "):
        name, quota, _ = item.split(";")
        out[name.strip('"')] = int(quota.removeprefix("q="))
    return out


# The admin API and the service behind it (PostgreSQL, Redis) --------------------------------


@pytest.fixture
def people(seed, redis_client) -> Iterator[dict[str, str]]:
    seed.profile_type()
    ids = {"alice": seed.user("alice"), "root": seed.user("root", role="admin")}
    yield ids
    for user_id in ids.values():
        redis_client.delete(*keys_for(user_id))


@pytest.fixture
def docs_client(api_db) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(api_db, api_docs=True))) as test_client:
        yield test_client


@pytest.mark.postgres
@pytest.mark.redis
def test_the_bound_is_in_the_openapi_schema(docs_client):
    schema = docs_client.get("/openapi.json").json()["components"]["schemas"]["SetRateLimits"]
    for window in ("minute", "hour", "day"):
        (integer,) = [t for t in schema["properties"][window]["anyOf"] if t["type"] == "integer"]
        assert (integer["minimum"], integer["maximum"]) == (0, MAX_LIMIT)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("window", ["minute", "hour", "day"])
@pytest.mark.parametrize("value", [MAX_LIMIT + 1, 10**30, -1, "100", 1.5, True])
def test_an_override_out_of_range_is_a_422_naming_the_field(
    client, login, people, api_db, window, value
):
    root = login("root")
    url = f"/api/v1/admin/users/{people['alice']}/rate-limits"

    body = assert_problem(client.put(url, json={window: value, "reason": "x"}, headers=root), 422)

    assert f"body.{window}" in body["detail"]
    assert [e["loc"] for e in body["errors"]] == [f"body.{window}"]
    with transaction(api_db) as session:
        assert session.execute(select(func.count()).select_from(RateLimitOverride)).scalar() == 0


@pytest.mark.postgres
@pytest.mark.redis
def test_an_override_at_the_bound_is_taken_and_submissions_work(client, login, people):
    url = f"/api/v1/admin/users/{people['alice']}/rate-limits"
    reply = client.put(url, json={"day": MAX_LIMIT, "reason": "bulk"}, headers=login("root"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["windows"][2]["limit"] == MAX_LIMIT

    submitted = client.post(SUBMIT, json=BODY, headers=login("alice"))

    assert submitted.status_code == 202, submitted.text
    assert _policy(submitted) == {**PROFILE_LIMITS, "day": MAX_LIMIT}


@pytest.mark.postgres
@pytest.mark.redis
def test_the_service_refuses_an_out_of_range_override_from_any_caller(people, api_db):
    """The panel or a command calling the service directly gets the same refusal."""
    with transaction(api_db) as session:
        user = session.get(User, people["alice"])
        with pytest.raises(Problem) as refused:
            rate_limits.set_override(
                user,
                session=session,
                limits={"minute": 5, "hour": MAX_LIMIT + 1},
                reason="x",
                actor=people["root"],
            )
    assert refused.value.status == 422
    assert [e["loc"] for e in refused.value.errors] == ["body.hour"]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("value", [MAX_LIMIT + 1, -1])
def test_the_database_refuses_an_out_of_range_override(people, api_db, value):
    with pytest.raises(IntegrityError, match="in_range"), transaction(api_db) as session:
        session.add(
            RateLimitOverride(
                user_id=people["alice"], hour=value, reason="by hand", set_by=people["root"]
            )
        )
        session.flush()


# Stored out of range anyway: clamped or skipped when read -----------------------------------


def _set_user_limits(url: str, user_id: str, limits: dict) -> None:
    """What a hand edit (or an importer before the bound) leaves in `users.rate_limits`."""
    with transaction(url) as session:
        session.get(User, user_id).rate_limits = limits


@pytest.mark.postgres
@pytest.mark.redis
def test_a_stored_user_limit_out_of_range_is_clamped_or_skipped(
    client, login, people, api_db, caplog
):
    _set_user_limits(api_db, people["alice"], {"minute": 20_000_000, "hour": -3, "day": "lots"})
    alice = login("alice")

    with caplog.at_level(logging.WARNING, logger="ferry.ratelimit"):
        replies = [client.post(SUBMIT, json=BODY, headers=alice) for _ in range(2)]

    assert [r.status_code for r in replies] == [202, 202], replies[-1].text
    # too large: the bound; not a non-negative integer: the profile type's limit
    assert _policy(replies[0]) == {"minute": MAX_LIMIT, "hour": 500, "day": 2000}
    me = client.get("/api/v1/rate-limits/me", headers=alice).json()
    assert [(w["limit"], w["source"]) for w in me["windows"]] == [
        (MAX_LIMIT, "user"),
        (500, "profile_type"),
        (2000, "profile_type"),
    ]
    warned = [r.getMessage() for r in caplog.records if people["alice"] in r.getMessage()]
    assert len(warned) == 3  # once per stored value, not once per submission
    assert any("20000000" in m and f"clamped to {MAX_LIMIT}" in m for m in warned)
    assert any("-3" in m and "ignored" in m for m in warned)
    assert any("'lots'" in m and "ignored" in m for m in warned)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_profile_type_limit_above_the_bound_is_clamped(client, seed, login, redis_client):
    seed.profile_type(rate_limits={"minute": 99_999_999, "hour": 500, "day": 2**40})
    user_id = seed.user("dora")
    try:
        reply = client.post(SUBMIT, json=BODY, headers=login("dora"))
        assert reply.status_code == 202, reply.text
        assert _policy(reply) == {"minute": MAX_LIMIT, "hour": 500, "day": MAX_LIMIT}
    finally:
        redis_client.delete(*keys_for(user_id))


@pytest.fixture
def legacy_override(people, api_db) -> Iterator[str]:
    """An override row above the bound, as one written before migration 0008 would be (the
    CHECKs are dropped for the test and put back after)."""
    engine = get_engine(api_db)
    with engine.begin() as conn:
        for name in CHECKS:
            conn.execute(text(f"ALTER TABLE rate_limit_overrides DROP CONSTRAINT {name}"))
        conn.execute(
            text(
                "INSERT INTO rate_limit_overrides (user_id, minute, hour, day, reason, set_by,"
                " set_at) VALUES (:u, :big, -7, NULL, 'legacy', :root, now())"
            ),
            {"u": people["alice"], "big": 2_000_000_000, "root": people["root"]},
        )
    try:
        yield people["alice"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM rate_limit_overrides"))
            for name, window in zip(CHECKS, ("minute", "hour", "day"), strict=True):
                conn.execute(
                    text(
                        f"ALTER TABLE rate_limit_overrides ADD CONSTRAINT {name} CHECK "
                        f'("{window}" IS NULL OR ("{window}" >= 0 AND "{window}" <= {MAX_LIMIT}))'
                    )
                )


@pytest.mark.postgres
@pytest.mark.redis
def test_a_legacy_override_above_the_bound_is_clamped_and_submissions_work(
    client, login, people, legacy_override
):
    alice = login("alice")

    reply = client.post(SUBMIT, json=BODY, headers=alice)

    assert reply.status_code == 202, reply.text
    assert _policy(reply) == {"minute": MAX_LIMIT, "hour": 500, "day": 2000}
    status = client.get(f"/api/v1/admin/rate-limits/{legacy_override}", headers=login("root"))
    assert status.status_code == 200, status.text
    assert [(w["limit"], w["source"]) for w in status.json()["windows"]] == [
        (MAX_LIMIT, "override"),
        (500, "profile_type"),  # a negative override is skipped: the next layer decides
        (2000, "profile_type"),
    ]
    assert status.json()["override"]["minute"] == 2_000_000_000  # shown as stored


# Replicated users records ----------------------------------------------------------------


def _user_record(rate_limits: dict) -> Record:
    data = {
        "username": "erin",
        "password_hash": "$2b$04$" + "a" * 53,
        "role": "user",
        "profile_type": "articles",
        "active": True,
        "rate_limits": rate_limits,
    }
    return Record(type="user", id="u-1", version=1, data=data)


@pytest.mark.parametrize("value", [MAX_LIMIT + 1, -1, "5", 2.0, True])
def test_a_users_record_with_a_limit_out_of_range_is_refused(value):
    problems = validate_record("users", _user_record({"hour": value}))
    assert problems and all("data.rate_limits.hour" in p for p in problems), problems


def test_a_users_record_with_a_limit_at_the_bound_is_taken():
    assert validate_record("users", _user_record({"minute": 0, "day": MAX_LIMIT})) == []


# Migration 0008 ----------------------------------------------------------------------------


def _migration_brings_old_rows_into_range(url: str) -> None:
    upgrade("request", url, "0007")
    engine = create_engine(url)
    insert_override = text(
        "INSERT INTO rate_limit_overrides (user_id, minute, hour, day, reason, set_by, set_at)"
        " VALUES (:u, :minute, :hour, :day, 'r', 'admin', '2026-01-01')"
    )
    try:
        with engine.begin() as conn:
            for user in ("big", "low", "fine"):
                conn.execute(
                    text(
                        "INSERT INTO users (id, username, password_hash, role, profile_type,"
                        " active, version, updated_at, synced_at) VALUES (:u, :u, 'x', 'user',"
                        " 'articles', true, 1, '2026-01-01', '2026-01-01')"
                    ),
                    {"u": user},
                )
            for user, minute, hour, day in (
                ("big", 2_000_000_000, MAX_LIMIT + 1, 5),
                ("low", -1, None, -50),
                ("fine", 0, MAX_LIMIT, None),
            ):
                conn.execute(
                    insert_override, {"u": user, "minute": minute, "hour": hour, "day": day}
                )
        upgrade("request", url)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT user_id, minute, hour, day FROM rate_limit_overrides ORDER BY 1")
            ).all()
        assert [tuple(r) for r in rows] == [
            ("big", MAX_LIMIT, MAX_LIMIT, 5),
            ("fine", 0, MAX_LIMIT, None),
            ("low", None, None, None),
        ]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE rate_limit_overrides SET day = :v"), {"v": MAX_LIMIT + 1})
        downgrade("request", url, "0007")
        with engine.begin() as conn:  # the checks are gone again
            conn.execute(text("UPDATE rate_limit_overrides SET day = :v"), {"v": MAX_LIMIT + 1})
    finally:
        engine.dispose()


def test_sqlite_migration_0008_brings_old_rows_into_range(tmp_path):
    _migration_brings_old_rows_into_range(f"sqlite:///{tmp_path}/request.db")


@pytest.mark.postgres
def test_postgres_migration_0008_brings_old_rows_into_range():
    suffix = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _migration_brings_old_rows_into_range(_fresh_database(f"ferry_test_limit_bounds_{suffix}"))
