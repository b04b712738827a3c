"""The API docs and schema describe every route, so production serves them only on request."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from request_network.app import create_app as request_app
from request_network.settings import RequestSettings
from response_network.app import create_app as response_app
from response_network.settings import ResponseSettings

SECRETS = {
    "jwt_secret": "a-real-secret-for-this-test-0123456789abcdef",
    "api_key_pepper": "a-real-pepper-for-this-test-0123456789abcdef",
}
APPS = {
    "request": lambda **kw: request_app(RequestSettings(**SECRETS, **kw)),
    "response": lambda **kw: response_app(ResponseSettings(**SECRETS, **kw)),
}


@pytest.mark.parametrize("network", APPS)
@pytest.mark.parametrize(
    ("settings", "served"),
    [
        ({"mode": "production"}, False),
        ({"mode": "production", "api_docs": True}, True),
        ({"mode": "demo"}, True),
    ],
)
def test_docs_and_schema_are_served_only_when_asked_for(network, settings, served):
    client = TestClient(APPS[network](database_url="sqlite://", **settings))
    for path in ("/docs", "/openapi.json"):
        reply = client.get(path)
        assert reply.status_code == (200 if served else 404), (path, reply.status_code)
    assert client.get("/redoc").status_code == 404


# ── /docs loads nothing from elsewhere (air-gapped networks reach no CDN) ──────────────────

ASSET_TYPES = {  # what each referenced asset must be, and its least plausible size
    ".js": ("text/javascript", 200),
    ".css": ("text/css", 10_000),
    ".png": ("image/png", 100),
}
CDN_HOSTS = ("jsdelivr", "unpkg", "cdnjs", "googleapis")
REFERENCE = re.compile(r"""\b(?:src|href|data-openapi-url)\s*=\s*["']([^"']*)["']""", re.I)


def _docs_client(network: str, **settings) -> TestClient:
    return TestClient(APPS[network](database_url="sqlite://", **settings))


def _references(html: str) -> list[str]:
    return REFERENCE.findall(html)


@pytest.fixture(params=list(APPS))
def docs_client(request) -> TestClient:
    return _docs_client(request.param, mode="production", api_docs=True)


def test_docs_page_references_only_same_origin_urls(docs_client):
    html = docs_client.get("/docs").text
    references = _references(html)
    assert references, html
    for url in references:
        assert url.startswith("/") and not url.startswith("//"), url
        assert not urlsplit(url).netloc, url
    assert "http://" not in html and "https://" not in html
    assert not any(host in html for host in CDN_HOSTS)
    # No inline script or style: every <script> has a src, no <style>, no style="".
    scripts = re.findall(r"<script\b[^>]*>", html, re.I)
    assert len(scripts) == 2 and all(re.search(r"\bsrc=", tag) for tag in scripts), scripts
    assert not re.search(r"<style\b|\bstyle\s*=", html, re.I)
    assert "/docs/assets/swagger-ui-bundle.js" in references
    assert "/docs/assets/swagger-init.js" in references
    assert "/docs/assets/swagger-ui.css" in references


def test_docs_assets_are_served_with_their_content_type(docs_client):
    references = _references(docs_client.get("/docs").text)
    assets = [url for url in references if url.startswith("/docs/assets/")]
    assert len(assets) == 4, references
    for url in assets:
        reply = docs_client.get(url)
        assert reply.status_code == 200, url
        content_type, least = ASSET_TYPES[url[url.rindex(".") :]]
        assert reply.headers["content-type"].startswith(content_type), (url, reply.headers)
        assert len(reply.content) >= least, (url, len(reply.content))
        assert reply.headers["x-content-type-options"] == "nosniff"
        if url.endswith(".js"):
            assert not any(host in reply.text for host in CDN_HOSTS), url
    bundle = docs_client.get("/docs/assets/swagger-ui-bundle.js")
    assert len(bundle.content) > 500_000 and "SwaggerUIBundle" in bundle.text
    init = docs_client.get("/docs/assets/swagger-init.js").text
    assert "SwaggerUIBundle(" in init and "dataset.openapiUrl" in init
    assert 'validatorUrl: "none"' in init  # never the public online validator
    # The schema the page names is the one served.
    (openapi_url,) = re.findall(r'data-openapi-url="([^"]*)"', docs_client.get("/docs").text)
    schema = docs_client.get(openapi_url)
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
    assert docs_client.get("/docs/assets/redoc.standalone.js").status_code == 404
    assert docs_client.get("/docs/assets/..%2Fcore.py").status_code == 404
    assert docs_client.get("/docs/oauth2-redirect").status_code == 404


def test_docs_csp_allows_only_this_origin(docs_client):
    reply = docs_client.get("/docs")
    assert reply.status_code == 200
    csp = reply.headers["content-security-policy"]
    directives = {
        part.split()[0]: part.split()[1:] for part in (p.strip() for p in csp.split(";")) if part
    }
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["style-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    for sources in directives.values():
        for source in sources:
            assert source.startswith("'") or source == "data:", (source, csp)
    assert "http" not in csp and "unsafe" not in csp


@pytest.mark.parametrize("network", APPS)
def test_docs_assets_are_404_when_docs_are_off(network):
    client = _docs_client(network, mode="production")  # the production default: no docs
    for path in (
        "/docs",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/swagger-init.js",
        "/docs/assets/favicon.png",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    ):
        assert client.get(path).status_code == 404, path


def test_no_cdn_url_in_the_code():
    root = Path(__file__).resolve().parent.parent
    hits = []
    for package in ("shared", "request_network", "response_network", "transfer", "ferry"):
        for path in (root / package).rglob("*"):
            if path.suffix in {".py", ".js", ".html", ".css", ".j2"} and path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace").lower()
                hits += [f"{path}: {host}" for host in CDN_HOSTS if host in text]
    assert not hits, hits
