"""The panel's parts that need no server: SVG charts, lists, redirects, display filters, the
session store's timeouts (on an in-process Redis), and the import arrows of the panel."""

from __future__ import annotations

import re

import fakeredis
import pytest
from fastapi.exceptions import RequestValidationError
from markupsafe import Markup

from shared.panel import charts, templating
from shared.panel.core import safe_next
from shared.panel.forms import choice, whole_number
from shared.panel.paging import Pager, Sort, link, sort_rows
from shared.panel.sessions import SessionStore, digest, key_prefix


def test_a_bar_chart_has_one_bar_per_value_and_escapes_its_labels():
    svg = charts.bar_chart([("<b>", 3), ("10h", 0), ("11h", 7)], label="per <hour>")
    assert isinstance(svg, Markup)
    assert svg.count('<rect class="bar series-0"') == 3
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "per &lt;hour&gt;" in svg
    assert "style=" not in svg and "<script" not in svg
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"><title>', svg)]
    assert heights[1] == 0 and heights[2] > heights[0] > 0


def test_grouped_bars_colour_each_series():
    svg = charts.bar_chart(
        [("a", 0), ("b", 0)], values=[(1, 2), (3, 0)], series=("in", "out"), label="x"
    )
    assert svg.count("series-0") == 2 and svg.count("series-1") == 2
    assert "a: 1 in" in svg and "a: 2 out" in svg
    assert "in" in charts.legend(("in", "out"))


def test_an_empty_chart_still_draws():
    svg = charts.bar_chart([], label="nothing")
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_a_usage_bar_marks_soft_limit_and_grace():
    svg = charts.usage_bar(9, 10, soft_ratio=0.8, grace_ratio=1.1, state="soft", width=110)
    marks = dict(re.findall(r'class="mark mark-(\w+)" x1="([\d.]+)"', svg))
    assert {k: float(v) for k, v in marks.items()} == {"soft": 80.0, "limit": 100.0, "grace": 109.0}
    assert 'class="fill state-soft" width="90.0"' in svg
    unknown = charts.usage_bar(None, 10, soft_ratio=0.8, grace_ratio=1.1, state=None)
    assert "state-unknown" in unknown and "usage unknown" in unknown


def test_pager_and_sort():
    page = Pager(limit=10, offset=20, total=25)
    assert (page.first, page.last, page.previous_offset, page.next_offset) == (21, 25, 10, None)
    assert Pager(10, 0, 0).first == 0
    assert page.cut(list(range(25))) == [20, 21, 22, 23, 24]
    sort = Sort.of("-seq", ("seq", "file"), "file")
    assert (sort.key, sort.descending, sort.toggled("seq"), sort.toggled("file")) == (
        "seq",
        True,
        "seq",
        "file",
    )
    assert Sort.of(None, ("seq",), "-seq").value == Sort.of("", ("seq",), "-seq").value == "-seq"
    for wrong in ("password", "--seq", "seq-"):  # not a column it sorts by: refused
        with pytest.raises(RequestValidationError) as refused:
            Sort.of(wrong, ("seq",), "seq")
        assert refused.value.errors()[0]["loc"] == ("query", "sort")
    rows = [{"seq": 2}, {"seq": None}, {"seq": 10}]
    assert [r["seq"] for r in sort_rows(rows, sort)] == [10, 2, None]
    assert link("/admin/users", {"name": "a b", "role": ""}, offset=10) == (
        "/admin/users?name=a+b&offset=10"
    )


@pytest.mark.parametrize(
    ("target", "goes_to"),
    [
        ("/admin/users?sort=role", "/admin/users?sort=role"),
        ("/admin", "/admin"),
        ("https://elsewhere.example/admin", "/admin/"),
        ("//elsewhere.example", "/admin/"),
        ("/administrator", "/admin/"),
        ("/admin/\\elsewhere", "/admin/"),
        ("/api/v1/admin/users", "/admin/"),
        (None, "/admin/"),
    ],
)
def test_redirects_stay_in_the_panel(target, goes_to):
    assert safe_next(target) == goes_to


def test_display_filters():
    assert templating.when("2026-12-05T11:45:14.083023Z") == "2026-12-05 11:45:14 UTC"
    assert templating.when(None) == "—"
    assert templating.duration(0.25) == "250 ms"
    assert templating.duration(3600 * 5) == "5.0 h"
    assert templating.size(46223) == "45.1 KiB"
    assert templating.percent(0.4) == "40.0 %"
    assert choice("", ("a",)) is None and choice("a", ("a",)) == "a"
    assert whole_number(" 12 ") == 12 and whole_number("") is None
    with pytest.raises(ValueError):
        whole_number("-1")


def test_templates_escape_everything():
    env = templating.environment()
    assert env.from_string("{{ x }}").render(x="<script>") == "&lt;script&gt;"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_end_when_idle_or_too_old_and_keep_only_a_digest():
    cache, clock = fakeredis.FakeRedis(), Clock()
    store = SessionStore(cache, network="request", idle_s=60, absolute_s=300, clock=clock)
    session_id, found = store.create(user_id="u1", username="root", role="admin")
    assert cache.keys() == [(key_prefix("request") + digest(session_id)).encode()]
    for _ in range(4):  # used every 59 s: alive, until the absolute limit
        clock.now += 59
        assert store.load(session_id) is not None
    clock.now += 59  # 295 s after login: still
    assert store.load(session_id) is not None
    clock.now += 10
    assert store.load(session_id) is None  # 305 s: past the absolute limit
    other, _ = store.create(user_id="u1", username="root", role="admin")
    clock.now += 61
    assert store.load(other) is None  # idle too long
    assert store.load("") is None and store.load("x" * 500) is None


def test_each_networks_panel_keeps_its_own_sessions_even_in_one_redis():
    cache = fakeredis.FakeRedis()  # the demo: both networks in one process, one Redis
    stores = {
        net: SessionStore(cache, network=net, idle_s=60, absolute_s=300)
        for net in ("request", "response")
    }
    session_id, _ = stores["request"].create(user_id="u1", username="root", role="admin")
    assert stores["request"].load(session_id) is not None
    assert stores["response"].load(session_id) is None
    stores["response"].destroy(session_id)  # signing out of the other panel ends nothing here
    assert stores["request"].load(session_id) is not None


def test_a_new_session_replaces_the_one_named_and_flashes_are_read_once():
    cache = fakeredis.FakeRedis()
    store = SessionStore(cache, network="request", idle_s=60, absolute_s=300)
    first, _ = store.create(user_id="u1", username="root", role="admin")
    second, session = store.create(user_id="u1", username="root", role="admin", replacing=first)
    assert store.load(first) is None and store.load(second) is not None
    store.flash(session, "ok", "done")
    assert store.take_flashes(session) == [{"level": "ok", "text": "done"}]
    assert store.take_flashes(session) == []
    store.destroy(second)
    assert store.load(second) is None
