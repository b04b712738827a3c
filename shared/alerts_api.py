"""The alert routes, the same on both networks (`shared.alerts`): the alerts with their
history, and acknowledging one. Each network builds the router with its admin dependency
and a `work(caller)` giving (session, user id); `service` is its `services.notifications`.
(No `from __future__ import annotations`: FastAPI must see the dependency evaluated.)
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from shared.alerts import AlertSort
from shared.validation import PageLimit, PageOffset

AlertId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class AlertStep(BaseModel):
    at: datetime
    what: str = Field(description="opened, escalated, acknowledged or resolved")
    level: str | None = None
    by: str | None = None
    title: str | None = None


class AlertOut(BaseModel):
    id: int
    kind: str
    severity: str
    title: str
    body: str
    state: Literal["open", "acknowledged", "resolved"]
    opened_at: datetime
    level: int = Field(description="How many times it has escalated")
    escalated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    history: list[AlertStep]


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


def alert_view(alert: Any) -> AlertOut:
    if alert.resolved_at is not None:
        state = "resolved"
    elif alert.acknowledged_at is not None:
        state = "acknowledged"
    else:
        state = "open"
    return AlertOut.model_validate(
        {
            **{k: getattr(alert, k) for k in AlertOut.model_fields if k != "state"},
            "state": state,
        }
    )


def build_router(
    admin_dep: Any,
    work: Callable[[Any], AbstractContextManager[tuple[Session, str]]],
    service: Any,
) -> APIRouter:
    router = APIRouter(tags=["admin-alerts"])

    @router.get("/api/v1/admin/alerts", response_model=AlertPage)
    def list_alerts(
        caller: admin_dep,
        state: Annotated[
            Literal["open", "acknowledged", "resolved"] | None,
            Query(description="Only alerts in this state"),
        ] = None,
        limit: Annotated[PageLimit, Query()] = 50,
        offset: Annotated[PageOffset, Query()] = 0,
        sort: Annotated[
            AlertSort,
            Query(description="A column, `-` first for descending (default: newest first)"),
        ] = "-opened_at",
    ) -> AlertPage:
        """Operational alerts, newest first unless sorted otherwise, each with its history
        (opened, escalated, acknowledged, resolved)."""
        with work(caller) as (session, _user_id):
            rows, total = service.alert_page(
                session=session, state=state, limit=limit, offset=offset, sort=sort
            )
            items = [alert_view(r) for r in rows]
        return AlertPage(items=items, total=total, limit=limit, offset=offset)

    @router.post(
        "/api/v1/admin/alerts/{alert_id}/ack",
        response_model=AlertOut,
        responses={404: {"description": "No such alert"}, 409: {"description": "Resolved"}},
    )
    def acknowledge(caller: admin_dep, alert_id: AlertId) -> AlertOut:
        """Acknowledge an alert: it escalates no further (again: no change)."""
        with work(caller) as (session, user_id):
            return alert_view(service.acknowledge(alert_id, session=session, actor=user_id))

    return router


__all__ = ["build_router"]
