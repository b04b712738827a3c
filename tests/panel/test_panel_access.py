"""Who sees what, and what every page carries, on both networks' panels: roles (operators see
the batch and quarantine pages only), the strict CSP and framing headers on every page, no
inline script or style anywhere; and on the request network's the CSRF refusal, the static
files, and the panel kept out of the API's schema."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from shared.http_edge import STRICT_CSP
from shared.metrics import HTTP_SECONDS
from tests.panel.panel_support import sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ADMIN_PAGES = {
    "request": [
        "/admin/dashboard",
        "/admin/dashboard/live",
        "/admin/users",
        "/admin/requests",
        "/admin/batches/history",
        "/admin/cache",
        "/admin/queues",
        "/admin/settings",
        "/admin/alerts",
        "/admin/notifications",
    ],
    "response": [
        "/admin/dashboard",
        "/admin/dashboard/live",
        "/admin/users",
        "/admin/users?sort=-updated_at&status=active",
        "/admin/users/new",
        "/admin/requests",
        "/admin/requests?status=FAILED&profile_type=articles&older_than_hours=1",
        "/admin/executions",
        "/admin/executions?status=FAILED&within_hours=24",
        "/admin/batches/history",
        "/admin/queues",
        "/admin/settings",
        "/admin/settings?sort=-version",
        "/admin/settings/history",
        "/admin/alerts",
        "/admin/notifications",
    ],
}
STAFF_PAGES = ["/admin/batches", "/admin/batches?tab=carried", "/admin/quarantine"]
INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style", re.I), "a <style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style= attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on…= handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
    (re.compile(r"https?://(?!www\.w3\.org/2000/svg)", re.I), "an absolute URL elsewhere"),
]


@dataclass(frozen=True)
class Network:
    """One network's panel through a test client: its admin pages and the pages of its rows
    (a user's, and on the response network a failed request's)."""

    name: str
    client: TestClient
    user: str
    own_pages: list[str]

    @property
    def admin_pages(self) -> list[str]:
        return ADMIN_PAGES[self.name]


@pytest.fixture(params=["request", "response"])
def network(request) -> Network:
    if request.param == "request":
        alice = request.getfixturevalue("people")["alice"]
        user = f"/admin/users/{alice}"
        return Network("request", request.getfixturevalue("client"), user, [f"{user}/usage"])
    ursula = request.getfixturevalue("rpeople")["ursula"]
    failed = request.getfixturevalue("rseed").request(ursula, status="FAILED", error="no index")
    client = request.getfixturevalue("rclient")
    return Network("response", client, f"/admin/users/{ursula}", [f"/admin/requests/{failed}"])


def assert_page_headers(reply) -> None:
    assert reply.headers["content-security-policy"] == STRICT_CSP.decode()
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["cache-control"] == "no-store"


def assert_no_inline_code(path: str, html: str) -> None:
    for pattern, what in INLINE:
        found = pattern.search(html)
        assert found is None, f"{path} has {what}: {html[max(found.start() - 80, 0) :][:200]}"


def test_every_page_is_served_under_the_strict_csp_without_inline_code(network):
    client = network.client
    anonymous = client.get("/admin/login")
    assert_page_headers(anonymous)
    assert_no_inline_code("/admin/login", anonymous.text)
    assert f"{network.name} network" in anonymous.text
    sign_in(client, "root")
    for path in [*network.admin_pages, *STAFF_PAGES, network.user, *network.own_pages]:
        reply = client.get(path)
        assert reply.status_code == 200, (path, reply.text[:500])
        assert_page_headers(reply)
        assert_no_inline_code(path, reply.text)
    for error in ("/admin/no-such-page", "/admin/users/" + "x" * 80):
        reply = client.get(error)
        assert reply.status_code in (404, 422)
        assert_page_headers(reply)
        assert reply.headers["content-type"].startswith("text/html")


def test_an_operator_sees_the_batch_and_quarantine_pages_only(network):
    client = network.client
    sign_in(client, "olga")
    landing = client.get("/admin/", follow_redirects=False)
    assert landing.headers["location"] == "/admin/batches"
    page = client.get("/admin/batches")
    nav = re.findall(r'<nav class="nav">(.*?)</nav>', page.text, re.S)[0]
    assert re.findall(r">([^<]+)</a>", nav) == ["Batches", "Quarantine"]
    assert "Batch metadata" not in page.text  # an admin's page
    for path in STAFF_PAGES:
        assert client.get(path).status_code == 200, path
    for path in [*network.admin_pages, network.user]:
        reply = client.get(path)
        assert reply.status_code == 403, path
        assert "for the admin role" in reply.text


def test_an_operator_cannot_act_as_an_admin(client, people):
    token = sign_in(client, "olga")
    reply = client.post(
        f"/admin/users/{people['alice']}/reset-limits",
        data={"csrf_token": token, "confirmed": "yes"},
    )
    assert reply.status_code == 403


def test_a_state_change_without_its_csrf_token_is_refused(client, people, seed):
    token = sign_in(client, "root")
    request_id = seed.request(people["alice"])
    cancel = f"/admin/requests/{request_id}/cancel"
    for headers, data in [
        ({}, {"confirmed": "yes"}),
        ({}, {"confirmed": "yes", "csrf_token": "not-the-token"}),
        ({"X-CSRF-Token": "not-the-token"}, {"confirmed": "yes"}),
        ({"Content-Type": "application/json"}, None),
    ]:
        reply = client.post(cancel, headers=headers, data=data)
        assert reply.status_code == 403, reply.text
        assert "CSRF" in reply.text
        assert client.get(f"/admin/requests/{request_id}").text.count("CANCELLED") == 0
    reply = client.post(cancel, headers={"X-CSRF-Token": token}, data={"confirmed": "yes"})
    assert reply.status_code == 200 and "Request cancelled" in reply.text
    # logout needs the token too
    assert client.post("/admin/logout").status_code == 403


def test_static_files_come_from_the_package_with_a_long_cache(client):
    page = client.get("/admin/login")
    scripts = re.findall(r'src="(/admin/static/[^"]+)"', page.text)
    assert [s.split("?")[0] for s in scripts] == [
        "/admin/static/htmx.min.js",
        "/admin/static/panel.js",
    ]
    for url in [*scripts, *re.findall(r'href="(/admin/static/[^"]+)"', page.text)]:
        reply = client.get(url)
        assert reply.status_code == 200, url
        assert "immutable" in reply.headers["cache-control"]
    htmx = client.get(scripts[0])
    assert htmx.headers["content-type"].startswith("text/javascript")
    assert 'version:"2.0.11"' in htmx.text  # as docs/PANEL.md and static/LICENSES.md say
    assert client.get("/admin/static/LICENSES.md").status_code == 404
    assert client.get("/admin/static/..%2Fcore.py").status_code == 404


def test_htmx_runs_without_eval_inline_styles_or_a_history_cache(client):
    page = client.get("/admin/login").text
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page).group(1)
    for setting in (
        '"allowEval":false',
        '"includeIndicatorStyles":false',
        '"allowScriptTags":false',
        '"historyCacheSize":0',
    ):
        assert setting in config


def test_the_panel_stays_out_of_the_api_schema_and_is_measured_by_its_template(client, people):
    api_routes = [r.path for r in client.app.routes if isinstance(r, APIRoute)]
    assert not [p for p in api_routes if p.startswith("/admin")]
    sign_in(client, "root")
    client.get(f"/admin/users/{people['alice']}")
    labels = {s.labels["route"] for m in HTTP_SECONDS.collect() for s in m.samples if s.labels}
    assert "/admin/users/{user_id}" in labels
