"""The request network's detailed health, queue view, run-now, task state, purge and
`system_monitoring`, against real PostgreSQL, Redis and a real Celery worker.

A worker (`ferry request worker`) consumes a private Redis database; tests that need no
worker (queue depth, purge) use another private database nobody consumes. Who may call each
route (admins only: a user gets 403, no credential 401) is checked by test_route_access.py.
"""

from __future__ import annotations

import pytest
import redis
from request_api_helpers import TEST_REDIS_URL, assert_problem, make_settings
from sqlalchemy import select, text

from request_network import jobs
from request_network.models import AuditLog, HealthSample
from request_network.services import health
from shared.celery_control import control_app
from shared.db import get_engine, transaction
from shared.health_probes import code_heads
from tests.e2e.e2e_support import wait_until
from tests.ops_support import Worker, flush, samples, worker_env
from transfer.protocol.config import make_transfer_dirs
from transfer.protocol.quarantine import quarantine

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

WORKER_BROKER = "redis://127.0.0.1:6379/7"  # the module's worker consumes this one
IDLE_BROKER = "redis://127.0.0.1:6379/6"  # nobody consumes this one
QUEUE = "ferry.request"
COMPONENTS = {"database", "redis", "broker", "workers", "beat", "transfer_dirs", "transfer"}


@pytest.fixture(scope="module")
def transfer_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("transfer")


@pytest.fixture(scope="module", autouse=True)
def worker(pg_urls, transfer_dir, tmp_path_factory):
    """Started with the module (its start-up overlaps the tests that need no worker)."""
    for url in (WORKER_BROKER, IDLE_BROKER):
        flush(url)
    env = worker_env(
        "request",
        database_url=pg_urls["request"],
        redis_url=TEST_REDIS_URL,
        broker_url=WORKER_BROKER,
        transfer_dir=transfer_dir,
    )
    process = Worker("request", env, WORKER_BROKER, tmp_path_factory.mktemp("worker"))
    process.start()
    yield process
    process.stop()
    for url in (WORKER_BROKER, IDLE_BROKER):
        flush(url)


@pytest.fixture
def broker_url() -> str:
    return WORKER_BROKER


@pytest.fixture
def settings(api_db, broker_url, transfer_dir):
    """The API's settings (overrides conftest's): the broker of the test, a transfer
    directory, and one-second probes."""
    settings = make_settings(
        api_db, broker_url=broker_url, transfer_dir=transfer_dir, health_probe_timeout_s=1.0
    )
    make_transfer_dirs(settings)
    return settings


@pytest.fixture
def admin(seed, login) -> dict[str, str]:
    seed.profile_type()
    seed.user("ada", role="admin")
    return login("ada")


def _health(client, admin) -> dict[str, dict]:
    reply = client.get("/api/v1/admin/health", headers=admin)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["version"] and body["checked_at"]
    return {c["name"]: c for c in body["components"]} | {"": body}


def _audit(url: str, action: str) -> list[AuditLog]:
    with transaction(url) as session:
        return list(session.execute(select(AuditLog).where(AuditLog.action == action)).scalars())


def test_a_slow_database_is_down_and_does_not_hold_the_others(client, admin, settings):
    """The migration table is locked by another transaction, so the database probe hangs:
    the reply still comes, naming the database as timed out, with every other component
    answered on its own."""
    with get_engine(settings.database_url).connect() as locker:
        locker.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
        components = _health(client, admin)
        locker.rollback()
    database = components["database"]
    assert database["status"] == "down" and database["timed_out"] is True
    assert database["reason"] == "no answer within 1 s"
    assert components[""]["status"] == "down"
    for name in ("redis", "broker", "transfer_dirs", "quarantine"):
        assert components[name]["timed_out"] is False, components[name]
    assert components["redis"]["status"] == "ok" and components["broker"]["status"] == "ok"


@pytest.mark.parametrize("broker_url", [IDLE_BROKER])
def test_queue_depth_moves_and_purge_needs_its_name_again(client, admin, settings, api_db):
    view = client.get("/api/v1/admin/queues", headers=admin)
    assert view.status_code == 200, view.text
    assert view.json()["queues"] == [{"name": QUEUE, "depth": 0, "error": None}]
    assert view.json()["workers"] == []
    assert view.json()["workers_note"] == "no worker answered within 1 s"  # an answer

    sent = [client.post("/api/v1/admin/tasks/flag_unacked/run", headers=admin) for _ in (1, 2)]
    for reply in sent:
        assert reply.status_code == 202, reply.text
        assert reply.json()["task"] == "request.flag_unacked"
        assert reply.headers["location"] == f"/api/v1/admin/tasks/{reply.json()['task_id']}"
    # One more with a priority: Celery keeps it in the queue's priority list on Redis.
    control_app(IDLE_BROKER, 1.0).send_task("request.flag_unacked", queue=QUEUE, priority=6)
    with redis.Redis.from_url(IDLE_BROKER) as broker:
        assert broker.llen(f"{QUEUE}\x06\x166") == 1 and broker.llen(QUEUE) == 2

    view = client.get("/api/v1/admin/queues", headers=admin).json()
    assert view["queues"] == [{"name": QUEUE, "depth": 3, "error": None}]
    scraped = client.get("/metrics", headers=admin).text
    assert samples(scraped, "ferry_queue_depth") == {(("queue", QUEUE),): 3.0}

    waiting = client.get(f"/api/v1/admin/tasks/{sent[0].json()['task_id']}", headers=admin)
    assert waiting.status_code == 200
    assert waiting.json()["state"] == "PENDING" and waiting.json()["run"] is None

    purge = f"/api/v1/admin/queues/{QUEUE}/purge"
    assert_problem(client.post(purge, headers=admin), 422)
    refused = assert_problem(client.post(purge, params={"confirm": "ferry"}, headers=admin), 409)
    assert f"confirm={QUEUE}" in refused["detail"]
    other = "/api/v1/admin/queues/other/purge"
    assert_problem(client.post(other, params={"confirm": "other"}, headers=admin), 404)
    assert client.get("/api/v1/admin/queues", headers=admin).json()["queues"][0]["depth"] == 3

    purged = client.post(purge, params={"confirm": QUEUE}, headers=admin)
    assert purged.status_code == 200, purged.text
    assert purged.json() == {"queue": QUEUE, "purged": 3}
    assert client.get("/api/v1/admin/queues", headers=admin).json()["queues"][0]["depth"] == 0

    [row] = _audit(api_db, "queue.purged")
    assert row.target == QUEUE and row.detail["purged"] == 3
    assert [r.target for r in _audit(api_db, "task.run_now")] == ["request.flag_unacked"] * 2
    assert_problem(client.post("/api/v1/admin/tasks/no_such_task/run", headers=admin), 404)


@pytest.mark.parametrize("broker_url", [IDLE_BROKER])
def test_system_monitoring_samples_and_flags_what_is_down(settings, api_db):
    """No worker consumes the broker: the workers are down from the first sample on, and
    `components_down_since` says since when."""
    first = jobs.system_monitoring(settings)
    assert "workers" in first["down"] and "workers" in first["newly_down"]
    second = jobs.system_monitoring(settings)
    assert "workers" in second["down"] and second["newly_down"] == []
    assert second["task_runs_trimmed"] == 0
    with transaction(api_db) as session:
        at = list(session.execute(select(HealthSample.at).order_by(HealthSample.id)).scalars())
        since = health.components_down_since(session=session)
    assert len(at) == 2
    assert since["workers"] == at[0]


def test_run_now_executes_on_the_worker_and_its_run_is_recorded(client, admin, worker):
    name = worker.ensure_running()
    sent = client.post("/api/v1/admin/tasks/request.system_monitoring/run", headers=admin)
    assert sent.status_code == 202, sent.text
    task_id = sent.json()["task_id"]
    assert sent.json()["entry"] == "system_monitoring"

    def finished() -> dict | None:
        body = client.get(f"/api/v1/admin/tasks/{task_id}", headers=admin).json()
        return body if body["state"] in ("SUCCESS", "FAILURE") else None

    state = wait_until(finished, timeout=60, what=f"task {task_id}", details=worker.logs.report)
    assert state["state"] == "SUCCESS", state
    assert state["result"]["status"] in ("ok", "degraded", "down")
    run = state["run"]
    assert run["name"] == "request.system_monitoring" and run["outcome"] == "success"
    assert run["task_id"] == task_id and run["worker"] == name
    assert run["counts"]["status"] == state["result"]["status"]

    view = client.get("/api/v1/admin/queues", headers=admin).json()
    assert [w["name"] for w in view["workers"]] == [name]
    [entry] = [e for e in view["schedule"] if e["entry"] == "system_monitoring"]
    assert entry["last_outcome"] == "success" and entry["last_run_at"] is not None
    assert entry["schedule"] == "every 120 s"


def test_health_names_each_component_and_a_stopped_worker_is_down(client, admin, worker, settings):
    name = worker.ensure_running()
    bad = settings.inbox / "requests-response-00000001-x.jsonl"
    bad.write_text("not a batch\n")
    quarantine(bad, settings.quarantine_dir, ["not a batch"])

    components = _health(client, admin)
    assert COMPONENTS | {"quarantine"} <= set(components)
    database = components["database"]
    assert database["status"] == "ok"
    assert database["details"]["migration"] == code_heads("request")[0]
    assert components["workers"]["status"] == "ok"
    assert components["workers"]["details"]["workers"] == [name]
    assert components["transfer_dirs"]["status"] == "ok"
    assert components["quarantine"]["status"] == "degraded"
    assert components["quarantine"]["details"]["count"] == 1

    worker.stop()
    components = _health(client, admin)
    assert components["workers"]["status"] == "down"
    assert components["workers"]["reason"] == "no worker answered a ping within 1 s"
    assert components[""]["status"] == "down"
