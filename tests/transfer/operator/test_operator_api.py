"""The operator's HTTP endpoints, exercised on the response network's real app."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ferry.demo import DATA
from response_network import jobs
from response_network.app import create_app
from response_network.models import AuditLog
from response_network.services.identity import create_user, load_profile_types
from shared.db import transaction
from shared.migrate import upgrade
from tests.conftest import network_settings
from transfer.format import Record, write_batch
from transfer.format.digest import file_digest
from transfer.format.keys import load_signing_key


@pytest.fixture
def side(tmp_path, keys):
    settings = network_settings("response", tmp_path, keys, batch_max_bytes=64 * 1024)
    upgrade("response", settings.database_url)
    with transaction(settings.database_url) as s:
        load_profile_types(DATA / "profile_types.json", session=s)
        for name, role in (("olga", "operator"), ("uma", "user")):
            create_user(
                session=s,
                username=name,
                password=f"{name}-password",
                role=role,
                profile_type="articles",
                rounds=4,
            )
    client = TestClient(create_app(settings))

    def token(name: str) -> dict[str, str]:
        reply = client.post(
            "/api/v1/auth/login", data={"username": name, "password": f"{name}-password"}
        )
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    return settings, client, token("olga"), token("uma")


def request_batch(tmp_path, keys, seq: int = 1):
    out = tmp_path / f"made-{seq}"
    out.mkdir()
    return write_batch(
        out,
        stream="requests",
        source="request",
        destination="response",
        seq=seq,
        prev_digest=None,
        signing_key=load_signing_key(keys["request"] / "request.ed25519.pem"),
        records=[
            Record(
                "request",
                str(uuid.uuid4()),
                1,
                {
                    "user_id": "u1",
                    "profile_type": "articles",
                    "query": {"query": {"match": {"field": "title", "value": "ferry"}}},
                    "submitted_at": "2026-11-23T10:00:00Z",
                },
            )
        ],
    )


def test_only_operators_reach_the_operator_endpoints(side):
    _, client, operator, user = side
    assert client.get("/api/v1/operator/outbox").status_code == 401
    assert client.get("/api/v1/operator/outbox", headers=user).status_code == 403
    assert client.get("/api/v1/operator/outbox", headers=operator).status_code == 200


def test_outbox_lists_and_downloads_ready_batches(side):
    settings, client, operator, _ = side
    made = jobs.export_identity_only(settings)["batches"]
    listed = client.get("/api/v1/operator/outbox", headers=operator).json()
    assert sorted(b["file"] for b in listed) == sorted(b["file"].rsplit("/", 1)[1] for b in made)
    first = listed[0]
    reply = client.get(f"/api/v1/operator/outbox/{first['file']}", headers=operator)
    assert reply.status_code == 200
    assert reply.content == (settings.outbox / first["file"]).read_bytes()
    assert reply.headers["digest"] == f"sha-256={first['sha256']}"
    traversal = client.get("/api/v1/operator/outbox/..%2F..%2Fetc%2Fpasswd", headers=operator)
    assert traversal.status_code == 404  # decoded, it is a path no route has
    for name in ("not-a-batch.jsonl", "a" * 300 + ".jsonl", "a%00b.jsonl"):
        refused = client.get(f"/api/v1/operator/outbox/{name}", headers=operator)
        assert refused.status_code == 422  # checked at the edge, before the file system
        assert "path.name" in refused.json()["detail"]


def test_upload_is_verified_before_it_is_accepted(side, tmp_path, keys):
    settings, client, operator, _ = side
    batch = request_batch(tmp_path, keys)
    url = f"/api/v1/operator/inbox/{batch.path.name}"
    good = batch.path.read_bytes()

    tampered = bytearray(good)
    tampered[good.index(b"ferry")] ^= 0x20
    refused = client.put(url, content=bytes(tampered), headers=operator)
    assert refused.status_code == 422
    assert refused.json()["errors"], "the reasons are listed"
    assert not list(settings.inbox.glob("*")) if settings.inbox.exists() else True

    accepted = client.put(url, content=good, headers=operator)
    assert accepted.status_code == 201, accepted.text
    assert (settings.inbox / batch.path.name).read_bytes() == good
    assert file_digest(settings.inbox / batch.path.name) == accepted.json()["sha256"]
    assert (settings.inbox / f"{batch.path.name}.sha256").exists()
    again = client.put(url, content=good, headers=operator)
    assert (again.status_code, again.json()["status"]) == (200, "already there")

    other = request_batch(tmp_path, keys, seq=2)
    clash = client.put(url, content=other.path.read_bytes(), headers=operator)
    assert clash.status_code in (409, 422)
    assert (settings.inbox / batch.path.name).read_bytes() == good, "never overwritten"

    big = client.put(
        f"/api/v1/operator/inbox/{other.path.name}",
        content=b"x" * (settings.batch_max_bytes + 1),
        headers=operator,
    )
    assert big.status_code == 413
    assert not (settings.inbox / other.path.name).exists()
    evil = client.put("/api/v1/operator/inbox/evil.jsonl", content=good, headers=operator)
    assert evil.status_code == 422 and "path.name" in evil.json()["detail"]
    assert not list((settings.transfer_dir / ".uploads").glob("*"))

    with transaction(settings.database_url) as s:
        actions = s.execute(select(AuditLog.action)).scalars().all()
    assert actions.count("batch.uploaded") == 2
    assert "batch.upload_refused" in actions


def test_quarantine_can_be_inspected_released_and_deleted(side, tmp_path, keys):
    settings, client, operator, _ = side
    bad = request_batch(tmp_path, keys)
    settings.inbox.mkdir(parents=True, exist_ok=True)
    raw = bytearray(bad.path.read_bytes())
    raw[-5] ^= 0x01  # inside the trailer's signature
    (settings.inbox / bad.path.name).write_bytes(bytes(raw))
    (outcome,) = jobs.import_inbox(settings)["files"]
    assert outcome["status"] == "quarantined"

    (entry,) = client.get("/api/v1/operator/quarantine", headers=operator).json()
    name = entry["quarantined_as"]
    detail = client.get(f"/api/v1/operator/quarantine/{name}", headers=operator).json()
    assert detail["reasons"] == outcome["reasons"]
    assert detail["head"].startswith('{"')

    released = client.post(f"/api/v1/operator/quarantine/{name}/release", headers=operator)
    assert released.status_code == 200
    assert (settings.inbox / bad.path.name).exists()
    assert client.get("/api/v1/operator/quarantine", headers=operator).json() == []

    jobs.import_inbox(settings)  # still broken: back to quarantine
    (entry,) = client.get("/api/v1/operator/quarantine", headers=operator).json()
    gone = client.delete(f"/api/v1/operator/quarantine/{entry['quarantined_as']}", headers=operator)
    assert gone.status_code == 200
    assert not any(settings.quarantine_dir.iterdir())
    assert (
        client.delete(
            f"/api/v1/operator/quarantine/{entry['quarantined_as']}", headers=operator
        ).status_code
        == 404
    )
    with transaction(settings.database_url) as s:
        actions = s.execute(select(AuditLog.action)).scalars().all()
    assert {"quarantine.released", "quarantine.deleted"} <= set(actions)


def test_status_shows_what_was_sent_and_what_waits(side):
    settings, client, operator, user = side
    assert client.get("/api/v1/operator/status", headers=user).status_code == 403
    jobs.export_identity_only(settings)
    status = client.get("/api/v1/operator/status", headers=operator).json()
    assert status["network"] == "response" and status["peer"] == "request"
    assert {s["stream"] for s in status["sent"]} == {"profile_types", "users"}
    assert sorted(b["stream"] for b in status["unacked"]) == ["profile_types", "users"]
    assert len(status["outbox"]) == 2
    assert status["quarantined"] == [] and status["healthy"] is True
