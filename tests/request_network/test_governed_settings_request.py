"""Governed settings on the request network (DESIGN.md §9): they arrive from the response
network in `settings` batches, newer versions only; what this network cannot take
quarantines the batch; every process applies them within about a second of the import,
without a restart (the limiter, the response cache, expiry, retention); and here they can
only be read (409). Real PostgreSQL and Redis; the cross-process import runs `ferry`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from request_api_helpers import TEST_REDIS_URL, VALID_QUERY, assert_problem, closed_port
from sqlalchemy import func, select

from request_network import jobs
from request_network.app import create_app
from request_network.models import GovernedSetting, TaskRun
from request_network.services import governed, health
from request_network.services.response_cache import Policy
from request_network.settings import RequestSettings
from response_network import jobs as response_jobs
from response_network.models import Base as ResponseBase
from response_network.models import Batch as ResponseBatch
from response_network.services import governed as authority
from shared.db import get_engine, transaction, utcnow
from tests.conftest import network_settings
from transfer.format import Record
from transfer.protocol.config import make_transfer_dirs, outbound_from
from transfer.protocol.exchange import export_records

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SETTINGS = "/api/v1/admin/settings"
FERRY = shutil.which("ferry") or str(Path(sys.executable).parent / "ferry")
ROOT = Path(__file__).resolve().parents[2]


def _empty(url: str) -> None:
    with get_engine(url).begin() as conn:
        for table in reversed(ResponseBase.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def views(redis_client) -> Iterator[None]:
    """Every test starts and ends with no view held in this process (the table is emptied
    between tests behind the views' backs)."""
    governed.forget()
    yield
    for view in list(governed._VIEWS.values()):
        redis_client.delete(view.key)
    governed.forget()


class Gap:
    """The authority (the response database) and this network's settings with a transfer
    directory: change settings there, export, carry, import here."""

    def __init__(self, tmp_path: Path, keys: dict[str, Path], response_url: str, here):
        self.response_url = response_url
        self.authority = network_settings("response", tmp_path, keys, database_url=response_url)
        self.here: RequestSettings = here.model_copy(
            update={
                "transfer_dir": tmp_path / "request" / "transfer",
                "signing_key": keys["request"] / "request.ed25519.pem",
                "peer_public_keys": [keys["response"]],
            }
        )
        make_transfer_dirs(self.here)

    def set(self, values: dict[str, Any]) -> None:
        with transaction(self.response_url) as session:
            authority.set_values(values, self.authority, session=session, actor="root")

    def export(self, *, full: bool = False) -> list[Path]:
        batches = response_jobs.export_settings(self.authority, full=full)["batches"]
        return [Path(b["file"]) for b in batches]

    def export_records(self, records: list[Record]) -> list[Path]:
        """Records as the authority would never write them (a key or value refused here)."""
        with transaction(self.response_url) as session:
            out = outbound_from(self.authority)
            batches = export_records(
                session, ResponseBatch, out, stream="settings", records=records
            )
        return [b.path for b in batches]

    def carry(self, *paths: Path) -> None:
        for path in paths:
            for p in (path, path.with_name(path.name + ".sha256")):
                shutil.copy2(p, self.here.inbox / p.name)

    def import_(self) -> list[dict[str, Any]]:
        return jobs.import_settings(self.here)["files"]


@pytest.fixture
def gap(tmp_path, keys, pg_urls, settings, views) -> Iterator[Gap]:
    _empty(pg_urls["response"])
    yield Gap(tmp_path, keys, pg_urls["response"], settings)
    _empty(pg_urls["response"])


def stored(url: str) -> dict[str, tuple[Any, int]]:
    with transaction(url) as session:
        return {r.key: (r.value, r.version) for r in session.scalars(select(GovernedSetting))}


def test_a_newer_version_applies_and_an_older_one_is_ignored(gap, api_db):
    gap.set({"rate_limits.soft_ratio": 0.5})
    older = gap.export()
    gap.set({"rate_limits.soft_ratio": 0.6, "requests.expiry_hours": 24})
    newer = gap.export()

    gap.carry(*newer)  # the newer batch arrives first
    assert [(f["stream"], f["status"]) for f in gap.import_()] == [("settings", "imported")]
    assert stored(api_db)["rate_limits.soft_ratio"] == (0.6, 2)
    gap.carry(*older)  # then the older one: imported (it fills a gap), changes nothing
    assert [f["status"] for f in gap.import_()] == ["imported"]
    assert stored(api_db) == {"rate_limits.soft_ratio": (0.6, 2), "requests.expiry_hours": (24, 1)}
    now = governed.in_force(gap.here)
    assert (now["rate_limits.soft_ratio"], now.sources["rate_limits.soft_ratio"]) == (
        0.6,
        "governed",
    )

    gap.carry(*newer)  # a replay is a duplicate
    assert [f["status"] for f in gap.import_()] == ["duplicate"]


def test_null_hands_a_key_back_to_the_deployment(gap, api_db):
    here = gap.here.model_copy(update={"rate_limit_soft_ratio": 0.7})
    gap.set({"rate_limits.soft_ratio": 0.5})
    gap.carry(*gap.export())
    gap.import_()
    assert governed.in_force(here)["rate_limits.soft_ratio"] == 0.5
    gap.set({"rate_limits.soft_ratio": None})
    gap.carry(*gap.export())
    gap.import_()
    now = governed.in_force(here)
    assert (now["rate_limits.soft_ratio"], now.sources["rate_limits.soft_ratio"]) == (
        0.7,
        "environment",
    )
    assert stored(api_db)["rate_limits.soft_ratio"] == (None, 2)


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("no.such.setting", 1, "not a governed setting"),
        ("rate_limits.soft_ratio", 5, "less than or equal to 1"),
        ("rate_limits.by_role", {"articles": {"boss": {"minute": 1}}}, "'user', 'operator'"),
    ],
)
def test_a_key_or_value_this_network_cannot_take_quarantines_the_batch(
    gap, api_db, key, value, why
):
    good = Record(
        "setting", "requests.expiry_hours", 3, {"key": "requests.expiry_hours", "value": 2}
    )
    bad = Record("setting", key, 1, {"key": key, "value": value})
    gap.carry(*gap.export_records([good, bad]))
    (outcome,) = gap.import_()
    assert outcome["status"] == "quarantined"
    assert any(key in r and why in r for r in outcome["reasons"]), outcome["reasons"]
    assert stored(api_db) == {}  # the good record went with the batch
    assert list(gap.here.quarantine_dir.glob("settings-*.jsonl"))


def test_what_arrives_drives_cache_expiry_retention_and_limits_by_role(
    gap, api_db, client, seed, login
):
    seed.profile_type(rate_limits={"minute": 30, "hour": 500, "day": 2000})
    seed.user("alice")
    by_role = {"articles": {"user": {"minute": 3}}}
    gap.set(
        {
            "rate_limits.by_role": by_role,
            "response_cache.ttl_seconds": 120,
            "response_cache.max_bytes": 2048,
            "requests.expiry_hours": 2,
            "retention.task_history_days": 30,
        }
    )
    with transaction(api_db) as session:
        session.add(TaskRun(name="t", started_at=utcnow() - timedelta(days=20), outcome="success"))
    gap.carry(*gap.export())
    gap.import_()

    assert Policy.of(gap.here) == Policy(ttl=120, max_bytes=2048)
    assert jobs.expire_requests(gap.here)["older_than_hours"] == 2
    with transaction(api_db) as session:
        assert health.trim_history(gap.here, session=session)["task_runs_trimmed"] == 0
    reply = client.get("/api/v1/rate-limits/me", headers=login("alice"))
    windows = {w["window"]: w for w in reply.json()["windows"]}
    assert (windows["minute"]["limit"], windows["minute"]["source"]) == (3, "by_role")
    assert (windows["hour"]["limit"], windows["hour"]["source"]) == (500, "profile_type")


def test_the_admin_view_shows_value_source_version_and_arrival(gap, api_db, client, seed, login):
    seed.profile_type()
    seed.user("root", role="admin")
    headers = login("root")
    listed = {i["key"]: i for i in client.get(SETTINGS, headers=headers).json()["items"]}
    assert listed["rate_limits.soft_ratio"]["source"] == "environment"
    assert listed["notifications.queue_depth"]["source"] == "default"
    assert listed["rate_limits.soft_ratio"]["version"] is None

    gap.set({"rate_limits.soft_ratio": 0.5})
    (batch,) = gap.export()
    gap.carry(batch)
    gap.import_()
    reply = client.get(SETTINGS, headers=headers)
    assert reply.status_code == 200, reply.text
    soft = {i["key"]: i for i in reply.json()["items"]}["rate_limits.soft_ratio"]
    assert (soft["value"], soft["source"], soft["version"]) == (0.5, "governed", 1)
    assert soft["received_at"] is not None and soft["batch_id"] in batch.name
    assert soft["default"] == 0.8


def test_a_change_here_is_refused_naming_the_authority(client, seed, login, api_db):
    seed.profile_type()
    seed.user("root", role="admin")
    seed.user("alice")
    reply = client.put(
        SETTINGS, json={"values": {"rate_limits.soft_ratio": 0.5}}, headers=login("root")
    )
    body = assert_problem(reply, 409)
    assert "governed by the response network" in body["detail"]
    assert [e["loc"] for e in body["errors"]] == ["body.values.rate_limits.soft_ratio"]
    assert_problem(client.put(SETTINGS, json={"values": {"a": 1}}, headers=login("alice")), 403)
    assert_problem(client.get(SETTINGS, headers=login("alice")), 403)
    with transaction(api_db) as session:
        assert session.scalar(select(func.count()).select_from(GovernedSetting)) == 0


# Every process, without a restart ---------------------------------------------------------


def ferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return subprocess.run(
        [FERRY, *args], capture_output=True, text=True, env=clean | env, cwd=ROOT, timeout=120
    )


def wait_for(condition: Callable[[], bool], what: str, *, within: float = 30.0) -> None:
    """Poll `condition` until it holds (bounded: fail after `within` seconds)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_the_limiter_applies_an_import_by_another_process_without_a_new_app(
    gap, api_db, settings, seed
):
    seed.profile_type(rate_limits={"minute": 10, "hour": 500, "day": 2000})
    seed.user("alice")
    body = {"profile_type": "articles", "query": VALID_QUERY}
    with TestClient(create_app(settings)) as client:  # one app for the whole test
        reply = client.post(
            "/api/v1/auth/login", data={"username": "alice", "password": "correct horse battery"}
        )
        headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}

        def minute_state() -> str:
            reply = client.get("/api/v1/rate-limits/me", headers=headers)
            return next(w["state"] for w in reply.json()["windows"] if w["window"] == "minute")

        warnings = []
        for _ in range(9):  # soft past floor(0.8 · 10) = 8
            reply = client.post("/api/v1/requests", json=body, headers=headers)
            assert reply.status_code == 202, reply.text
            warnings.append(reply.headers.get("X-RateLimit-Warning"))
        assert warnings == [None] * 8 + ["soft"]
        assert minute_state() == "soft"  # a 10th now would warn too

        gap.set({"rate_limits.soft_ratio": 1.0})
        gap.carry(*gap.export())
        here = gap.here
        env = {
            "FERRY_REQUEST_MODE": "demo",
            "FERRY_REQUEST_DATABASE_URL": here.database_url,
            "FERRY_REQUEST_REDIS_URL": here.redis_url,
            "FERRY_REQUEST_TRANSFER_DIR": str(here.transfer_dir),
            "FERRY_REQUEST_SIGNING_KEY": str(here.signing_key),
            "FERRY_REQUEST_PEER_PUBLIC_KEYS": orjson.dumps(
                [str(here.peer_public_keys[0])]
            ).decode(),
        }
        imported = ferry("request", "import", env=env)  # another process imports
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert [f["status"] for f in orjson.loads(imported.stdout)["files"]] == ["imported"]

        wait_for(lambda: minute_state() == "ok", "the new soft ratio applied in this app")
        reply = client.post("/api/v1/requests", json=body, headers=headers)
        assert reply.status_code == 202, reply.text
        assert "X-RateLimit-Warning" not in reply.headers  # 10 ≤ floor(1.0 · 10)


# The view: a Redis stamp at most once a second, the database without Redis -----------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put_row(url: str, key: str, value: Any, version: int) -> None:
    """A row changed behind the view's back (no stamp set)."""
    with transaction(url) as session:
        row = session.get(GovernedSetting, key)
        if row is None:
            session.add(GovernedSetting(key=key, value=value, version=version, batch_id="b"))
        else:
            row.value, row.version = value, version


def test_the_view_reloads_when_the_stamp_changes_at_most_once_a_second(api_db, views, redis_client):
    clock = Clock()
    view = governed.View(api_db, TEST_REDIS_URL, clock)
    assert view.snapshot().values == {}
    put_row(api_db, "rate_limits.soft_ratio", 0.5, 1)

    clock.now += 5
    assert view.snapshot().values == {}  # the stamp has not moved: nothing is reread
    assert view.loads == 1
    redis_client.set(view.key, "a change was imported")
    clock.now += 0.5
    assert view.snapshot().values == {}  # checked less than a second ago
    clock.now += 0.5
    assert view.snapshot().values == {"rate_limits.soft_ratio": 0.5}
    assert view.loads == 2
    clock.now += 1
    view.snapshot()
    assert view.loads == 2  # the same stamp again


def test_without_redis_the_view_reads_the_database_at_most_once_a_second(api_db, views):
    clock = Clock()
    view = governed.View(api_db, f"redis://127.0.0.1:{closed_port()}/0", clock)
    assert view.snapshot().values == {}
    put_row(api_db, "requests.expiry_hours", 12, 1)
    clock.now += 0.5
    assert view.snapshot().values == {}
    assert view.loads == 1
    clock.now += 0.5
    assert view.snapshot().values == {"requests.expiry_hours": 12}
    assert view.loads == 2


def test_an_import_sets_the_stamp_for_the_other_processes(gap, api_db, redis_client):
    key = governed.stamp_key(gap.here.database_url)
    before = redis_client.get(key)
    gap.set({"rate_limits.grace_seconds": 60})
    gap.carry(*gap.export())
    gap.import_()
    assert redis_client.get(key) not in (None, before)
