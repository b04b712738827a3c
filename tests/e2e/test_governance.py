"""Governance across the real gap, every part a real process (see `conftest.py`): the
response network changes a setting, a password and a user's state; the request network's
running API follows after one cycle (export → carry → import) without a restart. The tests
play beat and the operator; they leave nothing pending for the others."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from e2e_deployment import Deployment
from e2e_support import wait_until
from sqlalchemy import create_engine, text

from shared.db import utcnow

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

QUERY = {"query": {"match": {"field": "title", "value": "zeppelin"}}, "size": 10}


def _identity_cycle(d: Deployment, task: str) -> list[dict]:
    """A response-network exporter, the operator, and the request network's importer."""
    exported = d.run_task("response", task)
    d.carry(d.response.outbox, d.request.inbox)
    importer = "request.settings_importer" if "settings" in task else "request.users_importer"
    files = d.run_task("request", importer)["files"]
    assert [f["status"] for f in files] == ["imported"] * len(files), files
    assert len(files) == len(exported["batches"]), (exported, files)
    return files


def _to_authority(d: Deployment) -> dict:
    """The request network's export (requests and users' own changes) to the response
    network, imported there."""
    exported = d.run_task("request", "request.export_requests")
    d.carry(d.request.outbox, d.response.inbox)
    files = d.run_task("response", "response.import_requests")["files"]
    assert [f["status"] for f in files] == ["imported"] * len(files), files
    return exported


def _minute_limit(http: httpx.Client, auth: dict[str, str]) -> tuple[int, str]:
    reply = http.get("/api/v1/rate-limits/me", headers=auth)
    assert reply.status_code == 200, reply.text
    (minute,) = [w for w in reply.json()["windows"] if w["window"] == "minute"]
    return minute["limit"], minute["source"]


def _login(http: httpx.Client, username: str, password: str) -> httpx.Response:
    return http.post("/api/v1/auth/login", data={"username": username, "password": password})


def _bearer(reply: httpx.Response) -> dict[str, str]:
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_a_setting_changed_on_the_authority_changes_the_running_limiter(
    deployment: Deployment,
) -> None:
    d = deployment
    with d.http() as http:
        carol, root = d.login(http, "carol"), d.login(http, "root")
        assert _minute_limit(http, carol) == (30, "profile_type")
        by_role = {"articles": {"user": {"minute": 7, "hour": 70, "day": 700}}}
        changed = d.cli(
            "response", "settings", "set", "rate_limits.by_role", json.dumps(by_role),
            env=d.response.env,
        ).json()  # fmt: skip
        assert changed["changed"] is True and changed["version"] == 1, changed
        (arrived,) = _identity_cycle(d, "response.settings_exporter")
        assert arrived["stream"] == "settings"

        # The same API process, no restart: its view of the settings refreshes in a second.
        wait_until(
            lambda: _minute_limit(http, carol) == (7, "by_role"),
            timeout=15,
            what="the request API to apply rate_limits.by_role",
        )
        shown = http.get("/api/v1/admin/settings", headers=root).json()["items"]
        (item,) = [i for i in shown if i["key"] == "rate_limits.by_role"]
        assert (item["value"], item["version"]) == (by_role, 1), item

        # Back to the profile type's limits for the tests that follow.
        d.cli("response", "settings", "set", "rate_limits.by_role", "null", env=d.response.env)
        _identity_cycle(d, "response.settings_exporter")
        wait_until(
            lambda: _minute_limit(http, carol) == (30, "profile_type"),
            timeout=15,
            what="the request API to drop rate_limits.by_role",
        )


def test_passwords_resolve_by_version_on_both_networks(deployment: Deployment) -> None:
    d = deployment
    first, second, reset = "carol's second password", "carol's third password", "root's reset pw"
    with d.http() as http, d.response_http() as rhttp:
        old = d.passwords["carol"]
        session = _bearer(_login(http, "carol", old))

        # Carol changes her password on the request network: at once there …
        changed = http.post(
            "/api/v1/users/me/password",
            json={"current_password": old, "new_password": first},
            headers=session,
        )
        fresh = _bearer(changed)
        assert http.get("/api/v1/users/me", headers=session).status_code == 401
        assert http.get("/api/v1/users/me", headers=fresh).json()["changes_on_their_way"] == 1
        # … and on the response network after one cycle, back again with password_sync.
        assert _to_authority(d)["user_changes"] == 1
        assert _login(rhttp, "carol", first).status_code == 200
        assert _login(rhttp, "carol", old).status_code == 401
        _identity_cycle(d, "response.password_sync")
        me = http.get("/api/v1/users/me", headers=fresh).json()
        assert (me["version"], me["changes_on_their_way"]) == (2, 0), me

        # Root resets it on the response network while carol, not knowing, changes it again
        # on the request network: the reset is newer than the version carol's change was
        # made on, so the reset wins on both networks.
        root = _bearer(_login(rhttp, "root", d.passwords["root"]))
        users = rhttp.get("/api/v1/admin/users", params={"name": "carol"}, headers=root).json()
        (carol,) = users["items"]
        done = rhttp.post(
            f"/api/v1/admin/users/{carol['id']}/password", json={"password": reset}, headers=root
        )
        assert done.status_code == 204, done.text
        http.post(
            "/api/v1/users/me/password",
            json={"current_password": first, "new_password": second},
            headers=fresh,
        ).raise_for_status()
        _to_authority(d)
        _identity_cycle(d, "response.password_sync")
        for client in (http, rhttp):
            assert _login(client, "carol", reset).status_code == 200
            assert _login(client, "carol", second).status_code == 401
        d.passwords["carol"] = reset
        d.tokens.pop("carol", None)


def test_a_disabled_user_is_refused_after_one_cycle_and_their_requests_wait(
    deployment: Deployment,
) -> None:
    d = deployment
    with d.http() as http, d.response_http() as rhttp:
        bob = d.login(http, "bob")
        key = http.post(
            "/api/v1/api-keys", json={"name": "e2e", "scopes": ["requests:write"]}, headers=bob
        ).json()["key"]
        queued = http.post(
            "/api/v1/requests",
            json={"profile_type": "articles", "query": QUERY},
            headers={"X-API-Key": key},
        )
        assert queued.status_code == 202, queued.text

        root = _bearer(_login(rhttp, "root", d.passwords["root"]))
        (row,) = rhttp.get("/api/v1/admin/users", params={"name": "bob"}, headers=root).json()[
            "items"
        ]
        off = rhttp.patch(f"/api/v1/admin/users/{row['id']}", json={"active": False}, headers=root)
        assert off.status_code == 200, off.text
        _identity_cycle(d, "response.users_exporter")
        assert http.get("/api/v1/users/me", headers=bob).status_code == 401
        assert http.get("/api/v1/users/me", headers={"X-API-Key": key}).status_code == 401
        assert _login(http, "bob", d.passwords["bob"]).status_code == 401
        assert d.run_task("request", "request.export_requests")["requests"] == 0

        # Enabled again: bob's queued request goes out; take it across and back.
        on = rhttp.patch(f"/api/v1/admin/users/{row['id']}", json={"active": True}, headers=root)
        assert on.status_code == 200, on.text
        _identity_cycle(d, "response.users_exporter")
        d.tokens.pop("bob", None)
        assert _to_authority(d)["requests"] == 1
        assert d.run_task("response", "response.query_executor") == {
            "done": 1,
            "failed": 0,
            "deferred": 0,
        }
        d.run_task("response", "response.export_results")
        d.carry(d.response.outbox, d.request.inbox)
        back = d.run_task("request", "request.import_results")["files"]
        assert [f["status"] for f in back] == ["imported"], back
        rid = queued.json()["id"]
        bob = d.login(http, "bob")
        assert http.get(f"/api/v1/requests/{rid}", headers=bob).json()["status"] == "COMPLETED"


def test_a_rotated_key_works_during_its_grace_period_and_not_after(deployment: Deployment) -> None:
    d = deployment
    with d.http() as http:
        alice = d.login(http, "alice")
        created = http.post(
            "/api/v1/api-keys", json={"name": "rotate", "scopes": ["requests:read"]}, headers=alice
        ).json()
        rotated = http.post(f"/api/v1/api-keys/{created['key_id']}/rotate", headers=alice)
        assert rotated.status_code == 200, rotated.text
        old, new = {"X-API-Key": created["key"]}, {"X-API-Key": rotated.json()["key"]}
        assert http.get("/api/v1/requests", headers=old).status_code == 200
        assert http.get("/api/v1/requests", headers=new).status_code == 200

        # The grace period ends (moved, not waited for): the old secret is refused.
        engine = create_engine(d.request.env["FERRY_REQUEST_DATABASE_URL"])
        try:
            with engine.begin() as db:
                db.execute(
                    text("UPDATE api_keys SET previous_valid_until = :t WHERE key_id = :k"),
                    {"t": utcnow() - timedelta(seconds=1), "k": created["key_id"]},
                )
        finally:
            engine.dispose()
        assert http.get("/api/v1/requests", headers=old).status_code == 401
        assert http.get("/api/v1/requests", headers=new).status_code == 200
