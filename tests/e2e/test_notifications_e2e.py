"""Notifications across the real gap (see `conftest.py`): a request answered on the response
network tells its owner exactly once, in-app, when the answer is imported and `notify` runs."""

from __future__ import annotations

import pytest
from e2e_deployment import Deployment

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

QUERY = {"query": {"match": {"field": "title", "value": "ferry"}}, "size": 5}


def _mine(http, auth, kind: str) -> list[dict]:
    reply = http.get("/api/v1/notifications", params={"limit": 100}, headers=auth)
    assert reply.status_code == 200, reply.text
    return [n for n in reply.json()["items"] if n["kind"] == kind]


def test_an_answered_request_notifies_its_owner_once(deployment: Deployment) -> None:
    d = deployment
    with d.http() as http:
        alice = d.login(http, "alice")
        before = {n["data"]["request_id"] for n in _mine(http, alice, "request.completed")}
        reply = http.post(
            "/api/v1/requests", json={"profile_type": "articles", "query": QUERY}, headers=alice
        )
        assert reply.status_code == 202, reply.text
        rid = reply.json()["id"]
        assert d.run_task("request", "request.export_requests")["requests"] == 1
        d.carry(d.request.outbox, d.response.inbox)
        d.run_task("response", "response.import_requests")
        assert d.run_task("response", "response.query_executor") == {
            "done": 1,
            "failed": 0,
            "deferred": 0,
        }
        d.run_task("response", "response.export_results")
        d.carry(d.response.outbox, d.request.inbox)
        back = d.run_task("request", "request.import_results")["files"]
        assert [f["status"] for f in back] == ["imported"], back

        sent = d.run_task("request", "request.notify")
        assert sent["events"] >= 1 and sent["notifications"] >= 1, sent
        assert d.run_task("request", "request.notify")["events"] == 0, "each event once"
        mine = [
            n for n in _mine(http, alice, "request.completed") if n["data"]["request_id"] == rid
        ]
        assert len(mine) == 1, mine
        assert mine[0]["read_at"] is None and rid not in before
        assert mine[0]["title"].startswith(f"Request {rid[:8]} answered")
        assert http.post("/api/v1/notifications/read-all", headers=alice).json()["marked"] >= 1
