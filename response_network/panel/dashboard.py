"""The dashboard (`shared.panel.dashboard`): every component's health at a glance (the search
cluster, the index of each profile type and the circuit breakers among them), imported
requests by status, executions per hour (24 h) and batches in and out per day (14 days) as
charts, per profile type the failure rate and query latency p50/p95, the oldest
unacknowledged batch, the quarantine (`services.health.detailed_health`,
`services.stats.stats`, as the admin API)."""

from __future__ import annotations

from typing import Any

from response_network.services import health, stats
from shared.panel import charts, dashboard
from shared.panel.core import Panel

EXECUTION_SERIES = ("executions", "failed")


def figures(panel: Panel) -> dict[str, Any]:
    report = health.detailed_health(panel.settings)
    with panel.reads() as session:
        now = stats.stats(session=session)
    hours = now["executions_per_hour"]
    return dashboard.common_figures(report, now) | {
        "executions_chart": charts.bar_chart(
            [(h["hour"][11:13] + "h", 0) for h in hours],
            values=[(h["executions"], h["failed"]) for h in hours],
            series=EXECUTION_SERIES,
            label="Executions per hour, last 24 hours (UTC)",
            every=3,
        ),
        "executions_legend": charts.legend(EXECUTION_SERIES),
    }


router = dashboard.build_router(figures)
