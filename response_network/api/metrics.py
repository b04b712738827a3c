"""Prometheus metrics, for operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from response_network.api.deps import Caller, caller
from response_network.services import metrics

router = APIRouter(tags=["health"])
OperatorDep = Annotated[Caller, Depends(caller("operator"))]


@router.get("/metrics", response_class=Response)
def scrape(operator: OperatorDep) -> Response:
    """Every process's counters (multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set):
    batches, task runs, search latency; and the queue depths read now."""
    return Response(metrics.scrape(operator.settings), media_type=CONTENT_TYPE_LATEST)
