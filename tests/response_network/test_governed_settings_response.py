"""Governed settings on their authority (DESIGN.md §9): admins list and change them through
the API and the CLI, every change versioned and audited; the settings export carries what
changed (or a full snapshot); a settings batch arriving from the request network is
quarantined. Real PostgreSQL and Redis; the CLI runs as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from response_api_helpers import (
    PASSWORD,
    TEST_REDIS_URL,
    add_user,
    assert_problem,
    clear_auth_keys,
    empty_response_db,
    make_settings,
)
from sqlalchemy import func, select

from response_network import jobs
from response_network.app import create_app
from response_network.models import AuditLog, GovernedSetting, RejectedBatch, TaskRun
from response_network.services import governed, health
from shared.db import transaction, utcnow
from shared.governed import REGISTRY
from shared.ratelimit import MAX_LIMIT
from tests.conftest import network_settings
from transfer.format import Record, write_batch
from transfer.protocol.config import make_transfer_dirs, outbound_from

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SETTINGS = "/api/v1/admin/settings"
FERRY = shutil.which("ferry") or str(Path(sys.executable).parent / "ferry")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rs(pg_urls, tmp_path, keys) -> Iterator[tuple[TestClient, str, Any]]:
    url = pg_urls["response"]
    empty_response_db(url)
    cache = redis.Redis.from_url(TEST_REDIS_URL)
    clear_auth_keys(cache)
    add_user(url, "root", role="admin")
    add_user(url, "olga", role="operator")
    settings = make_settings(
        url,
        transfer_dir=tmp_path / "response",
        signing_key=keys["response"] / "response.ed25519.pem",
        peer_public_keys=[keys["request"]],
    )
    make_transfer_dirs(settings)
    with TestClient(create_app(settings)) as client:
        yield client, url, settings
    empty_response_db(url)
    clear_auth_keys(cache)
    cache.close()


def login(client: TestClient, username: str = "root") -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def items(reply) -> dict[str, dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    return {item["key"]: item for item in reply.json()["items"]}


def put(client, headers, values: dict[str, Any]):
    return client.put(SETTINGS, json={"values": values}, headers=headers)


def versions(client, headers) -> dict[str, int]:
    return {k: i["version"] for k, i in items(client.get(SETTINGS, headers=headers)).items()}


def test_every_key_is_listed_with_its_default_bounds_and_version(rs):
    client, _, _ = rs
    listed = items(client.get(SETTINGS, headers=login(client)))
    assert list(listed) == list(REGISTRY)
    soft = listed["rate_limits.soft_ratio"]
    assert soft["value"] == soft["default"] == 0.8
    assert (soft["type"], soft["minimum"], soft["maximum"]) == ("number", 0, 1)
    assert soft["exclusive_minimum"] is True and soft["description"]
    assert (soft["source"], soft["version"], soft["updated_by"]) == ("default", 0, None)
    # the retention keys stand for this deployment's own settings until they are set
    assert listed["retention.task_history_days"]["source"] == "environment"
    assert listed["rate_limits.by_role"]["type"] == "object"


def test_only_admins_may_read_or_change(rs):
    client, _, _ = rs
    operator = login(client, "olga")
    assert_problem(client.get(SETTINGS, headers=operator), 403)
    assert_problem(put(client, operator, {"rate_limits.soft_ratio": 0.5}), 403)
    assert_problem(client.get(SETTINGS), 401)


def test_changes_are_versioned_audited_and_unchanged_values_are_not(rs):
    client, url, _ = rs
    root = login(client)
    reply = put(client, root, {"rate_limits.soft_ratio": 0.6, "response_cache.ttl_seconds": 600})
    assert reply.status_code == 200, reply.text
    assert reply.json()["changed"] == ["rate_limits.soft_ratio", "response_cache.ttl_seconds"]
    soft = items(reply)["rate_limits.soft_ratio"]
    assert (soft["value"], soft["source"], soft["version"]) == (0.6, "governed", 1)
    assert soft["updated_by"] == "root" and soft["updated_at"] is not None
    assert soft["replicated"] is False

    again = put(client, root, {"rate_limits.soft_ratio": 0.6, "rate_limits.grace_seconds": 120})
    assert again.json()["changed"] == ["rate_limits.grace_seconds"]
    assert put(client, root, {"rate_limits.soft_ratio": 0.7}).json()["changed"] == [
        "rate_limits.soft_ratio"
    ]
    by_role = {"articles": {"user": {"minute": 5, "hour": 50, "day": 500}}}
    assert put(client, root, {"rate_limits.by_role": by_role}).status_code == 200
    reset = items(put(client, root, {"rate_limits.soft_ratio": None}))["rate_limits.soft_ratio"]
    assert (reset["value"], reset["source"], reset["version"]) == (0.8, "default", 3)
    assert reset["governed_value"] is None
    # null on a key never set is no change at all
    assert put(client, root, {"notifications.queue_depth": None}).json()["changed"] == []

    now = versions(client, root)
    assert now["rate_limits.soft_ratio"] == 3 and now["response_cache.ttl_seconds"] == 1
    assert now["rate_limits.grace_seconds"] == 1 and now["notifications.queue_depth"] == 0
    assert items(client.get(SETTINGS, headers=root))["rate_limits.by_role"]["value"] == by_role
    with transaction(url) as session:
        audited = session.execute(
            select(AuditLog.actor, AuditLog.target, AuditLog.detail)
            .where(AuditLog.action == "setting.changed")
            .order_by(AuditLog.id)
        ).all()
    soft_changes = [(a, d) for a, t, d in audited if t == "rate_limits.soft_ratio"]
    assert soft_changes == [
        ("root", {"old": None, "new": 0.6, "version": 1}),
        ("root", {"old": 0.6, "new": 0.7, "version": 2}),
        ("root", {"old": 0.7, "new": None, "version": 3}),
    ]
    assert len(audited) == 6  # one row per change, none for the unchanged values


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("no.such.setting", 1),  # an unknown key
        ("rate_limits.soft_ratio", "0.5"),  # the wrong type
        ("rate_limits.soft_ratio", True),
        ("rate_limits.soft_ratio", 1.5),  # out of bounds
        ("rate_limits.grace_ratio", 0.5),
        ("rate_limits.grace_seconds", 2.5),  # not an integer
        ("response_cache.max_bytes", 2**63),
        ("requests.expiry_hours", 0),
        ("notifications.quarantine_count", 0),
        ("rate_limits.by_role", {"articles": {"boss": {"minute": 1}}}),  # a role unknown
        ("rate_limits.by_role", {"articles": {"user": {"minute": MAX_LIMIT + 1}}}),
        ("rate_limits.by_role", ["articles"]),
    ],
)
def test_a_bad_key_type_or_bound_is_a_422_naming_the_key_and_changes_nothing(rs, key, value):
    client, _, _ = rs
    root = login(client)
    before = versions(client, root)
    reply = put(client, root, {"response_cache.ttl_seconds": 900, key: value})
    body = assert_problem(reply, 422)
    assert body["errors"] and all(e["loc"].startswith(f"body.values.{key}") for e in body["errors"])
    assert key in body["detail"]
    assert versions(client, root) == before  # all or nothing: the good key was not set


def test_a_body_that_is_not_keys_and_values_is_refused_at_the_edge(rs):
    client, _, _ = rs
    root = login(client)
    assert_problem(client.put(SETTINGS, json={"value": {}}, headers=root), 422)
    assert_problem(client.put(SETTINGS, json={"values": [1]}, headers=root), 422)
    assert_problem(
        client.put(SETTINGS, json={"values": {"rate_limits__soft_ratio": 1}}, headers=root), 422
    )
    assert put(client, root, {}).json()["changed"] == []  # nothing asked, nothing changed


def test_the_schema_documents_every_key_with_its_type_and_bounds(rs):
    client, _, _ = rs
    schema = client.app.openapi()["components"]["schemas"]["GovernedValues"]
    assert list(schema["properties"]) == list(REGISTRY)
    assert schema["additionalProperties"] is False
    soft = schema["properties"]["rate_limits.soft_ratio"]["anyOf"][0]
    assert soft == {"type": "number", "exclusiveMinimum": 0, "maximum": 1}


def records_of(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line.get("kind") == "record" and line["type"] != "ack"]


def test_export_carries_the_changed_keys_and_a_full_snapshot_carries_every_key(rs):
    client, url, settings = rs
    root = login(client)
    put(client, root, {"rate_limits.soft_ratio": 0.6, "requests.expiry_hours": 48})

    first = jobs.export_settings(settings)["batches"]
    assert [b["stream"] for b in first] == ["settings"]
    carried = records_of(Path(first[0]["file"]))
    assert [(r["type"], r["id"], r["version"], r["data"]) for r in carried] == [
        ("setting", "rate_limits.soft_ratio", 1, {"key": "rate_limits.soft_ratio", "value": 0.6}),
        ("setting", "requests.expiry_hours", 1, {"key": "requests.expiry_hours", "value": 48}),
    ]
    assert items(client.get(SETTINGS, headers=root))["rate_limits.soft_ratio"]["replicated"]
    assert jobs.export_settings(settings)["batches"] == []  # nothing changed since

    put(client, root, {"requests.expiry_hours": None})
    second = jobs.export_settings(settings)["batches"]
    assert [
        (r["id"], r["version"], r["data"]["value"]) for r in records_of(Path(second[0]["file"]))
    ] == [("requests.expiry_hours", 2, None)]
    assert second[0]["seq"] == first[0]["seq"] + 1

    full = jobs.export_settings(settings, full=True)["batches"]
    snapshot = {r["id"]: r for b in full for r in records_of(Path(b["file"]))}
    assert list(snapshot) == sorted(REGISTRY)
    assert (
        snapshot["rate_limits.soft_ratio"]["version"],
        snapshot["rate_limits.soft_ratio"]["data"]["value"],
    ) == (1, 0.6)
    assert (
        snapshot["requests.expiry_hours"]["version"],
        snapshot["requests.expiry_hours"]["data"]["value"],
    ) == (2, None)
    assert (
        snapshot["notifications.queue_depth"]["version"],
        snapshot["notifications.queue_depth"]["data"]["value"],
    ) == (0, None)


def test_the_export_cycle_carries_settings_with_identity_and_results(rs):
    client, _, settings = rs
    put(client, login(client), {"rate_limits.grace_ratio": 1.5})
    streams = [b["stream"] for b in jobs.export(settings)["batches"]]
    assert "settings" in streams


def test_an_unacknowledged_settings_batch_is_exported_again(rs):
    client, url, settings = rs
    put(client, login(client), {"rate_limits.grace_ratio": 1.5})
    (batch,) = jobs.export_settings(settings)["batches"]
    again = jobs.reexport(settings, older_than=timedelta(0))["batches"]
    assert [(b["file"], b["records"]) for b in again] == [(Path(batch["file"]).name, 1)]
    (resent,) = jobs.export_settings(settings)["batches"]
    assert [r["id"] for r in records_of(Path(resent["file"]))] == ["rate_limits.grace_ratio"]


def test_the_retention_in_force_here_is_the_governed_one(rs):
    client, url, settings = rs
    with transaction(url) as session:
        session.add(TaskRun(name="t", started_at=utcnow() - timedelta(days=20), outcome="success"))
    put(client, login(client), {"retention.task_history_days": 30})
    with transaction(url) as session:
        assert governed.in_force(settings, session=session)["retention.task_history_days"] == 30
        assert health.trim_history(settings, session=session)["task_runs_trimmed"] == 0
    put(client, login(client), {"retention.task_history_days": 10})
    with transaction(url) as session:
        assert health.trim_history(settings, session=session)["task_runs_trimmed"] == 1


def test_a_settings_batch_from_the_request_network_is_quarantined(rs, tmp_path, keys):
    _, url, settings = rs
    request_side = network_settings("request", tmp_path / "peer", keys)
    out = outbound_from(request_side)
    record = Record(
        "setting", "rate_limits.soft_ratio", 9, {"key": "rate_limits.soft_ratio", "value": 0.1}
    )
    written = write_batch(
        settings.inbox,
        stream="settings",
        source="request",
        destination="response",
        seq=1,
        prev_digest=None,
        signing_key=out.signing_key,
        records=[record],
        capabilities=("acks",),
    )

    (outcome,) = jobs.import_inbox(settings)["files"]
    assert (outcome["file"], outcome["status"]) == (written.path.name, "quarantined")
    assert any("governed by the response network" in r for r in outcome["reasons"]), outcome
    quarantined = [p.name for p in settings.quarantine_dir.iterdir()]
    assert written.path.name in quarantined
    reason = next(p for p in settings.quarantine_dir.iterdir() if p.name.endswith(".reason.json"))
    assert "governed by the response network" in reason.read_text()
    with transaction(url) as session:
        assert session.scalar(select(func.count()).select_from(GovernedSetting)) == 0
        rejected = session.scalars(select(RejectedBatch)).one()
        assert (rejected.stream, rejected.source) == ("settings", "request")
        assert (
            session.scalar(select(func.count()).where(AuditLog.action == "batch.quarantined")) == 1
        )


# The CLI ------------------------------------------------------------------------------------


def ferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return subprocess.run(
        [FERRY, *args],
        capture_output=True,
        text=True,
        env=clean | env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_the_cli_lists_gets_and_sets(rs):
    client, url, settings = rs
    env = {
        "FERRY_RESPONSE_MODE": "demo",
        "FERRY_RESPONSE_DATABASE_URL": url,
        "FERRY_RESPONSE_REDIS_URL": TEST_REDIS_URL,
        "FERRY_RESPONSE_TRANSFER_DIR": str(settings.transfer_dir),
        "FERRY_RESPONSE_SIGNING_KEY": str(settings.signing_key),
        "FERRY_RESPONSE_PEER_PUBLIC_KEYS": orjson.dumps(
            [str(settings.peer_public_keys[0])]
        ).decode(),
        "COLUMNS": "200",
    }
    changed = ferry("response", "settings", "set", "rate_limits.soft_ratio", "0.65", env=env)
    assert changed.returncode == 0, changed.stderr
    shown = json.loads(changed.stdout)
    assert (shown["value"], shown["version"], shown["changed"]) == (0.65, 1, True)
    same = ferry("response", "settings", "set", "rate_limits.soft_ratio", "0.65", env=env)
    assert json.loads(same.stdout)["changed"] is False

    table = ferry("response", "settings", "list", env=env)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "rate_limits.soft_ratio" in line)
    assert "0.65" in row and "governed" in row
    listed = json.loads(ferry("response", "settings", "list", "--json", env=env).stdout)
    assert [i["key"] for i in listed] == list(REGISTRY)
    one = json.loads(ferry("response", "settings", "get", "rate_limits.soft_ratio", env=env).stdout)
    assert (one["value"], one["updated_by"]) == (0.65, "cli")

    for args, named in (
        (("set", "rate_limits.soft_ratio", "2"), "rate_limits.soft_ratio"),
        (("set", "rate_limits.soft_ratio", "not json"), "rate_limits.soft_ratio"),
        (("set", "no.such.key", "1"), "no.such.key"),
        (("get", "no.such.key"), "no.such.key"),
    ):
        refused = ferry("response", "settings", *args, env=env)
        assert refused.returncode == 1, refused.stdout
        assert named in refused.stderr and "Traceback" not in refused.stderr
    assert (
        items(client.get(SETTINGS, headers=login(client)))["rate_limits.soft_ratio"]["version"] == 1
    )

    exported = ferry("response", "settings", "export", "--full", env=env)
    assert exported.returncode == 0, exported.stderr
    (batch,) = json.loads(exported.stdout)["batches"]
    assert batch["stream"] == "settings" and batch["records"] == len(REGISTRY)
