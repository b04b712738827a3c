"""Prometheus metrics, for operators (an API key with the `operator` scope, or a login)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from request_network.api.deps import OperatorDep
from request_network.services import metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def scrape(caller: OperatorDep) -> Response:
    """Every process's counters (multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set)
    and the gauges read now: requests by status, queue depths."""
    return Response(metrics.scrape(caller.settings), media_type=CONTENT_TYPE_LATEST)
