"""The dashboard (`shared.panel.dashboard`): every component's health at a glance, requests
by status, submissions per hour (24 h) and batches in and out per day (14 days) as charts,
turnaround, the oldest unacknowledged batch, the quarantine, the response cache's hit ratio
and the rate limiter's decisions (`services.health.detailed_health`, `services.stats.stats`)."""

from __future__ import annotations

from typing import Any

from request_network.services import health, stats
from shared.panel import charts, dashboard
from shared.panel.core import Panel


def figures(panel: Panel) -> dict[str, Any]:
    report = health.detailed_health(panel.settings)
    with panel.reads() as session:
        now = stats.stats(session=session, cache=panel.redis())
    hours = now["submissions_per_hour"]
    return dashboard.common_figures(report, now) | {
        "submissions_chart": charts.bar_chart(
            [(h["hour"][11:13] + "h", h["count"]) for h in hours],
            label="Submissions per hour, last 24 hours (UTC)",
            every=3,
        ),
    }


router = dashboard.build_router(figures)
