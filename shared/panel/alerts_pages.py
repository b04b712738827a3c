"""The alerts and notifications pages, the same on both networks: operational alerts with
their history and an acknowledge button, and the admin's own in-app notifications (mark
one or all read); each list sorted by its columns. Each network builds the router with a
`unit()` that opens its unit of work and its `services.notifications` module, the one the
API's routes call (`shared.alerts_api`, `shared.notifications_api`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from shared.alerts import AlertSort
from shared.alerts_api import AlertId, alert_view
from shared.notifications import NotificationSort
from shared.notifications_api import NotificationId, notification_view
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import PREFIX
from shared.panel.paging import Paging, columns_of, sorting

AlertState = Literal["open", "acknowledged", "resolved"]
#: The columns the alert list sorts by (`shared.alerts.AlertSort`; severity by weight).
ALERT_SORTS = columns_of(AlertSort)
AlertOrder = sorting(ALERT_SORTS, "-opened_at")
#: The columns the notification list sorts by (`shared.notifications.NotificationSort`:
#: read is unread first, severity by weight).
NOTIFICATION_SORTS = columns_of(NotificationSort)
NotificationOrder = sorting(NOTIFICATION_SORTS, "read")


def build_router(unit: Callable[[], AbstractContextManager[Session]], service: Any) -> APIRouter:
    router = APIRouter()

    @router.get("/alerts")
    def alerts(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        paging: Paging,
        order: AlertOrder,
        state: Annotated[AlertState | None, Query()] = None,
    ) -> Response:
        with unit() as session:
            rows, total = service.alert_page(
                session=session,
                state=state,
                limit=paging.limit,
                offset=paging.offset,
                sort=order.value,
            )
            items = [alert_view(r) for r in rows]
        return panel.render(
            request,
            viewer,
            "alerts.html",
            title="Alerts",
            items=items,
            state=state,
            sort=order,
            page=paging.of(total),
        )

    @router.post("/alerts/{alert_id}/ack")
    def acknowledge(
        request: Request, panel: PanelDep, viewer: AdminViewer, alert_id: AlertId
    ) -> Response:
        with panel.outcome(viewer, done=f"Alert {alert_id} acknowledged"), unit() as session:
            service.acknowledge(alert_id, session=session, actor=viewer.user_id)
        return panel.redirect(viewer, f"{PREFIX}/alerts")

    @router.get("/notifications")
    def notifications(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        paging: Paging,
        order: NotificationOrder,
        unread: bool = False,
    ) -> Response:
        with unit() as session:
            rows, total, unread_count = service.page(
                viewer.user_id,
                session=session,
                limit=paging.limit,
                offset=paging.offset,
                unread=unread,
                sort=order.value,
            )
            items = [notification_view(r) for r in rows]
        return panel.render(
            request,
            viewer,
            "notifications.html",
            title="Notifications",
            items=items,
            unread=unread,
            unread_count=unread_count,
            sort=order,
            page=paging.of(total),
        )

    @router.post("/notifications/{notification_id}/read")
    def read_one(panel: PanelDep, viewer: AdminViewer, notification_id: NotificationId) -> Response:
        with panel.outcome(viewer), unit() as session:
            service.mark_read(viewer.user_id, notification_id, session=session)
        return panel.redirect(viewer, f"{PREFIX}/notifications")

    @router.post("/notifications/read-all")
    def read_all(panel: PanelDep, viewer: AdminViewer) -> Response:
        with unit() as session:
            marked = service.mark_all_read(viewer.user_id, session=session)
        return panel.redirect(viewer, f"{PREFIX}/notifications", f"{marked} marked read")

    return router
