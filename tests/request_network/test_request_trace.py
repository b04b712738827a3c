"""One correlation id follows a request across the gap and back, and `ferry request trace`
tells its life (docs/OPERATIONS.md, "Following one request").

Both networks' real services, on PostgreSQL and on SQLite, in one process: submit (with the
id of the HTTP call bound, as the API's edge binds it), export, import, execute against a
real OpenSearch-compatible server, export the result, import it, read it. The batch files
are read back, and every log line each step writes is collected with the log context it
was written in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import orjson
import pytest
from opentelemetry import context as otel_context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
from sqlalchemy import select
from structlog.contextvars import bound_contextvars, get_contextvars

from ferry.demo import DATA
from request_network import models as rq
from request_network.services import requests, trace
from response_network import models as rs
from response_network.services import admin_requests
from response_network.services import trace as response_trace
from response_network.services.documents import read_jsonl
from response_network.services.executor import claim, execute
from response_network.services.identity import load_profile_types
from response_network.services.search import SearchBackend, make_client
from shared.problems import Problem
from tests.test_cli import demo_env, ferry
from tests.transfer.protocol.test_bulk_exchange import BACKENDS, QUERY, make_gap

CID = "client-chosen:trace_42.a"
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


@pytest.fixture(scope="module")
def backend(osmem_server):
    search = osmem_server.clone()
    backend = SearchBackend(make_client(search.url, compat_headers=False))
    backend.bulk_load("articles", read_jsonl(DATA / "articles.jsonl"))
    yield backend
    backend.close()
    search.close()


class Lines(logging.Handler):
    """Every line logged while installed, with the log context (structlog's contextvars) it
    was written in: what the house formatter puts on the line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[logging.LogRecord, dict]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record, dict(get_contextvars())))

    def naming(self, cid: str) -> list[tuple[str, dict]]:
        """(message, context) of each line that names `cid`: on the line, in its context,
        or among the requests it lists."""
        found = []
        for record, context in self.seen:
            fields = {**context, **record.__dict__}
            listed = getattr(record, "correlation_ids", None) or []
            if fields.get("correlation_id") == cid or cid in listed:
                found.append((record.getMessage(), context))
        return found


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("ferry")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def records_in(directory: Path, stream: str) -> list[dict]:
    """The data records of every `stream` batch file in `directory`."""
    found = []
    for path in sorted(directory.glob(f"{stream}-*.jsonl")):
        for line in path.read_bytes().splitlines()[1:-1]:
            record = orjson.loads(line)
            if record["type"] != "ack":
                found.append(record)
    return found


def submit(gap, request_id_of_the_call: str | None) -> rq.Request:
    """A submission as the API makes it, inside an HTTP call with that id (or none)."""
    gap.seed(0)  # the user and profile type
    user = gap.rq.get_one(rq.User, "u-alice")
    if request_id_of_the_call is None:
        made = requests.create(user, session=gap.rq, profile_type="articles", query=QUERY)
    else:
        with bound_contextvars(request_id=request_id_of_the_call):
            made = requests.create(user, session=gap.rq, profile_type="articles", query=QUERY)
    gap.rq.commit()
    return made


def run_executor(gap, backend) -> None:
    load_profile_types(DATA / "profile_types.json", session=gap.rs)
    gap.rs.commit()
    ids = claim(session=gap.rs, limit=100)
    gap.rs.commit()
    report = execute(backend, ids, session=gap.rs, chunk_size=10, timeout_s=10)
    gap.rs.commit()
    assert report.done == len(ids) and report.failed == 0


def read_response(gap, rid: str) -> None:
    user = gap.rq.get_one(rq.User, "u-alice")
    settings = gap.settings["request"]
    requests.get_response(
        user, rid, sessions=lambda: nullcontext(gap.rq), cache=None, settings=settings
    )
    gap.rq.commit()


def full_cycle(gap, backend, cid: str | None) -> str:
    """Submit, and take the request all the way round to its first read; its id."""
    rid = submit(gap, cid).id
    gap.export_requests()
    gap.import_requests()
    run_executor(gap, backend)
    gap.export_results()
    outcomes = gap.import_results()
    assert {o.status for o in outcomes} == {"imported"}, outcomes
    read_response(gap, rid)
    return rid


def test_the_correlation_id_goes_round_the_gap_and_names_every_step(gap, backend, lines):
    rid = submit(gap, CID).id
    assert gap.rq.get_one(rq.Request, rid).correlation_id == CID

    (sent,) = gap.export_requests().batches
    (record,) = records_in(gap.settings["request"].outbox, "requests")
    assert (record["id"], record["data"]["correlation_id"]) == (rid, CID)
    assert "traceparent" not in record["data"], "tracing is off: the field is left out"

    gap.import_requests()
    gap.rs.expire_all()
    assert gap.rs.get_one(rs.ImportedRequest, rid).correlation_id == CID

    run_executor(gap, backend)
    result_row = gap.rs.get_one(rs.Result, rid)
    assert (result_row.status, result_row.correlation_id) == (rs.DONE, CID)

    (returned,) = gap.export_results().batches
    (result,) = records_in(gap.settings["response"].outbox, "results")
    assert (result["id"], result["data"]["correlation_id"]) == (rid, CID)

    gap.import_results()
    read_response(gap, rid)
    gap.rq.expire_all()
    response = gap.rq.get_one(rq.Response, rid)
    first_read = response.first_read_at
    assert first_read is not None
    read_response(gap, rid)  # a second read changes nothing
    gap.rq.expire_all()
    assert gap.rq.get_one(rq.Response, rid).first_read_at == first_read

    steps = lines.naming(CID)
    messages = [message for message, _ in steps]
    expected = [
        f"request {rid} submitted",
        f"exported in {sent.path.name}: 1 request",
        "requests imported: 1 request",
        re.compile(rf"request {rid} executed: \d+ hits in \S+ ms"),
        f"answers exported in {returned.path.name}: 1 request",
        "answers imported: 1 request",
        f"response to request {rid} first read",
    ]
    assert len(messages) == len(expected), messages
    for message, wanted in zip(messages, expected, strict=True):
        assert wanted.fullmatch(message) if isinstance(wanted, re.Pattern) else message == wanted

    # Batch work names its batch and stream; execution binds the request's own ids.
    contexts = [context.items() for _, context in steps]
    for step, batch in ((1, sent), (2, sent), (4, returned), (5, returned)):
        assert contexts[step] >= {"batch_id": batch.batch_id, "stream": batch.stream}.items()
    assert contexts[3] >= {"correlation_id": CID, "ferry_request_id": rid}.items()


def test_the_trace_context_of_the_submission_goes_round_too(gap, backend):
    """Submitted inside a span (as the API's tracing makes one), the request carries its
    W3C trace context to the response network, whose result carries it back."""
    span = NonRecordingSpan(
        SpanContext(
            trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
            span_id=0x00F067AA0BA902B7,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    token = otel_context.attach(set_span_in_context(span))
    try:
        rid = submit(gap, CID).id
    finally:
        otel_context.detach(token)
    assert gap.rq.get_one(rq.Request, rid).traceparent == TP

    gap.export_requests()
    (record,) = records_in(gap.settings["request"].outbox, "requests")
    assert record["data"]["traceparent"] == TP
    gap.import_requests()
    assert gap.rs.get_one(rs.ImportedRequest, rid).traceparent == TP
    run_executor(gap, backend)
    gap.export_results()
    (result,) = records_in(gap.settings["response"].outbox, "results")
    assert (result["data"]["traceparent"], result["data"]["correlation_id"]) == (TP, CID)
    assert {o.status for o in gap.import_results()} == {"imported"}
    assert trace.trace(rid, session=gap.rq)["traceparent"] == TP


def test_a_request_submitted_outside_a_call_gets_an_id_of_its_own(gap, backend):
    rid = full_cycle(gap, backend, None)
    made = gap.rq.get_one(rq.Request, rid).correlation_id
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert gap.rs.get_one(rs.ImportedRequest, rid).correlation_id == made
    assert trace.trace(rid, session=gap.rq)["correlation_id"] == made


def test_requests_from_before_correlation_ids_still_go_round(gap, backend, lines):
    """Old outbox rows (no correlation id) travel as records without the field."""
    (rid,) = gap.seed(1)
    gap.export_requests()
    (record,) = records_in(gap.settings["request"].outbox, "requests")
    assert "correlation_id" not in record["data"]
    gap.import_requests()
    run_executor(gap, backend)
    gap.export_results()
    (result,) = records_in(gap.settings["response"].outbox, "results")
    assert "correlation_id" not in result["data"]
    assert {o.status for o in gap.import_results()} == {"imported"}
    gap.rq.expire_all()
    assert gap.rq.get_one(rq.Request, rid).status == rq.COMPLETED
    steps = trace.trace(rid, session=gap.rq)["steps"]
    assert [s["done"] for s in steps] == [True] * 6 + [False]  # not read yet
    imported = [r for r, _ in lines.seen if r.getMessage() == "requests imported: 1 request"]
    assert [(r.correlation_ids, r.ferry_request_ids) for r in imported] == [([], [rid])]


def test_the_trace_lists_every_step_in_order_with_its_details(gap, backend):
    rid = full_cycle(gap, backend, CID)

    found = trace.trace(rid, session=gap.rq)

    assert found["request_id"] == rid and found["correlation_id"] == CID
    assert (found["status"], found["attempt"], found["username"]) == ("COMPLETED", 1, "alice")
    steps = found["steps"]
    assert [s["step"] for s in steps] == list(trace.STEPS)
    assert all(s["done"] and s["at"] is not None for s in steps), steps
    assert [s["network"] for s in steps] == ["request", "request"] + ["response"] * 3 + [
        "request",
        "request",
    ]
    by_step = {s["step"]: s for s in steps}
    sent = gap.rq.scalars(select(rq.Batch).where(rq.Batch.stream == "requests")).one()
    returned = gap.rq.scalars(select(rq.Batch).where(rq.Batch.stream == "results")).one()
    assert by_step["exported"]["batch_file"] == sent.filename
    assert by_step["imported"]["at"] == sent.acked_at  # known from the ack
    assert by_step["result_exported"]["batch_id"] == returned.id
    assert by_step["result_imported"]["batch_file"] == returned.filename
    executed = by_step["executed"]["details"]
    assert executed["status"] == "DONE" and executed["hits"] >= 0 and executed["took_ms"] >= 0
    assert by_step["submitted"]["details"]["correlation_id"] == CID
    # The response network's own part of it.
    there = response_trace.trace(rid, session=gap.rs)
    assert there["correlation_id"] == CID
    assert admin_requests.describe(rid, session=gap.rs)["correlation_id"] == CID
    assert [s["step"] for s in there["steps"]] == [
        "imported",
        "executed",
        "result",
        "result_exported",
    ]


def test_a_request_not_exported_yet_has_only_its_first_step(gap):
    rid = submit(gap, CID).id
    steps = trace.trace(rid, session=gap.rq)["steps"]
    assert [s["done"] for s in steps] == [True] + [False] * 6
    assert [s["at"] is None for s in steps] == [False] + [True] * 6


def test_an_unknown_request_has_no_trace(gap):
    with pytest.raises(Problem, match=f"no request {MISSING} on this network"):
        trace.trace(MISSING, session=gap.rq)


# -- the commands, as a user runs them -----------------------------------------------------


@pytest.mark.parametrize("gap", ["sqlite"], indirect=True)
def test_ferry_request_trace_shows_the_life_of_a_request(gap, backend, tmp_path, keys):
    rid = full_cycle(gap, backend, CID)
    env = demo_env(tmp_path, keys)

    table = ferry("request", "trace", rid, env=env)
    assert table.returncode == 0, table.stdout + table.stderr
    assert CID in table.stdout and "alice" in table.stdout
    rows = [line for line in table.stdout.splitlines() if line.startswith("│")]
    named = [row.split("│")[1].strip() for row in rows]
    assert [n for n in named if n] == list(trace.STEPS), table.stdout

    as_json = ferry("request", "trace", rid, "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    found = orjson.loads(as_json.stdout)
    assert [s["step"] for s in found["steps"]] == list(trace.STEPS)
    assert all(s["done"] for s in found["steps"]) and found["correlation_id"] == CID

    there = ferry("response", "trace", rid, "--json", env=env)
    assert there.returncode == 0, there.stderr
    assert orjson.loads(there.stdout)["correlation_id"] == CID


@pytest.mark.parametrize("gap", ["sqlite"], indirect=True)
@pytest.mark.parametrize("network", ["request", "response"])
def test_ferry_trace_of_an_unknown_or_malformed_id_says_so(gap, tmp_path, keys, network):
    env = demo_env(tmp_path, keys)

    unknown = ferry(network, "trace", MISSING, env=env)
    assert unknown.returncode == 1
    assert f"no request {MISSING} on this network" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    malformed = ferry(network, "trace", "not-a-uuid", env=env)
    assert malformed.returncode == 2
    assert "not a request id: 'not-a-uuid'" in malformed.stderr
    assert "Traceback" not in malformed.stderr
