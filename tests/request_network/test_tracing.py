"""Tracing (OpenTelemetry), with the SDK's in-memory exporter: off unless configured; when
on, the API's requests, Redis commands and a query's life are spans, and the query's spans
on both networks join into one trace across the gap (the batch records carry the context).

Both networks run in this process (`make_gap`), against a real OpenSearch-compatible
server. The tracer is installed for each test and taken down after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.test.globals_test import reset_trace_globals
from request_api_helpers import make_settings

from request_network import models as rq
from request_network.app import create_app
from shared import tracing
from shared.cache import get_redis
from tests.conftest import REDIS_URL
from tests.request_network.test_request_trace import backend, full_cycle, submit
from tests.transfer.protocol.test_bulk_exchange import make_gap


@pytest.fixture
def spans(monkeypatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    exporter = InMemorySpanExporter()
    assert tracing.setup("ferry-test", object(), exporter=exporter) is not None
    yield exporter
    tracing.shutdown()
    reset_trace_globals()


__all__ = ["backend"]  # the search server with the demo articles (a fixture)


@pytest.fixture(params=["postgres"])
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


def named(exporter: InMemorySpanExporter, name: str, request_id: str | None = None) -> list:
    """The finished spans called `name` (of one request's, if given)."""
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    if request_id is not None:
        found = [s for s in found if s.attributes.get("ferry.request_id") == request_id]
    return found


def test_tracing_is_off_unless_an_endpoint_is_set(monkeypatch, api_db):
    monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    settings = make_settings(api_db)
    assert settings.otel_endpoint is None and tracing.endpoint(settings) is None
    assert tracing.setup("ferry-request", settings) is None
    assert not tracing.enabled() and tracing.current_traceparent() is None
    monkeypatch.setenv(tracing.ENDPOINT_ENV, "http://collector.example.org:4318")
    assert tracing.endpoint(settings) == "http://collector.example.org:4318"


def test_the_api_and_redis_are_traced(spans, api_db):
    with TestClient(create_app(make_settings(api_db))) as client:
        assert client.get("/api/v1/auth/me").status_code == 401
        assert client.get("/health").status_code == 200
    get_redis(REDIS_URL).ping()

    (call,) = [s for s in spans.get_finished_spans() if s.name == "GET /api/v1/auth/me"]
    assert call.attributes["http.status_code"] == 401
    assert call.resource.attributes["service.name"] == "ferry-test"
    assert not [s for s in spans.get_finished_spans() if "/health" in s.name], "left out"
    assert named(spans, "PING"), "Redis commands are spans"


def test_a_querys_spans_join_into_one_trace_across_the_gap(spans, gap, backend):
    with tracing.tracer().start_as_current_span("POST /api/v1/requests") as submitted:
        rid = submit(gap, "trace-me").id
    stored = gap.rq.get_one(rq.Request, rid).traceparent
    context = submitted.get_span_context()
    assert stored.split("-")[:3] == ["00", f"{context.trace_id:032x}", f"{context.span_id:016x}"]

    full_cycle(gap, backend, None)  # another request, untraced, goes round with it

    (executed,) = [
        s for s in named(spans, "ferry.execute") if s.attributes["ferry.request_id"] == rid
    ]
    assert executed.context.trace_id == context.trace_id  # the response network's span...
    assert executed.parent.span_id == context.span_id  # ...is a child of the submission's
    assert executed.attributes["ferry.correlation_id"] == "trace-me"
    assert executed.attributes["ferry.status"] == "DONE" and executed.attributes["ferry.hits"] > 0
    (arrived,) = named(spans, "ferry.result.imported", rid)
    assert arrived.context.trace_id == context.trace_id  # back on the request network
    assert arrived.parent.span_id == executed.context.span_id
    others = [s for s in named(spans, "ferry.execute") if s.attributes["ferry.request_id"] != rid]
    assert others and all(s.context.trace_id != context.trace_id for s in others)
