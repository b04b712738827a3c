"""Charts drawn on the server as inline SVG: no script, no inline style (colours come from
classes in panel.css), every label escaped. Each function returns markup a template can
place as it is; the SVG scales to its container (`viewBox`, width 100 %).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PAD_LEFT, PAD_BOTTOM, PAD_TOP = 44, 22, 8


def _nice_max(value: float) -> float:
    """The axis top: the data's maximum rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    scale = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * scale:
            return float(step * scale)
    return float(10 * scale)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def bar_chart(
    points: Sequence[tuple[str, float]],
    *,
    label: str,
    series: Sequence[str] = ("value",),
    values: Sequence[Sequence[float]] | None = None,
    width: int = 1000,
    height: int = 180,
    every: int = 1,
) -> Markup:
    """Bars over labelled slots. With `values` (one sequence per slot, one number per
    series) the bars of each slot stand side by side, coloured per series (`series-0`, …);
    otherwise `points` gives one value per slot. `every`: label one slot in so many."""
    rows = [list(v) for v in values] if values is not None else [[v] for _, v in points]
    names = [name for name, _ in points]
    top = _nice_max(max((max(r) for r in rows if r), default=0))
    plot_w, plot_h = width - PAD_LEFT - 4, height - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(rows), 1)
    bar = max(slot * 0.8 / max(len(series), 1), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = PAD_TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_number(top * fraction)}</text>"
        )
    for i, (name, row) in enumerate(zip(names, rows, strict=True)):
        x0 = PAD_LEFT + i * slot + slot * 0.1
        for k, value in enumerate(row):
            h = plot_h * (value / top) if top else 0
            x, y = x0 + k * bar, PAD_TOP + plot_h - h
            what = f"{name}: {_number(value)}" + (f" {series[k]}" if len(series) > 1 else "")
            parts.append(
                f'<rect class="bar series-{k}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{max(h, 0):.1f}"><title>{escape(what)}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x0 + slot * 0.4:.1f}" y="{height - 6}" '
                f'text-anchor="middle">{escape(name)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def legend(series: Sequence[str]) -> Markup:
    items = "".join(
        f'<li><svg class="swatch" viewBox="0 0 10 10" width="10" height="10">'
        f'<rect class="bar series-{k}" width="10" height="10"/></svg> {escape(name)}</li>'
        for k, name in enumerate(series)
    )
    return Markup(f'<ul class="legend">{items}</ul>')  # noqa: S704 - names escaped


def usage_bar(
    count: int | None,
    limit: int,
    *,
    soft_ratio: float,
    grace_ratio: float,
    state: str | None,
    width: int = 320,
    height: int = 18,
) -> Markup:
    """One window's use against its limit: the bar runs to the grace ceiling
    (`grace_ratio` × limit), with marks where the soft warning starts, at the limit, and at
    the end of grace. Its class says the state (`ok`, `soft`, `grace`, `blocked`)."""
    ceiling = max(limit * grace_ratio, 1)
    used = 0 if count is None else min(count, ceiling)
    fill = width * used / ceiling
    css = escape(state or "unknown")
    what = "usage unknown (rate limiter unreachable)" if count is None else f"{count} of {limit}"
    parts = [
        f'<svg class="usage" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(what)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(what)}</title>",
        f'<rect class="track" width="{width}" height="{height}"/>',
        f'<rect class="fill state-{css}" width="{fill:.1f}" height="{height}"/>',
    ]
    for name, at in (("soft", soft_ratio), ("limit", 1.0), ("grace", grace_ratio)):
        x = min(width * at * limit / ceiling, width - 1) if limit else 0
        parts.append(
            f'<line class="mark mark-{name}" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}">'
            f"<title>{name}: {_number(at * limit)}</title></line>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()
