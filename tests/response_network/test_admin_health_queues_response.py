"""The response network's detailed health (the search cluster and every profile type's index
too), queue view, run-now, task state, purge, `system_monitoring` and `/metrics`, against
real PostgreSQL, Redis and an OpenSearch-compatible server (osmem-server). No worker
consumes the broker here (a private Redis database): tasks wait in the queue, and the
workers are down. The request network's tests run a real worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from response_api_helpers import (
    JWT_SECRET,
    add_user,
    assert_problem,
    empty_response_db,
    make_settings,
)
from sqlalchemy import select

from response_network import jobs
from response_network.app import create_app
from response_network.models import AuditLog, ProfileType
from response_network.services import health
from response_network.services.search import SearchBackend, make_client
from shared.db import transaction
from shared.security.tokens import issue_token
from tests.ops_support import flush, samples, silent_port
from transfer.protocol.config import make_transfer_dirs

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BROKER = "redis://127.0.0.1:6379/8"  # nobody consumes it
QUEUE = "ferry.response"
SEARCHES = "ferry_search_duration_seconds_count"
ADMIN_ROUTES = [
    ("GET", "/api/v1/admin/health"),
    ("GET", "/api/v1/admin/queues"),
    ("POST", f"/api/v1/admin/queues/{QUEUE}/purge?confirm={QUEUE}"),
    ("POST", "/api/v1/admin/tasks/system_monitoring/run"),
    ("GET", f"/api/v1/admin/tasks/{uuid.uuid4()}"),
    ("GET", "/api/v1/admin/requests"),
    ("GET", f"/api/v1/admin/requests/{uuid.uuid4()}"),
    ("POST", f"/api/v1/admin/requests/{uuid.uuid4()}/retry"),
    ("GET", "/api/v1/admin/executions"),
    ("GET", "/api/v1/admin/stats"),
    ("GET", "/api/v1/admin/settings"),
    ("PUT", "/api/v1/admin/settings"),
    ("POST", "/api/v1/admin/snapshot"),
    ("GET", "/api/v1/admin/alerts"),
    ("POST", "/api/v1/admin/alerts/1/ack"),
]


@pytest.fixture
def rs_db(pg_urls) -> Iterator[str]:
    url = pg_urls["response"]
    empty_response_db(url)
    flush(BROKER)
    yield url
    empty_response_db(url)
    flush(BROKER)


def _client(rs_db: str, tmp_path, search_url: str) -> TestClient:
    settings = make_settings(
        rs_db,
        broker_url=BROKER,
        transfer_dir=tmp_path / "transfer",
        elasticsearch_url=search_url,
        compat_headers=False,
        health_probe_timeout_s=1.0,
    )
    make_transfer_dirs(settings)
    return TestClient(create_app(settings))


@pytest.fixture
def client(rs_db, tmp_path, osmem_clone) -> Iterator[TestClient]:
    with _client(rs_db, tmp_path, osmem_clone.url) as client:
        yield client


def _bearer(rs_db: str, role: str) -> dict[str, str]:
    """A committed user of `role` and a bearer header for it (a token as login issues it)."""
    token, _ = issue_token(
        subject=add_user(rs_db, f"the-{role}", role=role),
        role=role,
        secret=JWT_SECRET,
        issuer="ferry",
        audience="ferry-api",
        minutes=5,
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(rs_db) -> dict[str, dict[str, str]]:
    """Bearer headers of an admin, an operator and a plain user."""
    return {role: _bearer(rs_db, role) for role in ("admin", "operator", "user")}


def _profile_type(url: str, name: str = "articles") -> None:
    with transaction(url) as session:
        session.add(
            ProfileType(
                name=name,
                index=name,
                fields={"title": "text"},
                return_fields=["title"],
                max_size=10,
                rate_limits={"minute": 10, "hour": 100, "day": 1000},
                version=1,
            )
        )


def _health(client, headers) -> dict[str, dict]:
    reply = client.get("/api/v1/admin/health", headers=headers)
    assert reply.status_code == 200, reply.text
    return {c["name"]: c for c in reply.json()["components"]} | {"": reply.json()}


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_anyone_but_admins(client, people, method, path):
    assert_problem(client.request(method, path), 401)
    for role in ("user", "operator"):
        assert_problem(client.request(method, path, headers=people[role]), 403)


def test_metrics_need_an_operator(client, people):
    assert_problem(client.get("/metrics"), 401)
    assert_problem(client.get("/metrics", headers=people["user"]), 403)
    reply = client.get("/metrics", headers=people["operator"])
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")


def test_a_missing_index_is_down_until_it_exists(client, people, rs_db, osmem_clone):
    _profile_type(rs_db)
    components = _health(client, people["admin"])
    assert components["search"]["status"] == "ok"
    assert components["search"]["details"]["cluster_status"] == "green"
    assert components["indices"]["status"] == "down"
    assert components["indices"]["reason"] == "missing index: articles (profile type articles)"
    assert components["workers"]["status"] == "down"  # nobody consumes this broker
    assert components["database"]["status"] == "ok"

    with make_client(osmem_clone.url, compat_headers=False) as search:
        search.indices.create(index="articles")
    components = _health(client, people["admin"])
    assert components["indices"]["status"] == "ok"
    assert components["indices"]["details"]["indices"] == {"articles": True}


def test_a_search_cluster_that_hangs_is_timed_out_alone(rs_db, tmp_path):
    """The cluster accepts connections and never answers: the reply names the search
    probes as timed out; the database, Redis and the broker answered on their own."""
    _profile_type(rs_db)
    admin = _bearer(rs_db, "admin")
    with silent_port() as port, _client(rs_db, tmp_path, f"http://127.0.0.1:{port}") as client:
        components = _health(client, admin)
    for name in ("search", "indices"):
        assert components[name]["status"] == "down" and components[name]["timed_out"]
        assert components[name]["reason"] == "no answer within 1 s"
    for name in ("database", "redis", "broker"):
        assert components[name]["status"] == "ok" and not components[name]["timed_out"]


def test_run_now_waits_in_the_queue_then_purge_empties_it(client, people, rs_db, osmem_clone):
    admin = people["admin"]
    sent = client.post("/api/v1/admin/tasks/system_monitoring/run", headers=admin)
    assert sent.status_code == 202, sent.text
    assert sent.json()["task"] == "response.system_monitoring"
    assert sent.json()["queue"] == QUEUE
    view = client.get("/api/v1/admin/queues", headers=admin).json()
    assert view["network"] == "response"
    assert view["queues"] == [{"name": QUEUE, "depth": 1, "error": None}]
    assert view["workers"] == [] and view["workers_note"] == "no worker answered within 1 s"
    entries = {e["entry"]: e for e in view["schedule"]}
    assert entries["system_monitoring"]["schedule"] == "every 120 s"
    assert entries["system_monitoring"]["last_run_at"] is None

    state = client.get(f"/api/v1/admin/tasks/{sent.json()['task_id']}", headers=admin).json()
    assert state["state"] == "PENDING" and state["run"] is None

    # Search latency is measured where the searches run (this process, here).
    with SearchBackend(make_client(osmem_clone.url, compat_headers=False)) as backend:
        before = samples(client.get("/metrics", headers=people["operator"]).text, SEARCHES)
        backend.run_many([("articles", {"query": {"match_all": {}}})])
    scraped = client.get("/metrics", headers=people["operator"]).text
    assert samples(scraped, "ferry_queue_depth") == {(("queue", QUEUE),): 1.0}
    searched = samples(scraped, SEARCHES)
    assert sum(searched.values()) == sum(before.values()) + 1

    purge = f"/api/v1/admin/queues/{QUEUE}/purge"
    assert_problem(client.post(purge, params={"confirm": "nope"}, headers=admin), 409)
    purged = client.post(purge, params={"confirm": QUEUE}, headers=admin)
    assert purged.status_code == 200 and purged.json() == {"queue": QUEUE, "purged": 1}
    with transaction(rs_db) as session:
        actions = session.execute(select(AuditLog.action, AuditLog.target)).all()
    assert ("task.run_now", "response.system_monitoring") in actions
    assert ("queue.purged", QUEUE) in actions


def test_system_monitoring_samples_the_search_side_too(rs_db, tmp_path, osmem_clone):
    _profile_type(rs_db)
    settings = make_settings(
        rs_db,
        broker_url=BROKER,
        transfer_dir=tmp_path / "transfer",
        elasticsearch_url=osmem_clone.url,
        compat_headers=False,
        health_probe_timeout_s=1.0,
    )
    make_transfer_dirs(settings)
    report = jobs.system_monitoring(settings)
    assert {"indices", "workers"} <= set(report["newly_down"])
    with transaction(rs_db) as session:
        since = health.components_down_since(session=session)
    assert {"indices", "workers"} <= set(since)
