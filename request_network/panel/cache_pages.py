"""The response cache: its statistics (`services.response_cache_stats.stats`, audited as
`cache.stats` like the API's), clearing all of it, one user's or one request's entries
(`services.response_cache_upkeep.clear`, `cache.cleared`) and maintaining it now
(`services.response_cache_upkeep.optimize`, `cache.optimized`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from request_network.services import response_cache_stats
from request_network.services import response_cache_upkeep as upkeep
from request_network.services.response_cache import Policy
from shared.panel import charts
from shared.panel.access import AdminViewer, PanelDep
from shared.panel.core import PREFIX
from shared.panel.forms import YES, Confirmed
from shared.problems import Problem
from shared.validation import RequestId, UserId

router = APIRouter()
PAGE = f"{PREFIX}/cache"
TARGETS = {"user": TypeAdapter(UserId), "request": TypeAdapter(RequestId)}


@router.get("/cache")
def cache_page(request: Request, panel: PanelDep, viewer: AdminViewer) -> Response:
    settings = panel.settings
    report, error = None, None
    try:
        with panel.unit() as session:
            report = response_cache_stats.stats(
                panel.redis(),
                session=session,
                actor=viewer.user_id,
                policy=Policy.of(settings, session=session),
            )
    except Problem as exc:  # Redis cannot be reached
        error = exc.detail
    chart = None
    if report is not None:
        hours = list(reversed(report["hours"]))
        chart = charts.bar_chart(
            [(h["hour"][11:13] + "h", 0) for h in hours],
            values=[(h["hits"], h["misses"]) for h in hours],
            series=("hits", "misses"),
            label="Cache hits and misses per hour, last 24 hours (UTC)",
            every=3,
        )
    return panel.render(
        request,
        viewer,
        "cache.html",
        title="Response cache",
        report=report,
        error=error,
        chart=chart,
        legend=charts.legend(("hits", "misses")),
    )


@router.post("/cache/clear")
def clear(
    request: Request,
    panel: PanelDep,
    viewer: AdminViewer,
    scope: Annotated[str, Form(max_length=8)] = "all",
    target: Annotated[str, Form(max_length=64)] = "",
    confirmed: Confirmed = "",
) -> Response:
    target = target.strip()
    if scope not in ("all", "user", "request"):
        return panel.redirect(viewer, PAGE, f"unknown scope {scope!r}", "error")
    if scope != "all":
        try:
            TARGETS[scope].validate_python(target)
        except ValidationError:
            return panel.redirect(viewer, PAGE, f"not a {scope} id: {target!r}", "error")
    if confirmed != YES:
        what = "every cached response" if scope == "all" else f"the cached entries of {target}"
        return panel.confirm(
            request,
            viewer,
            question=f"Drop {what}? The next read of each goes to the database.",
            action=f"{PAGE}/clear",
            fields={"scope": scope, "target": target},
            back=PAGE,
        )
    out = None
    with panel.outcome(viewer), panel.unit() as session:
        out = upkeep.clear(
            panel.redis(),
            session=session,
            actor=viewer.user_id,
            user_id=target if scope == "user" else None,
            request_id=target if scope == "request" else None,
        )
    if out is None:
        return panel.redirect(viewer, PAGE)
    said = f"Cleared ({out['scope']} {out['target']}): {out['entries']} entries, {out['bytes']} B"
    return panel.redirect(viewer, PAGE, said)


@router.post("/cache/optimize")
def optimize(panel: PanelDep, viewer: AdminViewer) -> Response:
    settings = panel.settings
    report = None
    with panel.outcome(viewer), panel.unit() as session:
        report = upkeep.optimize(
            panel.redis(),
            session=session,
            policy=Policy.of(settings, session=session),
            prewarm_seconds=settings.response_cache_prewarm_seconds,
            prewarm_max=settings.response_cache_prewarm_max,
            actor=viewer.user_id,
        )
    if report is None:
        return panel.redirect(viewer, PAGE)
    dropped = sum(report["dropped"].values())
    said = f"Maintenance done: {dropped} dropped, {report['prewarmed']} pre-warmed"
    return panel.redirect(viewer, PAGE, said)
