"""The whole cycle across the gap, every part a real process.

Both networks run in production mode with their own PostgreSQL database, Redis database,
transfer directory and signing key; each has a real Celery worker (two pool processes), the
request network a real uvicorn server. The tests play beat (they send the scheduled tasks
themselves) and the operator (`ferry transfer carry` / `verify` between the two transfer
directories). See `conftest.py` for the deployment.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_deployment import DEMO_DATA, USERS, Deployment
from e2e_support import batch_files, read_batch
from sqlalchemy import create_engine, text

from ferry.demo import QUERY as FERRY_QUERY
from ferry.demo import expected_ids

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

ARTICLES = [orjson.loads(line) for line in (DEMO_DATA / "articles.jsonl").read_bytes().splitlines()]
RETURN_FIELDS = {"title", "category", "year", "published"}  # the profile type's return_fields

TRAVEL_QUERY = {"query": {"term": {"field": "category", "value": "travel"}}, "size": 50}
NOTHING_QUERY = {"query": {"match": {"field": "title", "value": "zeppelin"}}, "size": 10}
UNKNOWN_FIELD_QUERY = {"query": {"match": {"field": "author", "value": "x"}}, "size": 10}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


EXPECTED = {
    "ferry": expected_ids(),
    "travel": {a["id"] for a in ARTICLES if a["category"] == "travel"},
    "nothing": {a["id"] for a in ARTICLES if "zeppelin" in _words(a["title"])},
}
QUERIES = {"ferry": FERRY_QUERY, "travel": TRAVEL_QUERY, "nothing": NOTHING_QUERY}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _post_request(
    http: httpx.Client, auth: dict[str, str], query: dict[str, Any]
) -> httpx.Response:
    return http.post(
        "/api/v1/requests", headers=auth, json={"profile_type": "articles", "query": query}
    )


def _submit(http: httpx.Client, auth: dict[str, str], query: dict[str, Any]) -> str:
    reply = _post_request(http, auth, query)
    assert reply.status_code == 202, (reply.status_code, reply.text)
    body = reply.json()
    assert body["status"] == "PENDING", body
    assert reply.headers["Location"] == f"/api/v1/requests/{body['id']}"
    # read-your-writes: the 202 comes after the commit (the last test checks it strictly)
    assert http.get(reply.headers["Location"], headers=auth).status_code == 200, body
    return body["id"]


def _request(http: httpx.Client, auth: dict[str, str], rid: str) -> dict[str, Any]:
    reply = http.get(f"/api/v1/requests/{rid}", headers=auth)
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def _response(http: httpx.Client, auth: dict[str, str], rid: str) -> dict[str, Any]:
    reply = http.get(f"/api/v1/requests/{rid}/response", headers=auth)
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def _history(request: dict[str, Any]) -> list[str]:
    events = request["history"]
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in events]
    assert times == sorted(times), f"history out of order: {events}"
    return [e["status"] for e in events]


def _files(report: dict[str, Any]) -> list[Path]:
    return [Path(b["file"]) for b in report["batches"]]


def _assert_nothing_quarantined(d: Deployment) -> None:
    for network in d.networks.values():
        held = (
            sorted(p.name for p in network.quarantine.glob("*"))
            if network.quarantine.is_dir()
            else []
        )
        assert not held, f"{network.name} quarantined {held}: " + "; ".join(
            p.read_text() for p in network.quarantine.glob("*.reason.json")
        )


def _round_trip(d: Deployment, expect_requests: int) -> None:
    """Pending requests to the response network and their results back (beat + operator)."""
    rq, rs = d.request, d.response
    imported = d.run_task("response", "response.import_requests")["files"]
    assert [f["status"] for f in imported] == ["imported"] * len(imported), imported
    assert sum(f["records"] for f in imported) == expect_requests, imported
    ran = d.run_task("response", "response.query_executor")
    assert ran == {"done": expect_requests, "failed": 0, "deferred": 0}, ran
    results = d.run_task("response", "response.export_results")
    assert results["results"] == expect_requests, results
    assert {b["stream"] for b in results["batches"]} == {"results"}, results
    d.carry(rs.outbox, rq.inbox)
    back = d.run_task("request", "request.import_results")["files"]
    assert back and [f["status"] for f in back] == ["imported"] * len(back), back
    assert sum(f["records"] for f in back) == expect_requests, back


def test_queries_cross_the_gap_and_the_answers_come_back(deployment: Deployment) -> None:
    d = deployment
    rq, rs = d.request, d.response
    assert EXPECTED["ferry"] and EXPECTED["travel"] and not EXPECTED["nothing"]

    with d.http() as http:
        alice = d.login(http, "alice")
        ids = {name: _submit(http, alice, query) for name, query in QUERIES.items()}
        refused = http.post(
            "/api/v1/requests",
            headers=alice,
            json={"profile_type": "articles", "query": UNKNOWN_FIELD_QUERY},
        )
        assert refused.status_code == 422, refused.text  # refused now, not a day later

        # beat: export_requests; exactly the accepted requests leave, in one batch
        exported = d.run_task("request", "request.export_requests")
        assert exported["requests"] == len(ids), exported
        (batch_path,) = _files(exported)
        batch = read_batch(batch_path)
        assert batch.header["stream"] == "requests"
        assert batch.header["destination"] == "response"
        assert sorted(batch.ids("request")) == sorted(ids.values())
        for rid in ids.values():
            assert _request(http, alice, rid)["status"] == "IN_TRANSIT"

        # the operator: outbox → media, check it there, media → the response inbox
        media = d.base / "media" / "requests"
        assert [c["file"] for c in d.carry(rq.outbox, media)["copied"]] == [batch_path.name]
        on_media = media / batch_path.name
        verified = d.cli(
            "transfer", "verify", on_media, "--destination", "response",
            "--public-key", rq.keys_dir,
        )  # fmt: skip
        assert verified.stdout.startswith("OK"), verified.stdout
        assert _sha256(on_media) in verified.stdout
        misaddressed = d.cli(
            "transfer", "verify", on_media, "--destination", "request",
            "--public-key", rq.keys_dir, check=False,
        )  # fmt: skip
        assert misaddressed.returncode == 1, misaddressed
        d.carry(media, rs.inbox)

        _round_trip(d, expect_requests=len(ids))
        _assert_nothing_quarantined(d)

        for name, rid in ids.items():
            request = _request(http, alice, rid)
            assert request["status"] == "COMPLETED", (name, request)
            assert _history(request) == ["PENDING", "EXPORTED", "COMPLETED"], (name, request)
            body = _response(http, alice, rid)
            assert body["status"] == "DONE", (name, body)
            assert body["error"] is None, (name, body)
            assert body["total"] == len(EXPECTED[name]), (name, body)
            assert {h["id"] for h in body["hits"]} == EXPECTED[name], (name, body)
            for hit in body["hits"]:
                assert set(hit["source"]) <= RETURN_FIELDS, (name, hit)  # no `body` leaks
            assert _response(http, alice, rid) == body  # the second read (cache) agrees

        years = [h["source"]["year"] for h in _response(http, alice, ids["ferry"])["hits"]]
        assert years == sorted(years), "the ferry query sorts by year ascending"
        assert _response(http, alice, ids["nothing"])["hits"] == []

        # another user never sees alice's requests, not even that they exist
        bob = d.login(http, "bob")
        for rid in ids.values():
            assert http.get(f"/api/v1/requests/{rid}", headers=bob).status_code == 404
            assert http.get(f"/api/v1/requests/{rid}/response", headers=bob).status_code == 404
        listed = http.get("/api/v1/requests", headers=bob, params={"limit": 100})
        assert listed.status_code == 200, listed.text
        assert not {r["id"] for r in listed.json()["items"]} & set(ids.values())
        mine = http.get("/api/v1/requests", headers=alice, params={"limit": 100}).json()
        assert set(ids.values()) <= {r["id"] for r in mine["items"]}


def test_two_concurrent_exports_put_every_request_in_exactly_one_batch(
    deployment: Deployment,
) -> None:
    d = deployment
    rq = d.request
    submitted: dict[str, tuple[str, int, int]] = {}  # id → (user, min year, size)
    with d.http() as http:
        auth = {user: d.login(http, user) for user in USERS}
        for i in range(40):
            user, year, size = USERS[i % 2], 1950 + i, i % 7 + 1
            query = {"query": {"range": {"field": "year", "gte": year}}, "size": size}
            submitted[_submit(http, auth[user], query)] = (user, year, size)

        # two exports at once on the worker's two pool processes
        first = d.send("request", "request.export_requests")
        second = d.send("request", "request.export_requests")
        reports = [d.wait(first, "export_requests #1"), d.wait(second, "export_requests #2")]

        per_report = [
            [rid for f in _files(r) for rid in read_batch(f).ids("request")] for r in reports
        ]
        assert not set(per_report[0]) & set(per_report[1]), "both exports wrote the same request"
        assert sorted(per_report[0] + per_report[1]) == sorted(submitted), reports
        assert [r["requests"] for r in reports] == [len(p) for p in per_report], reports

        # every requests batch this network ever wrote (waiting, carried or acknowledged):
        # no request twice, none missing …
        kept = (rq.outbox, rq.outbox / "carried", rq.outbox / "acked")
        written = batch_files(*kept, stream="requests")
        counts = Counter(rid for b in written for rid in b.ids("request"))
        twice = sorted(rid for rid in submitted if counts[rid] > 1)
        missing = sorted(rid for rid in submitted if counts[rid] == 0)
        assert not twice and not missing, f"twice: {twice}; missing: {missing}"
        # … and one unbroken chain of sequence numbers and digests
        by_seq = {b.header["seq"]: b for b in written}
        assert sorted(by_seq) == list(range(1, len(written) + 1)), sorted(
            b.header["seq"] for b in written
        )
        for seq in range(2, len(written) + 1):
            assert by_seq[seq].header["prev_digest"] == _sha256(by_seq[seq - 1].path), seq

        for rid, (user, _, _) in submitted.items():
            assert _request(http, auth[user], rid)["status"] == "IN_TRANSIT"

        d.carry(rq.outbox, d.response.inbox)
        _round_trip(d, expect_requests=len(submitted))
        _assert_nothing_quarantined(d)

        for rid, (user, year, size) in submitted.items():
            request = _request(http, auth[user], rid)
            assert request["status"] == "COMPLETED", request
            assert _history(request) == ["PENDING", "EXPORTED", "COMPLETED"], request
            body = _response(http, auth[user], rid)
            total = sum(1 for a in ARTICLES if a["year"] >= year)
            assert (body["total"], len(body["hits"])) == (total, min(size, total)), (year, body)
            assert all(h["source"]["year"] >= year for h in body["hits"]), (year, body)


def test_a_replayed_batch_is_a_duplicate_on_either_side(deployment: Deployment) -> None:
    d = deployment
    rq, rs = d.request, d.response
    with d.http() as http:
        alice = d.login(http, "alice")
        rid = _submit(http, alice, FERRY_QUERY)
        assert d.run_task("request", "request.export_requests")["requests"] == 1

        # the operator carries the requests batch twice
        d.carry(rq.outbox, rs.inbox, keep=True)
        first = d.run_task("response", "response.import_requests")["files"]
        assert [f["status"] for f in first] == ["imported"], first
        d.carry(rq.outbox, rs.inbox)
        again = d.run_task("response", "response.import_requests")["files"]
        assert [f["status"] for f in again] == ["duplicate"], again
        assert d.run_task("response", "response.query_executor") == {
            "done": 1,
            "failed": 0,
            "deferred": 0,
        }

        # … and the results batch twice
        assert d.run_task("response", "response.export_results")["results"] == 1
        d.carry(rs.outbox, rq.inbox, keep=True)
        back = d.run_task("request", "request.import_results")["files"]
        assert [f["status"] for f in back] == ["imported"], back
        d.carry(rs.outbox, rq.inbox)
        back_again = d.run_task("request", "request.import_results")["files"]
        assert [f["status"] for f in back_again] == ["duplicate"], back_again
        _assert_nothing_quarantined(d)

        request = _request(http, alice, rid)
        assert _history(request) == ["PENDING", "EXPORTED", "COMPLETED"], request
        body = _response(http, alice, rid)
        assert {h["id"] for h in body["hits"]} == EXPECTED["ferry"], body


HOLD_COMMITS_KEY = 0x0FE77E  # advisory lock the test holds to stall commits of new requests
HOLD_COMMITS = f"""
CREATE OR REPLACE FUNCTION e2e_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({HOLD_COMMITS_KEY});
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER e2e_hold_commit AFTER INSERT ON requests
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION e2e_hold_commit();
"""
RELEASE_COMMITS = """
DROP TRIGGER IF EXISTS e2e_hold_commit ON requests;
DROP FUNCTION IF EXISTS e2e_hold_commit();
"""


def test_an_accepted_request_is_committed_before_the_reply(deployment: Deployment) -> None:
    """A 202 promises that the request exists: it must never arrive before the commit.

    A deferred constraint trigger (test instrumentation in this test's own database) makes
    the COMMIT of a new request wait on an advisory lock the test holds. If the API answers
    while that commit is still waiting, a user holds the id of a request that does not exist
    yet (GET says 404, an export misses it) and that is lost for good if the commit fails.
    """
    d = deployment
    engine = create_engine(
        d.request.env["FERRY_REQUEST_DATABASE_URL"], isolation_level="AUTOCOMMIT"
    )
    early: dict[str, Any] = {}
    try:
        with engine.connect() as holder, d.http() as http, d.http() as poster:
            holder.execute(text(HOLD_COMMITS))
            alice = d.login(http, "alice")
            holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": HOLD_COMMITS_KEY})
            with ThreadPoolExecutor(1) as pool:
                try:
                    future = pool.submit(_post_request, poster, alice, NOTHING_QUERY)
                    wait([future], timeout=1.5)  # a correct API is still waiting for its commit
                    if future.done():
                        reply = future.result()
                        rid = reply.json().get("id")
                        visible = holder.execute(
                            text("SELECT count(*) FROM requests WHERE id = :id"), {"id": rid}
                        ).scalar_one()
                        seen = http.get(f"/api/v1/requests/{rid}", headers=alice).status_code
                        early = {"status": reply.status_code, "committed": visible, "get": seen}
                finally:
                    holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": HOLD_COMMITS_KEY})
                reply = future.result(timeout=15)
            assert reply.status_code == 202, reply.text
            rid = reply.json()["id"]
            assert http.get(f"/api/v1/requests/{rid}", headers=alice).status_code == 200

            # leave nothing pending for other tests: take it across and back
            assert d.run_task("request", "request.export_requests")["requests"] == 1
            d.carry(d.request.outbox, d.response.inbox)
            _round_trip(d, expect_requests=1)
            assert _request(http, alice, rid)["status"] == "COMPLETED"
    finally:
        with engine.connect() as conn:
            conn.execute(text(RELEASE_COMMITS))
        engine.dispose()

    assert not early, (
        f"POST /api/v1/requests answered {early.get('status')} while the request's transaction "
        f"was still uncommitted (rows visible to others: {early.get('committed')}; "
        f"GET right after the reply: {early.get('get')}). The session dependency commits after "
        "the response has been sent."
    )


def _admin_action(http: httpx.Client, root: dict[str, str], rid: str, verb: str) -> dict:
    reply = http.post(f"/api/v1/admin/requests/{rid}/{verb}", headers=root)
    assert reply.status_code == 200, (verb, reply.status_code, reply.text)
    return reply.json()


def _import_requests(d: Deployment, records: int) -> None:
    files = d.run_task("response", "response.import_requests")["files"]
    assert [f["status"] for f in files] == ["imported"] * len(files), files
    assert sum(f["records"] for f in files) == records, files


def test_cancel_and_retry_cross_the_gap_exactly_once(deployment: Deployment) -> None:
    """An admin cancels a pending request (nothing leaves) and one in transit (a cancellation
    follows it and the response network never runs it), and retries an expired request
    whose first answer is still on its way back: the response network runs it once more,
    the answer to the first sending is set aside, and the user reads exactly one answer."""
    d = deployment
    rq, rs = d.request, d.response
    engine = create_engine(d.request.env["FERRY_REQUEST_DATABASE_URL"])
    with d.http() as http, engine.connect() as db:
        alice, root = d.login(http, "alice"), d.login(http, "root")
        kept = _submit(http, alice, TRAVEL_QUERY)
        assert _admin_action(http, root, kept, "cancel")["cancellation_sent"] is False
        assert d.run_task("request", "request.export_requests")["requests"] == 0

        stopped = _submit(http, alice, NOTHING_QUERY)
        late = _submit(http, alice, FERRY_QUERY)
        assert d.run_task("request", "request.export_requests")["requests"] == 2
        cancelled = _admin_action(http, root, stopped, "cancel")
        assert (cancelled["was"], cancelled["cancellation_sent"]) == ("IN_TRANSIT", True)
        (cancellation,) = _files(d.run_task("request", "request.export_requests"))
        assert read_batch(cancellation).ids("request") == [stopped]
        d.carry(rq.outbox, rs.inbox)
        _import_requests(d, records=3)
        assert d.run_task("response", "response.query_executor") == {
            "done": 1,
            "failed": 0,
            "deferred": 0,
        }

        # The answer to `late`'s first sending leaves the response network, and waits with
        # the operator; the request network gives up on it (it expires) and an admin retries.
        first_answer = d.run_task("response", "response.export_results")
        assert first_answer["results"] == 1, first_answer
        held = d.base / "media" / "held-results"
        d.carry(rs.outbox, held)
        db.execute(
            text("UPDATE requests SET updated_at = now() - interval '400 days' WHERE id = :id"),
            {"id": late},
        )
        db.commit()
        assert d.run_task("request", "request.expire_requests")["expired"] == 1
        assert _request(http, alice, late)["status"] == "EXPIRED"
        retried = _admin_action(http, root, late, "retry")
        assert (retried["was"], retried["attempt"]) == ("EXPIRED", 2)
        (second,) = _files(d.run_task("request", "request.export_requests"))
        assert [r["version"] for r in read_batch(second).records if r["type"] == "request"] == [2]
        d.carry(rq.outbox, rs.inbox)
        _import_requests(d, records=1)
        assert d.run_task("response", "response.query_executor") == {
            "done": 1,
            "failed": 0,
            "deferred": 0,
        }
        assert d.run_task("response", "response.export_results")["results"] == 1

        # Both answers reach the request network, the older first.
        d.carry(held, rq.inbox)
        d.carry(rs.outbox, rq.inbox)
        back = d.run_task("request", "request.import_results")["files"]
        assert [f["status"] for f in back] == ["imported", "imported"], back
        _assert_nothing_quarantined(d)

        request = _request(http, alice, late)
        assert request["status"] == "COMPLETED", request
        assert _history(request) == [
            "PENDING",  # submitted
            "EXPORTED",  # its first sending
            "EXPIRED",
            "PENDING",  # the retry
            "EXPORTED",  # its second sending
            "PENDING",  # the answer to the first sending, set aside
            "COMPLETED",
        ], request
        details = [e["detail"] for e in request["history"]]
        assert "an answer to sending 1 set aside: sending 2 is current" in details, details
        body = _response(http, alice, late)
        assert {h["id"] for h in body["hits"]} == EXPECTED["ferry"], body
        for rid, state in ((kept, "CANCELLED"), (stopped, "CANCELLED")):
            assert _request(http, alice, rid)["status"] == state
            gone = http.get(f"/api/v1/requests/{rid}/response", headers=alice)
            assert gone.status_code == 404, gone.text

        # The response network ran `late` twice (once per sending) and `stopped` never.
        response_db = create_engine(rs.env["FERRY_RESPONSE_DATABASE_URL"])
        try:
            with response_db.connect() as rdb:
                runs = rdb.execute(
                    text(
                        "SELECT request_id, attempt, status FROM executions"
                        " WHERE request_id IN (:a, :b) ORDER BY id"
                    ),
                    {"a": late, "b": stopped},
                ).all()
                states = dict(
                    rdb.execute(
                        text("SELECT id, status FROM imported_requests WHERE id IN (:a, :b)"),
                        {"a": late, "b": stopped},
                    ).all()
                )
        finally:
            response_db.dispose()
        assert [tuple(r) for r in runs] == [(late, 1, "DONE"), (late, 2, "DONE")]
        assert states == {late: "DONE", stopped: "CANCELLED"}
    engine.dispose()
