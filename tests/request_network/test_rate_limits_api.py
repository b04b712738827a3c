"""Rate limits through the request API: headers, 429s, admin endpoints, Redis going away.

Real PostgreSQL and Redis (DB 15); the Redis-down tests start their own `redis-server`
and stop it (SIGTERM) in the middle of the test.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from request_api_helpers import VALID_QUERY, assert_problem, closed_port, make_settings
from sqlalchemy import func, select

from request_network.app import create_app
from request_network.models import AuditLog, RateLimitViolation, Request, User
from shared import breaker
from shared.db import transaction
from shared.ratelimit import keys_for
from tests.e2e.e2e_support import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SUBMIT = "/api/v1/requests"
ME = "/api/v1/rate-limits/me"
ADMIN = "/api/v1/admin/rate-limits"
BODY = {"profile_type": "articles", "query": VALID_QUERY}
PROFILE_LIMITS = {"minute": 30, "hour": 500, "day": 2000}  # what Seed.profile_type sets


@pytest.fixture
def people(seed, redis_client) -> Iterator[dict[str, str]]:
    """Alice and Bob (users) and Root (admin); their limiter keys are removed afterwards."""
    seed.profile_type()
    ids = {name: seed.user(name) for name in ("alice", "bob")}
    ids["root"] = seed.user("root", role="admin")
    yield ids
    for user_id in ids.values():
        redis_client.delete(*keys_for(user_id))


@pytest.fixture
def alice(people, login) -> dict[str, str]:
    return login("alice")


@pytest.fixture
def root(people, login) -> dict[str, str]:
    return login("root")


def set_user_limits(url: str, user_id: str, limits: dict | None) -> None:
    """What the users importer does when the authority sends per-user limits."""
    with transaction(url) as session:
        session.get(User, user_id).rate_limits = limits


def count(url: str, model, **where) -> int:
    with transaction(url) as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return session.execute(query).scalar_one()


RATELIMIT_HEADERS = ("ratelimit-policy", "ratelimit", "x-ratelimit-limit", "x-ratelimit-remaining")


# Headers on every reply of the limited endpoint --------------------------------------------


def test_an_accepted_submission_carries_every_rate_limit_header(client, alice):
    reply = client.post(SUBMIT, json=BODY, headers=alice)

    assert reply.status_code == 202, reply.text
    h = reply.headers
    assert h["ratelimit-policy"] == '"minute";q=30;w=60, "hour";q=500;w=3600, "day";q=2000;w=86400'
    items = h["ratelimit"].split(", ")
    assert [i.split(";")[0] for i in items] == ['"minute"', '"hour"', '"day"']
    assert items[0].split(";")[1] == "r=29"
    assert (h["x-ratelimit-limit"], h["x-ratelimit-remaining"], h["x-ratelimit-used"]) == (
        "30",
        "29",
        "1",
    )
    assert 0 < int(h["x-ratelimit-reset"]) <= 120
    assert "x-ratelimit-warning" not in h


def test_soft_then_grace_warnings_then_a_429_naming_the_window(client, alice, people, api_db):
    set_user_limits(api_db, people["alice"], {"minute": 10})
    replies = [client.post(SUBMIT, json=BODY, headers=alice) for _ in range(12)]

    assert [r.status_code for r in replies] == [202] * 11 + [429]
    warnings = [r.headers.get("x-ratelimit-warning") for r in replies[:11]]
    assert warnings == [None] * 8 + ["soft", "soft", "grace"]
    refused = replies[-1]
    body = assert_problem(refused, 429)
    assert body["violated_windows"] == ["minute"]
    assert "minute" in body["detail"]
    retry_after = int(refused.headers["retry-after"])
    assert retry_after == body["retry_after"] and retry_after > 0
    assert refused.headers["x-ratelimit-limit"] == "10"
    assert refused.headers["x-ratelimit-used"] == "11"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert "x-ratelimit-warning" not in refused.headers
    # the refused request was not stored, and its violation was
    assert count(api_db, Request, user_id=people["alice"]) == 11
    with transaction(api_db) as session:
        (v,) = session.execute(select(RateLimitViolation)).scalars().all()
        assert (v.user_id, v.window, v.count, v.limit, v.path) == (
            people["alice"],
            "minute",
            12,
            10,
            SUBMIT,
        )


def _used(client, headers) -> int:
    return client.get(ME, headers=headers).json()["windows"][0]["count"]


def test_a_schema_422_carries_the_headers_and_costs_no_quota(client, alice):
    client.post(SUBMIT, json=BODY, headers=alice)
    reply = client.post(SUBMIT, json={"profile_type": "articles"}, headers=alice)

    assert_problem(reply, 422)
    assert all(name in reply.headers for name in RATELIMIT_HEADERS)
    assert reply.headers["x-ratelimit-used"] == "1"
    assert "retry-after" not in reply.headers
    assert _used(client, alice) == 1


def test_a_query_422_carries_the_headers_and_costs_no_quota(client, alice):
    bad = {"profile_type": "articles", "query": {"query": {"match": {"field": "nope"}}}}
    reply = client.post(SUBMIT, json=bad, headers=alice)

    assert_problem(reply, 422)
    assert reply.headers["x-ratelimit-used"] == "0"
    assert reply.headers["ratelimit-policy"].startswith('"minute";q=30;w=60')
    assert _used(client, alice) == 0


def test_without_credentials_a_submission_is_401_and_charges_nobody(client, people):
    reply = client.post(SUBMIT, json=BODY)
    assert_problem(reply, 401)
    assert "ratelimit" not in reply.headers


def test_hundreds_of_parallel_submissions_never_exceed_the_allowance(client, alice, people, api_db):
    set_user_limits(api_db, people["alice"], {"minute": 1000, "hour": 50})
    with ThreadPoolExecutor(max_workers=32) as pool:
        codes = list(pool.map(lambda _: client.post(SUBMIT, json=BODY, headers=alice), range(200)))
    statuses = [r.status_code for r in codes]

    assert statuses.count(202) == 55  # floor(1.1 · 50): the hour's grace ceiling
    assert statuses.count(429) == 145
    assert count(api_db, Request, user_id=people["alice"]) == 55
    assert count(api_db, RateLimitViolation, window="hour") == 145


# A user's own standing -------------------------------------------------------------------


def test_me_shows_each_window_with_its_limit_source_and_count(client, alice, people, api_db):
    set_user_limits(api_db, people["alice"], {"minute": 5, "hour": None, "day": 100})
    client.post(SUBMIT, json=BODY, headers=alice)

    reply = client.get(ME, headers=alice)

    assert reply.status_code == 200
    body = reply.json()
    assert body["user_id"] == people["alice"] and body["state"] == "ok"
    windows = {w["window"]: w for w in body["windows"]}
    assert [(w["limit"], w["source"], w["count"]) for w in windows.values()] == [
        (5, "user", 1),
        (500, "profile_type", 1),
        (100, "user", 1),
    ]
    assert windows["minute"]["remaining"] == 4 and windows["minute"]["window_seconds"] == 60
    assert "override" not in body or body["override"] is None


def test_me_needs_credentials(client, people):
    assert_problem(client.get(ME), 401)


# Admin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ADMIN + "/{id}"),
        ("DELETE", ADMIN + "/{id}"),
        ("PUT", "/api/v1/admin/users/{id}/rate-limits"),
        ("GET", ADMIN + "/violations"),
    ],
)
def test_admin_endpoints_refuse_users_and_anonymous_callers(client, people, login, method, path):
    url = path.format(id=people["bob"])
    body = {"minute": 1, "reason": "test"} if method == "PUT" else None
    assert_problem(client.request(method, url, json=body, headers=login("alice")), 403)
    assert_problem(client.request(method, url, json=body), 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ADMIN + "/{id}"),
        ("DELETE", ADMIN + "/{id}"),
        ("PUT", "/api/v1/admin/users/{id}/rate-limits"),
    ],
)
def test_admin_endpoints_answer_404_for_an_unknown_user(client, root, method, path):
    body = {"minute": 1, "reason": "test"} if method == "PUT" else None
    assert_problem(client.request(method, path.format(id="nobody"), json=body, headers=root), 404)


def test_admin_reads_a_users_counters_state_and_limits(client, alice, root, people):
    for _ in range(3):
        client.post(SUBMIT, json=BODY, headers=alice)

    reply = client.get(f"{ADMIN}/{people['alice']}", headers=root)

    assert reply.status_code == 200
    windows = reply.json()["windows"]
    assert [(w["window"], w["limit"], w["count"], w["state"]) for w in windows] == [
        ("minute", 30, 3, "ok"),
        ("hour", 500, 3, "ok"),
        ("day", 2000, 3, "ok"),
    ]


def test_admin_reset_unblocks_a_user_and_is_audited(client, alice, root, people, api_db):
    set_user_limits(api_db, people["alice"], {"minute": 1})
    assert client.post(SUBMIT, json=BODY, headers=alice).status_code == 202
    assert client.post(SUBMIT, json=BODY, headers=alice).status_code == 429

    reply = client.delete(f"{ADMIN}/{people['alice']}", headers=root)

    assert reply.status_code == 204
    assert client.post(SUBMIT, json=BODY, headers=alice).status_code == 202
    with transaction(api_db) as session:
        row = session.execute(
            select(AuditLog).where(AuditLog.action == "rate_limits.reset")
        ).scalar_one()
        assert (row.actor, row.target) == (people["root"], people["alice"])


def test_custom_limits_take_precedence_and_are_audited_with_the_reason(
    client, alice, root, people, api_db
):
    set_user_limits(api_db, people["alice"], {"minute": 5, "hour": 50})
    url = f"/api/v1/admin/users/{people['alice']}/rate-limits"

    reply = client.put(url, json={"minute": 2, "reason": "noisy batch job"}, headers=root)

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [(w["limit"], w["source"]) for w in body["windows"]] == [
        (2, "override"),  # admin override beats the user's replicated limit
        (50, "user"),  # a null override keeps the user's replicated limit
        (2000, "profile_type"),  # which beats the profile type's
    ]
    assert body["override"]["reason"] == "noisy batch job"
    assert body["override"]["set_by"] == people["root"]
    codes = [client.post(SUBMIT, json=BODY, headers=alice).status_code for _ in range(3)]
    assert codes == [202, 202, 429]  # floor(1.1 · 2) = 2: no grace room
    with transaction(api_db) as session:
        row = session.execute(
            select(AuditLog).where(AuditLog.action == "rate_limits.set")
        ).scalar_one()
        assert row.actor == people["root"] and row.target == people["alice"]
        assert row.detail["reason"] == "noisy batch job"
        assert row.detail["after"] == {"minute": 2, "hour": None, "day": None}


def test_custom_limits_need_a_reason_and_sane_values(client, root, people):
    url = f"/api/v1/admin/users/{people['alice']}/rate-limits"
    assert_problem(client.put(url, json={"minute": 2}, headers=root), 422)
    assert_problem(client.put(url, json={"minute": 2, "reason": "  "}, headers=root), 422)
    assert_problem(client.put(url, json={"minute": -1, "reason": "x"}, headers=root), 422)


def test_violations_are_listed_with_filters_and_pages(client, root, people, login, api_db):
    for name in ("alice", "bob"):
        set_user_limits(api_db, people[name], {"minute": 1})
        headers = login(name)
        for _ in range(3 if name == "alice" else 2):
            client.post(SUBMIT, json=BODY, headers=headers)
    with transaction(api_db) as session:  # one old violation of Bob's, in the day window
        session.add(
            RateLimitViolation(
                user_id=people["bob"],
                window="day",
                count=3,
                limit=2,
                path=SUBMIT,
                at=datetime.now(UTC) - timedelta(days=2),
            )
        )

    def page(**params):
        reply = client.get(f"{ADMIN}/violations", params=params, headers=root)
        assert reply.status_code == 200, reply.text
        return reply.json()

    everything = page()
    assert everything["total"] == 4  # alice 2, bob 1 + 1 old
    assert page(user_id=people["alice"])["total"] == 2
    assert {v["user_id"] for v in page(user_id=people["alice"])["items"]} == {people["alice"]}
    assert page(window="day")["total"] == 1
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert page(since=yesterday)["total"] == 3
    assert page(until=yesterday)["total"] == 1
    first, second = page(limit=3), page(limit=3, offset=3)
    assert len(first["items"]) == 3 and len(second["items"]) == 1
    ids = [v["id"] for v in first["items"] + second["items"]]
    assert len(set(ids)) == 4
    assert first["items"][0]["window"] == "minute" and first["items"][0]["path"] == SUBMIT
    bad = client.get(f"{ADMIN}/violations", params={"window": "week"}, headers=root)
    assert_problem(bad, 422)


# Redis going away ------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[subprocess.Popen]:
    """A redis-server of this test's own, on a free port; the test may stop it."""
    if shutil.which("redis-server") is None:  # under CI a missing server is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("redis-server is not installed")
    port = closed_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    proc.port = port  # type: ignore[attr-defined]
    probe = redis.Redis(port=port)
    for _ in range(200):  # wait until it answers (readiness, not a timing assertion)
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.025)
    yield proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait()


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # SIGTERM
    proc.wait()


def _metric(decision: str) -> float:
    sample = REGISTRY.get_sample_value(
        "ferry_ratelimit_redis_unavailable_total", {"decision": decision}
    )
    return sample or 0.0


@pytest.mark.parametrize("fail_open", [False, True])
def test_without_redis_submissions_fail_per_the_setting_and_are_counted(
    api_db, people, own_redis, caplog, fail_open
):
    settings = make_settings(
        api_db, redis_url=f"redis://127.0.0.1:{own_redis.port}/0", rate_limit_fail_open=fail_open
    )
    with TestClient(create_app(settings)) as client:
        reply = client.post(
            "/api/v1/auth/login", data={"username": "alice", "password": "correct horse battery"}
        )
        headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}
        assert client.post(SUBMIT, json=BODY, headers=headers).status_code == 202
        assert client.get("/health").json()["status"] == "ok"

        _stop(own_redis)
        decision = "allowed" if fail_open else "refused"
        before = _metric(decision)
        with caplog.at_level(logging.ERROR, logger="ferry.ratelimit"):
            reply = client.post(SUBMIT, json=BODY, headers=headers)

        assert _metric(decision) == before + 1
        assert any("rate limiter unavailable" in r.getMessage() for r in caplog.records)
        assert decision in caplog.text
        if fail_open:
            assert reply.status_code == 202
            assert count(api_db, Request, user_id=people["alice"]) == 2
        else:
            body = assert_problem(reply, 503)
            assert int(reply.headers["retry-after"]) > 0
            assert "rate limiter" in body["title"].lower()
            assert count(api_db, Request, user_id=people["alice"]) == 1
        assert reply.headers["ratelimit-policy"].startswith('"minute";q=30;w=60')
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["checks"]["redis"] == "unavailable"
        assert_problem(client.get(ME, headers=headers), 503)  # the API stays up and says why


def test_the_redis_breaker_fails_submissions_fast_then_lets_them_through_again(
    api_db, people, own_redis
):
    settings = make_settings(
        api_db,
        redis_url=f"redis://127.0.0.1:{own_redis.port}/0",
        breaker_failures=2,
        breaker_cooldown_s=1.0,
    )
    guard = f"127.0.0.1:{own_redis.port}"  # this Redis server's breaker: redis@127.0.0.1:port
    with TestClient(create_app(settings)) as client:

        def login(name: str) -> dict[str, str]:
            reply = client.post(
                "/api/v1/auth/login", data={"username": name, "password": "correct horse battery"}
            )
            return {"Authorization": f"Bearer {reply.json()['access_token']}"}

        alice, root = login("alice"), login("root")
        assert client.post(SUBMIT, json=BODY, headers=alice).status_code == 202

        _stop(own_redis)
        for _ in range(5):  # each refused; the failures open the breaker
            reply = client.post(SUBMIT, json=BODY, headers=alice)
            assert_problem(reply, 503)
            if breaker.breaker("redis", guard).state == breaker.OPEN:
                break
        assert breaker.breaker("redis", guard).state == breaker.OPEN
        reply = client.post(SUBMIT, json=BODY, headers=alice)
        assert_problem(reply, 503)
        assert reply.headers["retry-after"] == "1"  # the cool-down left, rounded up
        health = client.get("/api/v1/admin/health", headers=root).json()
        (breakers,) = [c for c in health["components"] if c["name"] == "circuit_breakers"]
        assert breakers["status"] == "degraded" and f"redis@{guard} open" in breakers["reason"]
        assert breakers["details"]["breakers"][f"redis@{guard}"]["state"] == "open"

        restarted = subprocess.Popen(own_redis.args, stdout=subprocess.DEVNULL)
        try:
            wait_until(
                lambda: client.post(SUBMIT, json=BODY, headers=alice).status_code == 202,
                timeout=30,
                what="a submission accepted once Redis is back and the cool-down is over",
            )
            assert breaker.breaker("redis", guard).state == breaker.CLOSED
        finally:
            restarted.terminate()
            restarted.wait()
