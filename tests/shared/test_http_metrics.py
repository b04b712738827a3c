"""HTTP metrics (shared.http_metrics): each request is timed under the template of the route
that answered it, never its raw path; a request answered before routing is named by the
route it asked for; unknown paths and methods fold into fixed labels; the in-flight gauge
counts a request while it is inside and lets go of it after, whatever happened."""

from __future__ import annotations

import uuid

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from shared.http import BodySizeLimit
from shared.http_metrics import UNMATCHED, HttpMetrics

COUNT = "ferry_http_request_duration_seconds_count"
IN_FLIGHT = "ferry_http_requests_in_flight"
# Route templates of their own, so other tests' requests never land on these series.
ITEM = "/test-http-metrics/items/{item_id}"
BROKEN = "/test-http-metrics/broken"
UPLOAD = "/test-http-metrics/upload"
INSIDE = "/test-http-metrics/inside"


def _count(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value(COUNT, labels) or 0.0


def _routes_seen() -> set[str]:
    return {
        sample.labels["route"]
        for family in REGISTRY.collect()
        if family.name == "ferry_http_request_duration_seconds"
        for sample in family.samples
        if sample.name == COUNT
    }


@pytest.fixture(scope="module")
def client() -> TestClient:
    router = APIRouter(prefix="/test-http-metrics")  # a prefixed router, as the operator's

    @router.get("/items/{item_id}")
    def item(item_id: str) -> dict:
        return {"id": item_id}

    @router.get("/broken")
    def broken() -> dict:
        raise RuntimeError("this endpoint fails")

    @router.post("/upload")
    def upload() -> dict:
        return {}

    @router.get("/inside")
    def inside() -> dict:
        return {"in_flight": REGISTRY.get_sample_value(IN_FLIGHT)}

    app = FastAPI()
    app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=1024)
    app.add_middleware(HttpMetrics, fastapi_app=app)
    return TestClient(app, raise_server_exceptions=False)


def test_a_parametrised_route_is_counted_under_its_template(client):
    before = _count(ITEM, "GET", "2xx")
    item_id = str(uuid.uuid4())
    for _ in range(2):
        assert client.get(f"/test-http-metrics/items/{item_id}").status_code == 200
    assert _count(ITEM, "GET", "2xx") == before + 2
    assert not any(item_id in route for route in _routes_seen())


def test_the_status_class_is_the_reply_s_and_an_unhandled_error_is_a_5xx(client):
    before = _count(BROKEN, "GET", "5xx")
    assert client.get("/test-http-metrics/broken").status_code == 500
    assert _count(BROKEN, "GET", "5xx") == before + 1


def test_unknown_paths_and_methods_fold_into_fixed_labels(client):
    before_unmatched = _count(UNMATCHED, "GET", "4xx")
    for n in range(3):
        assert client.get(f"/test-http-metrics/nothing-here-{n}").status_code == 404
    assert _count(UNMATCHED, "GET", "4xx") == before_unmatched + 3
    assert not any("nothing-here" in route for route in _routes_seen())

    before_other = _count(ITEM, "other", "4xx")
    assert client.request("BREW", "/test-http-metrics/items/1").status_code == 405
    assert _count(ITEM, "other", "4xx") == before_other + 1


def test_a_request_refused_before_routing_is_named_by_the_route_it_asked_for(client):
    before = _count(UPLOAD, "POST", "4xx")
    reply = client.post("/test-http-metrics/upload", content=b"x" * 4096)
    assert reply.status_code == 413  # the body limit answered; the router never saw it
    assert _count(UPLOAD, "POST", "4xx") == before + 1


def test_a_request_is_in_flight_while_inside_and_not_after(client):
    before = REGISTRY.get_sample_value(IN_FLIGHT)
    reply = client.get("/test-http-metrics/inside")
    assert reply.json()["in_flight"] == before + 1
    client.get("/test-http-metrics/broken")
    assert REGISTRY.get_sample_value(IN_FLIGHT) == before
