"""One id follows a query through both networks' logs (see `conftest.py`): the id of the
HTTP call that submitted it (`X-Request-ID`), read back from the JSON lines each real process
wrote (the APIs and the Celery workers of both networks), at every step of one cycle."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
import pytest
from e2e_deployment import Deployment
from e2e_support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

QUERY = {"query": {"match": {"field": "title", "value": "ferry"}}, "size": 5}


def lines_naming(d: Deployment, cid: str) -> dict[str, list[dict[str, Any]]]:
    """Each service's log lines that name `cid` (on the line or among those it lists), each
    of which must be one JSON object."""
    found: dict[str, list[dict[str, Any]]] = {}
    for service in d.services:
        for raw in service.log_path.read_bytes().splitlines():
            if cid.encode() in raw:
                line = orjson.loads(raw)  # every line naming it is JSON
                found.setdefault(service.name, []).append(line)
    return found


def names(line: dict[str, Any], cid: str) -> bool:
    return cid in (line.get("correlation_id"), line.get("request_id")) or cid in (
        line.get("correlation_ids") or []
    )


def test_the_calls_id_is_on_every_step_of_the_querys_life_in_both_networks(
    deployment: Deployment,
) -> None:
    d = deployment
    cid = f"e2e-trace.{secrets.token_hex(6)}"
    with d.http() as http:
        alice = d.login(http, "alice")
        reply = http.post(
            "/api/v1/requests",
            json={"profile_type": "articles", "query": QUERY},
            headers={**alice, "X-Request-ID": cid},
        )
        assert reply.status_code == 202, reply.text
        assert reply.headers["x-request-id"] == cid
        rid = reply.json()["id"]
        d.run_task("request", "request.export_requests")
        d.carry(d.request.outbox, d.response.inbox)
        d.run_task("response", "response.import_requests")
        assert d.run_task("response", "response.query_executor")["done"] >= 1
        d.run_task("response", "response.export_results")
        d.carry(d.response.outbox, d.request.inbox)
        d.run_task("request", "request.import_results")
        assert http.get(f"/api/v1/requests/{rid}/response", headers=alice).status_code == 200

    wanted = {
        "request-api": ("request ", "response to request "),
        "request-worker": ("exported in ", "answers imported"),
        "response-worker": ("requests imported", "request ", "answers exported in "),
    }

    def every_step_logged() -> dict | None:
        found = lines_naming(d, cid)
        for service, starts in wanted.items():
            events = [line["event"] for line in found.get(service, [])]
            if not all(any(e.startswith(s) for e in events) for s in starts):
                return None
        return found

    found = wait_until(every_step_logged, timeout=30, what=f"every step's line naming {cid}")
    api = found["request-api"]
    (call,) = [x for x in api if x.get("logger") == "ferry.http" and x.get("method") == "POST"]
    assert (call["route"], call["status"], call["request_id"]) == ("/api/v1/requests", 202, cid)
    assert "json" not in call and "query" not in call, "bodies are never logged"
    submitted = [x for x in api if x["event"] == f"request {rid} submitted"]
    assert submitted and submitted[0]["correlation_id"] == cid
    assert any(x["event"] == f"response to request {rid} first read" for x in api)

    for service in ("request-worker", "response-worker"):
        for line in found[service]:
            assert names(line, cid), line
            assert line.get("task_name") and line.get("task_id"), line  # the task, bound
    batch_lines = [
        x for x in found["request-worker"] + found["response-worker"] if "correlation_ids" in x
    ]
    assert len(batch_lines) == 4 and all(x.get("batch_id") and x.get("stream") for x in batch_lines)
    (executed,) = [x for x in found["response-worker"] if x["event"].startswith(f"request {rid}")]
    assert executed["correlation_id"] == cid and executed["ferry_request_id"] == rid
    assert executed["status"] == "DONE" and executed["hits"] >= 1
