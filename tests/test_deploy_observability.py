"""The Grafana dashboard and the Prometheus alerting rules in `deploy/` name only metrics that
both APIs really serve, each the way its type is exposed (a counter as `_total`, a histogram
as `_bucket`, `_count` or `_sum`); the rules are well formed and every runbook link points at
a section of docs/TROUBLESHOOTING.md. The metrics are read from `/metrics` of both real apps
(PostgreSQL, Redis) after a few requests, so the labelled HTTP series exist."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from request_network.app import create_app as request_app
from response_network.app import create_app as response_app
from shared.security.tokens import issue_token
from tests.ops_support import samples
from tests.request_network import request_api_helpers as rq
from tests.response_network import response_api_helpers as rs

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "ferry-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "ferry-alerts.yml"
TROUBLESHOOTING = ROOT / "docs" / "TROUBLESHOOTING.md"
REDIS_URL = os.environ.get("FERRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HTTP = "ferry_http_request_duration_seconds_count"

#: Series Prometheus makes itself for every target: never in a /metrics reply.
PROMETHEUS_MADE = {"up"}

# ── Metric names in PromQL ─────────────────────────────────────────────────────────────────

KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "start", "end",
}  # fmt: skip
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GRAFANA_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGES = re.compile(r"\[[^\[\]]*\]")
LABEL_VALUES = re.compile(r"\blabel_values\s*\(\s*([^,()]*?)\s*,[^()]*\)")  # (metric, label)
LABEL_ONLY = re.compile(r"\blabel_values\s*\([^,()]*\)")  # (label)
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects: what is left once strings, Grafana's
    variables, label matchers, ranges and the label lists of `by (…)`, `on (…)` and the like
    are gone, less function names (a word before `(`) and PromQL's keywords.
    `label_values(metric, label)` (a Grafana variable's query) names its metric only."""
    text = STRINGS.sub('""', expr)
    text = GRAFANA_VARIABLES.sub(" ", text)
    text = MATCHERS.sub(" ", text)
    text = RANGES.sub(" ", text)
    text = LABEL_VALUES.sub(r" \1 ", text)
    text = LABEL_ONLY.sub(" ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function: rate(, histogram_quantile(, sum (
        if word.lower() not in KEYWORDS:
            names.add(word)
    return names


def labels_used(expr: str) -> set[str]:
    """The labels an expression's matchers and `by`/`without`/`on`/`ignoring` lists name."""
    text = STRINGS.sub('""', expr)
    used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", text))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^()]*)\)", text):
        used |= {label.strip() for label in grouping.split(",") if label.strip()}
    return used


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (route, le) (rate(a_bucket{job=~"$job"}'
            "[$__rate_interval])))",
            {"a_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) by (job) / ignoring(x) group_left(y) b_total > bool 0.5",
            {"a_total", "b_total"},
        ),
        ('a_total{state="blocked", route=~"/x/{id}"} offset 1h unless on(job) c', {"a_total", "c"}),
        ("max_over_time(g[1h:5m]) == 2 and up{job=~'ferry-.*'} == 0 or vector(1e3)", {"g", "up"}),
        ("label_values(ferry_x_count, job)", {"ferry_x_count"}),
        ("label_values(job)", set()),
        ("1 - (sum without (le) (h_sum) / -Inf)", {"h_sum"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr, names):
    assert metric_names(expr) == names


def test_labels_are_read_out_of_promql():
    expr = (
        'sum by (route, le) (rate(a_bucket{job=~"$job",status!="5xx"}[5m])) '
        '/ on (route) group_left sum without (x) (b{method="GET", q=~"a=\\"b"})'
    )
    assert labels_used(expr) == {"route", "le", "job", "status", "method", "q", "x"}


# ── The files ──────────────────────────────────────────────────────────────────────────────


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def dashboard_exprs() -> dict[str, str]:
    """Every PromQL expression of the dashboard, named by where it is."""
    board = dashboard()
    found = {}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = (
                query["query"] if isinstance(query, dict) else query
            )
    return found


def rule_exprs() -> dict[str, str]:
    return {f"alert {rule['alert']}": rule["expr"] for rule in rules()}


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_dashboard_is_a_grafana_dashboard_on_a_chosen_prometheus():
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for subject in ("p50", "p95", "5xx", "task", "batches", "cache hit", "rate-limit", "search"):
        assert subject in titles, subject
    assert "circuit breaker" in titles


def test_every_alert_rule_is_complete_and_links_its_runbook_section():
    document = yaml.safe_load(RULES.read_text())
    headings = _headings(TROUBLESHOOTING)
    names = []
    for group in document["groups"]:
        assert group["name"] and group["rules"], group
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Ferry[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
            assert rule["expr"].strip()
            assert re.fullmatch(r"\d+[smhdwy]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            notes = rule["annotations"]
            assert notes["summary"].strip() and notes["description"].strip(), rule["alert"]
            link = re.fullmatch(r"docs/TROUBLESHOOTING\.md#([a-z0-9-]+)", notes["runbook_url"])
            assert link, notes["runbook_url"]
            assert link.group(1) in headings, f"{rule['alert']}: no section #{link.group(1)}"
            names.append(rule["alert"])
    assert len(names) == len(set(names))
    wanted = {
        "FerryApiErrorRatioHigh", "FerryApiRouteSlow", "FerryTaskFailing",
        "FerryBatchQuarantined", "FerryCircuitBreakerOpen", "FerryRateLimiterRefusingMost",
        "FerryRateLimiterRedisUnavailable", "FerrySearchFailing",
    }  # fmt: skip
    assert wanted <= set(names)


def _headings(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {github_anchor(line.lstrip("#")) for line in lines if re.match(r"#{1,6} ", line)}


@pytest.mark.parametrize("doc", ["TROUBLESHOOTING.md", "TUNING.md"])
def test_the_runbook_and_tuning_links_resolve(doc):
    """Every relative link of the two operator guides names a file that exists and, with a
    fragment, a heading in it."""
    path = ROOT / "docs" / doc
    links = re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", path.read_text())
    assert links
    for target, fragment in links:
        linked = (path.parent / target) if target else path
        assert linked.is_file(), target
        if fragment:
            assert fragment in _headings(linked), f"{doc}: {target}#{fragment}"


# ── Both real apps ─────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def request_scrape(pg_urls) -> Iterator[str]:
    """The request network's /metrics after a submission, reads of a request by its id (one
    that exists, one that does not) and a path no route has."""
    url = pg_urls["request"]
    keys = redis.Redis.from_url(REDIS_URL)
    rq.truncate_request_db(url)
    rq.clear_auth_keys(keys)
    try:
        seed = rq.Seed(url)
        seed.profile_type()
        seed.user("observer", role="operator")
        seed.user("ursula")
        with TestClient(request_app(rq.make_settings(url, redis_url=REDIS_URL))) as client:
            operator, user = (_login(client, name) for name in ("observer", "ursula"))
            body = {"profile_type": "articles", "query": rq.VALID_QUERY}
            sent = client.post("/api/v1/requests", headers=user, json=body)
            assert sent.status_code == 202, sent.text
            assert client.get(f"/api/v1/requests/{sent.json()['id']}", headers=user).is_success
            missing = client.get(f"/api/v1/requests/{uuid.uuid4()}", headers=user)
            assert missing.status_code == 404
            assert client.get("/no/such/route", headers=user).status_code == 404
            scraped = client.get("/metrics", headers=operator)
            assert scraped.status_code == 200, scraped.text
            yield scraped.text
    finally:
        rq.truncate_request_db(url)
        rq.clear_auth_keys(keys)
        keys.close()


@pytest.fixture(scope="module")
def response_scrape(pg_urls) -> Iterator[str]:
    """The response network's /metrics after an operator's read of a request by its id
    (refused: the route is admins')."""
    url = pg_urls["response"]
    rs.empty_response_db(url)
    try:
        token, _ = issue_token(
            subject=rs.add_user(url, "observer", role="operator"),
            role="operator",
            secret=rs.JWT_SECRET,
            issuer="ferry",
            audience="ferry-api",
            minutes=5,
        )
        operator = {"Authorization": f"Bearer {token}"}
        settings = rs.make_settings(url, redis_url=REDIS_URL)
        with TestClient(response_app(settings)) as client:
            read = client.get(f"/api/v1/admin/requests/{uuid.uuid4()}", headers=operator)
            assert read.status_code == 403  # an operator; the route is admins'
            assert client.get("/health").status_code in (200, 503)
            scraped = client.get("/metrics", headers=operator)
            assert scraped.status_code == 200, scraped.text
            yield scraped.text
    finally:
        rs.empty_response_db(url)


def _login(client: TestClient, username: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": rq.PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def families(text: str) -> dict[str, tuple[str, set[str]]]:
    """{family: (type, label names of its samples)} of a Prometheus exposition."""
    found: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        labels = {name for sample in family.samples for name in sample.labels}
        found[family.name] = (family.type, labels - {"le"})
    return found


#: The names a family of each type is selected by in PromQL.
SERIES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "unknown": ("",),
}


def served_as(name: str, served: dict[str, tuple[str, set[str]]]) -> str | None:
    """The family that serves the series `name`, or None."""
    for family, (kind, _) in served.items():
        if any(name == family + suffix for suffix in SERIES.get(kind, ("",))):
            return family
    return None


@pytest.mark.postgres
@pytest.mark.redis
def test_every_metric_the_dashboard_and_the_rules_name_is_served(request_scrape, response_scrape):
    served = families(request_scrape) | families(response_scrape)
    named = {**dashboard_exprs(), **rule_exprs()}
    missing = []
    for where, expr in named.items():
        names = metric_names(expr)
        assert names, f"{where}: names no metric: {expr}"
        for name in sorted(names - PROMETHEUS_MADE):
            if served_as(name, served) is None:
                missing.append(f"{where}: {name}")
    assert not missing, "not served by either /metrics:\n" + "\n".join(missing)


@pytest.mark.postgres
@pytest.mark.redis
def test_every_label_the_dashboard_and_the_rules_use_is_served(request_scrape, response_scrape):
    """Labels in matchers and groupings are labels of the families the expression names
    (judged where those families have samples here; `job` and `instance` are Prometheus's)."""
    served = families(request_scrape) | families(response_scrape)
    wrong = []
    for where, expr in {**dashboard_exprs(), **rule_exprs()}.items():
        names = metric_names(expr) - PROMETHEUS_MADE
        found = [served_as(name, served) for name in names]
        labels = set().union(*(served[family][1] for family in found if family))
        if not labels:
            continue  # no sample of these families in this process
        unknown = labels_used(expr) - labels - {"job", "instance", "le"}
        if unknown:
            wrong.append(f"{where}: {sorted(unknown)}")
    assert not wrong, "labels no family of the expression has:\n" + "\n".join(wrong)


@pytest.mark.postgres
@pytest.mark.redis
def test_http_latency_is_labelled_by_route_template_on_both_apis(request_scrape, response_scrape):
    asked = {
        (s["route"], s["method"], s["status"]) for s in map(dict, samples(request_scrape, HTTP))
    }
    assert ("/api/v1/requests", "POST", "2xx") in asked
    assert ("/api/v1/requests/{request_id}", "GET", "2xx") in asked  # the request found
    assert ("/api/v1/requests/{request_id}", "GET", "4xx") in asked  # and one that is not
    assert ("unmatched", "GET", "4xx") in asked
    routes = {route for route, _, _ in asked}
    assert "/no/such/route" not in routes
    uuid_shape = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    assert not [route for route in routes if uuid_shape.search(route)]

    answered = {dict(labels)["route"] for labels in samples(response_scrape, HTTP)}
    assert "/api/v1/admin/requests/{request_id}" in answered

    # Every breaker of each network has a series from the first scrape on (0, 1 or 2).
    for scraped, dependencies in (
        (request_scrape, {"redis"}),
        (response_scrape, {"search", "redis"}),
    ):
        breakers = {
            dict(labels)["dependency"]: value
            for labels, value in samples(scraped, "ferry_circuit_breaker_state").items()
        }
        assert dependencies <= set(breakers)
        assert {breakers[name] for name in dependencies} <= {0.0, 1.0, 2.0}
    assert samples(request_scrape, "ferry_http_requests_in_flight")[()] >= 1  # the scrape
