"""The dashboard, on both networks: `/dashboard` and `/dashboard/live`, the same figures alone,
which the page fetches again every 15 seconds (htmx). Each network gives its figures (its
`services.health.detailed_health` and `services.stats.stats`, as the admin API); what both
show, health and the gap, comes from `common_figures`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from shared.panel import charts
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import NO_STORE, Panel

BATCH_SERIES = ("in", "out")


def common_figures(report: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """What both dashboards show: the health report, the statistics, the gap (the transfer
    component's details), the quarantine count and batches in and out per day (chart)."""
    days = stats["batches"]["days"]
    by_name = {c.name: c for c in report.components}
    transfer = by_name["transfer"].details if "transfer" in by_name else {}
    quarantine = by_name["quarantine"].details if "quarantine" in by_name else {}
    return {
        "report": report,
        "stats": stats,
        "transfer": transfer,
        "quarantined": quarantine.get("count"),
        "batches_chart": charts.bar_chart(
            [(d["day"][5:], 0) for d in days],
            values=[(d["in"]["batches"], d["out"]["batches"]) for d in days],
            series=BATCH_SERIES,
            label="Batches in and out per day, last 14 days (UTC)",
            every=2,
        ),
        "batches_legend": charts.legend(BATCH_SERIES),
    }


def build_router(figures: Callable[[Panel], dict[str, Any]]) -> APIRouter:
    """`figures`: the network's dashboard figures (`common_figures` and its own)."""
    router = APIRouter()

    @router.get("/dashboard")
    def dashboard(request: Request, panel: PanelDep, viewer: AdminViewer) -> Response:
        return panel.render(request, viewer, "dashboard.html", title="Dashboard", **figures(panel))

    @router.get("/dashboard/live")
    def live(panel: PanelDep, viewer: AdminViewer) -> Response:
        """The dashboard's figures alone (what htmx swaps in)."""
        html = panel.env.get_template("dashboard_live.html").render(**figures(panel))
        return HTMLResponse(html, headers=NO_STORE)

    return router
