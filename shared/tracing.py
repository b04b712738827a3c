"""Tracing with OpenTelemetry, off unless configured (docs/OPERATIONS.md, "Tracing").

Set `OTEL_EXPORTER_OTLP_ENDPOINT` (or the network's `otel_endpoint` setting) and each
process of that network sends its spans there over OTLP/HTTP, as service `ferry-request` or
`ferry-response`: the API's requests (FastAPI), Celery tasks, SQL statements (SQLAlchemy),
Redis commands and search calls (the Elasticsearch client traces itself once a tracer
provider is set). Unset, nothing is installed and nothing is sent.

A query's trace crosses the gap in its batch records: the request record carries the W3C
`traceparent` of the submission (`current_traceparent`), the response network runs the
query in a span whose parent it is (`span_from`), and the result record brings that span's
`traceparent` back, so the spans of both networks join into one trace.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACER = "ferry"
_PROPAGATOR = TraceContextTextMapPropagator()
_LOCK = threading.Lock()
_INSTALLED: dict[str, Any] = {}  # what this process installed: its provider, once


def endpoint(settings: Any) -> str | None:
    """Where spans go: the setting, else the standard environment variable; None: off."""
    return getattr(settings, "otel_endpoint", None) or os.environ.get(ENDPOINT_ENV) or None


def setup(service: str, settings: Any, *, exporter: Any = None) -> Any:
    """Install this process's tracer provider and instrument the libraries, once; the
    provider, or None when tracing is off. `exporter` replaces OTLP (tests pass an
    in-memory one)."""
    url = endpoint(settings)
    if exporter is None and url is None:
        return None
    with _LOCK:
        if "provider" in _INSTALLED:
            return _INSTALLED["provider"]
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            base = url.rstrip("/")
            target = base if base.endswith("/v1/traces") else f"{base}/v1/traces"
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=target)))
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _instrument_libraries()
        _INSTALLED["provider"] = provider
        return provider


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument()  # engines made from now on
    RedisInstrumentor().instrument()
    CeleryInstrumentor().instrument()


def shutdown() -> None:
    """Send what is pending, stop instrumenting the libraries and forget the provider (a
    process that stops tracing; the tests)."""
    with _LOCK:
        provider = _INSTALLED.pop("provider", None)
        if provider is None:
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        for instrumentor in (SQLAlchemyInstrumentor(), RedisInstrumentor(), CeleryInstrumentor()):
            instrumentor.uninstrument()
        provider.shutdown()


def instrument_app(app: Any) -> None:
    """Trace the API's requests (health checks and scrapes left out), when tracing is on."""
    if "provider" not in _INSTALLED:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="/health,/metrics")


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER)


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the span in progress; None when there is none (tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span_from(
    traceparent: str | None, name: str, attributes: Mapping[str, Any] | None = None
) -> Iterator[trace.Span]:
    """A span named `name` whose parent is the span `traceparent` names (from a batch
    record); a root span when there is none. Costs next to nothing when tracing is off."""
    context = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    with tracer().start_as_current_span(
        name, context=context, attributes=dict(attributes or {})
    ) as span:
        yield span


def enabled() -> bool:
    """Whether this process traces (a provider was installed)."""
    return "provider" in _INSTALLED


__all__ = [
    "ENDPOINT_ENV",
    "current_traceparent",
    "enabled",
    "endpoint",
    "instrument_app",
    "setup",
    "shutdown",
    "span_from",
    "tracer",
]
